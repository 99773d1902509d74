// Alarms delivered with ACK per second: durable outbox → the line-driver's channel (SIA DC-09 to
// a local receiver, or Sur-Gard to a local automation peer) over TCP, one packet outstanding, as
// both protocols want; all in this process.
//   node --import tsx bench/line-driver-throughput.ts [--count 5000] [--protocol dc09|surgard] [--write-results]
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { AlarmEvent } from "../src/core/datamap";
import type { AlarmChannel } from "../src/core/delivery/channel";
import { Dc09Channel } from "../src/core/delivery/dc09-channel";
import { OutboxPump } from "../src/core/delivery/outbox-pump";
import { SurgardChannel } from "../src/core/delivery/surgard-channel";
import { Outbox } from "../src/core/outbox/outbox";
import { startDc09Receiver } from "../test/standin/dc09-receiver";
import { RUN_DIR } from "../test/standin/paths";
import { startAutomationServer } from "../test/standin/surgard-automation";
import { machine, percentile, writeSection } from "./results-file";

const args = process.argv.slice(2);
const COUNT = Number(args[args.indexOf("--count") + 1] ?? 5000) || 5000;
const PROTOCOL = args.includes("--protocol") && args[args.indexOf("--protocol") + 1] === "surgard" ? "surgard" : "dc09";

const quiet = { log: () => undefined, onState: () => undefined };

async function peerAndChannel(): Promise<{ channel: AlarmChannel; close(): Promise<void>; what: string }> {
  if (PROTOCOL === "surgard") {
    const automation = await startAutomationServer({ lineDigits: 3 });
    const channel = new SurgardChannel({
      role: "client",
      host: "127.0.0.1",
      port: automation.port,
      line: { receiver: 1, line: 1, lineDigits: 3 },
      format: "auto",
      accountDigits: "auto",
      ackTimeoutMs: 2000,
      attempts: 3,
      heartbeatMs: 30_000,
      ...quiet,
    });
    return {
      channel,
      close: () => automation.close(),
      what: "Sur-Gard (Contact ID packets) to a local automation peer",
    };
  }
  const receiver = await startDc09Receiver({ behaviour: "ack" });
  const channel = new Dc09Channel({
    primary: { host: "127.0.0.1", port: receiver.tcpPort },
    transport: "tcp",
    receiver: "1",
    prefix: "1",
    ackTimeoutMs: 2000,
    attemptsPerReceiver: 3,
    backoff: { initialMs: 100, maxMs: 1000 },
    format: "auto",
    sendText: false,
    sendTime: false,
    sendLink: false,
    supervisionMs: 0,
    supervisionAccount: "0000",
    ...quiet,
  });
  return { channel, close: () => receiver.close(), what: "SIA DC-09 (SIA-DCS frames) to a local receiver" };
}

function alarm(i: number): AlarmEvent {
  return {
    account: "1234",
    eventCode: "130",
    eventFormat: "CID",
    qualifier: "new",
    zone: (i % 999) + 1,
    area: 1,
    user: null,
    text: "",
    occurredAt: null,
    attachments: [],
    source: { messageId: `bench-${i}`, from: "", subject: "", receivedAt: null },
  } as unknown as AlarmEvent;
}

async function main(): Promise<void> {
  const { channel, close, what } = await peerAndChannel();
  const dir = join(RUN_DIR, `bench-line-driver-${PROTOCOL}`);
  rmSync(dir, { recursive: true, force: true });
  const { outbox } = await Outbox.open<unknown>({ dir });
  await channel.start({ busy: () => outbox.size > 0, meta: { get: () => undefined, set: async () => undefined } });
  let delivered = 0;
  let finished: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    finished = r;
  });
  const latencies: number[] = [];
  const pump = new OutboxPump<unknown>({
    outbox,
    deliver: (e) =>
      channel.deliver(e.payload, e.id).then((outcome) => {
        if (outcome.kind !== "delivered") throw new Error(`not acknowledged: ${outcome.reason}`);
        latencies.push(outcome.latencyMs);
        return outcome;
      }),
    onOutcome: () => {
      if (++delivered === COUNT) finished();
    },
    onError: (m) => console.error(m),
  });
  pump.start();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: COUNT }, (_, i) =>
      outbox.accept(channel.prepare(alarm(i)), `bench-${i}`).then(() => pump.wake()),
    ),
  );
  const acceptedMs = performance.now() - t0;
  await done;
  const totalMs = performance.now() - t0;
  await pump.stop();
  channel.stop();
  await outbox.close();
  await close();
  latencies.sort((a, b) => a - b);
  const rate = Math.round((COUNT / totalMs) * 1000);
  const lines = [
    `alarms: ${COUNT}, all accepted (fsync'd) after ${acceptedMs.toFixed(0)} ms, all ACKed after ${totalMs.toFixed(0)} ms`,
    `delivered with ACK: ${rate.toLocaleString("en")} alarms/s over TCP, one packet outstanding`,
    `send → ACK per packet: p50 ${percentile(latencies, 50).toFixed(3)} ms, p99 ${percentile(latencies, 99).toFixed(3)} ms`,
  ];
  for (const l of lines) console.log(l);
  if (args.includes("--write-results")) {
    writeSection(
      PROTOCOL === "surgard" ? "line-driver-throughput-surgard" : "line-driver-throughput",
      [
        `## Line-driver: alarms delivered with ACK (${PROTOCOL === "surgard" ? "Sur-Gard" : "DC-09"} over TCP)`,
        "",
        `\`node --import tsx bench/line-driver-throughput.ts --count ${COUNT} --protocol ${PROTOCOL}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}.`,
        `Durable outbox (fsync on) → line-driver channel → ${what} on loopback, one packet outstanding.`,
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
