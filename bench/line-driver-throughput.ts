// Alarms delivered with ACK per second: durable outbox → DC-09 transmitter → a local receiver
// over TCP (one frame outstanding, as the protocol wants), all in this process.
//   node --import tsx bench/line-driver-throughput.ts [--count 5000] [--write-results]
import { rmSync } from "node:fs";
import { join } from "node:path";
import { siaDcsData } from "../src/core/dc09";
import { Dc09Transmitter, type MessageBody } from "../src/core/dc09/transmitter";
import { OutboxPump } from "../src/core/delivery/outbox-pump";
import { Outbox } from "../src/core/outbox/outbox";
import { startDc09Receiver } from "../test/standin/dc09-receiver";
import { RUN_DIR } from "../test/standin/paths";
import { machine, percentile, writeSection } from "./results-file";

const args = process.argv.slice(2);
const COUNT = Number(args[args.indexOf("--count") + 1] ?? 5000) || 5000;

async function main(): Promise<void> {
  const receiver = await startDc09Receiver({ behaviour: "ack" });
  const dir = join(RUN_DIR, "bench-line-driver");
  rmSync(dir, { recursive: true, force: true });
  const { outbox } = await Outbox.open<MessageBody>({ dir });
  const transmitter = new Dc09Transmitter({
    primary: { host: "127.0.0.1", port: receiver.tcpPort },
    transport: "tcp",
    receiver: "1",
    prefix: "1",
    ackTimeoutMs: 2000,
    attemptsPerReceiver: 3,
    backoff: { initialMs: 100, maxMs: 1000 },
    log: () => undefined,
    onState: () => undefined,
  });
  let delivered = 0;
  let finished: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    finished = r;
  });
  const latencies: number[] = [];
  const pump = new OutboxPump<MessageBody>({
    outbox,
    deliver: (e) =>
      transmitter.deliver(e.payload, ((e.id - 1) % 9999) + 1).then((r) => {
        if (r.kind !== "ack") throw new Error("not acked");
        latencies.push(r.latencyMs);
        return { kind: "delivered", via: r.via, address: r.address, latencyMs: r.latencyMs, sends: r.sends };
      }),
    onOutcome: () => {
      if (++delivered === COUNT) finished();
    },
    onError: (m) => console.error(m),
  });
  pump.start();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: COUNT }, (_, i) => {
      const body: MessageBody = {
        id: "SIA-DCS",
        account: "1234",
        data: siaDcsData({ account: "1234", eventCode: "BA", eventFormat: "SIA", zone: (i % 999) + 1, area: 1 }),
      };
      return outbox.accept(body, `bench-${i}`).then(() => pump.wake());
    }),
  );
  const acceptedMs = performance.now() - t0;
  await done;
  const totalMs = performance.now() - t0;
  await pump.stop();
  transmitter.stop();
  await outbox.close();
  await receiver.close();
  latencies.sort((a, b) => a - b);
  const rate = Math.round((COUNT / totalMs) * 1000);
  const lines = [
    `alarms: ${COUNT}, all accepted (fsync'd) after ${acceptedMs.toFixed(0)} ms, all ACKed after ${totalMs.toFixed(0)} ms`,
    `delivered with ACK: ${rate.toLocaleString("en")} alarms/s over TCP, one frame outstanding`,
    `send → ACK per frame: p50 ${percentile(latencies, 50).toFixed(3)} ms, p99 ${percentile(latencies, 99).toFixed(3)} ms`,
  ];
  for (const l of lines) console.log(l);
  if (args.includes("--write-results")) {
    writeSection(
      "line-driver-throughput",
      [
        "## Line-driver: alarms delivered with ACK (DC-09 over TCP)",
        "",
        `\`node --import tsx bench/line-driver-throughput.ts --count ${COUNT}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}.`,
        "Durable outbox (fsync on) → transmitter → local receiver on loopback, one frame outstanding.",
        "",
        ...lines.map((l) => `- ${l}`),
      ].join("\n"),
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
