// Outbox accept cost: latency of one accept at a time (median, p99) and accepts/s with 1, 10 and
// 100 concurrent producers, durable (write + fdatasync, group commit) and, for comparison, without fsync.
//   node --import tsx bench/outbox-latency.ts [--count 2000] [--seconds 2] [--write-results]
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Outbox } from "../src/core/outbox/outbox";
import { RUN_DIR } from "../test/standin/paths";
import { machine, percentile, writeSection } from "./results-file";

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const COUNT = Number(arg("count") ?? 2000);
const SECONDS = Number(arg("seconds") ?? 2);
const DIR = join(RUN_DIR, "bench-outbox");

/** Roughly what the line-driver queues per alarm: a DC-09 frame body and the alarm it came from. */
function payload(n: number) {
  return {
    body: { id: "SIA-DCS", account: "1234", data: `#1234|NBA${n % 1000}`, extended: [{ kind: "I", value: "Zone 3" }] },
    alarm: {
      account: "1234",
      eventCode: "BA",
      zone: String(n % 100),
      text: "Burglary alarm, zone 3, ground floor rear door",
      occurredAt: new Date().toISOString(),
      source: { messageId: `<${n}.${Date.now()}@alarm.example.com>`, from: "panel@example.com" },
    },
  };
}

async function fresh(fsync: boolean) {
  rmSync(DIR, { recursive: true, force: true });
  return (await Outbox.open<ReturnType<typeof payload>>({ dir: DIR, fsync })).outbox;
}

async function sequential(fsync: boolean): Promise<{ median: number; p99: number }> {
  const outbox = await fresh(fsync);
  const ms: number[] = [];
  for (let n = 0; n < COUNT; n++) {
    const t = performance.now();
    await outbox.accept(payload(n), `<seq-${n}@mail>`);
    ms.push(performance.now() - t);
  }
  await outbox.close();
  ms.sort((a, b) => a - b);
  return { median: percentile(ms, 50), p99: percentile(ms, 99) };
}

async function concurrent(fsync: boolean, producers: number): Promise<{ perSecond: number; perSync: number }> {
  const outbox = await fresh(fsync);
  const before = outbox.stats;
  const until = performance.now() + SECONDS * 1000;
  let n = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (performance.now() < until) {
        const i = n++;
        await outbox.accept(payload(i), `<c-${i}@mail>`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const after = outbox.stats;
  await outbox.close();
  const commits = after.commits - before.commits;
  return { perSecond: n / seconds, perSync: commits > 0 ? n / commits : Number.NaN };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const fsync of [true, false]) {
    const seq = await sequential(fsync);
    const through: string[] = [];
    for (const producers of [1, 10, 100]) {
      const r = await concurrent(fsync, producers);
      through.push(`${Math.round(r.perSecond)} (${r.perSync.toFixed(1)}/batch)`);
    }
    const [median, p99] = [seq.median.toFixed(3), seq.p99.toFixed(3)];
    rows.push(`| ${fsync ? "on" : "off"} | ${median} | ${p99} | ${through.join(" | ")} |`);
    console.log(
      `fsync ${fsync ? "on " : "off"}: one at a time median ${median} ms, p99 ${p99} ms;` +
        ` accepts/s with 1/10/100 producers: ${through.join(", ")}`,
    );
  }
  rmSync(DIR, { recursive: true, force: true });
  if (args.includes("--write-results")) {
    writeSection(
      "outbox",
      [
        "## Outbox accept latency and throughput",
        "",
        `\`node --import tsx bench/outbox-latency.ts --count ${COUNT} --seconds ${SECONDS} --write-results\``,
        "",
        `${COUNT} accepts one at a time; then ${SECONDS} s of accepts by 1, 10 and 100 concurrent producers`,
        "(~450-byte payloads, no consumer, so compaction carries every pending entry). Machine:",
        `${machine()}, ${new Date().toISOString().slice(0, 10)}.`,
        "",
        "| fsync | median ms | p99 ms | 1 producer: accepts/s (per batch) | 10 producers | 100 producers |",
        "| --- | --- | --- | --- | --- | --- |",
        ...rows,
      ].join("\n"),
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
