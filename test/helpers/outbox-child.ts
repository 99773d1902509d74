// A child process for the outbox crash tests. It prints a line only after the outbox call it
// reports has resolved, so every line the parent read is a promise the outbox must keep. An "s"
// line (a finish is about to start) has left this process before that finish begins (sayFlushed).
//   loop <dir> <tag> <maxLogBytes> [killAtCompaction]: producers accept, a consumer finishes the oldest,
//     meta counts up; every 500th payload is 256 KiB so that a kill lands inside a write now and then.
//     With killAtCompaction = n it SIGKILLs itself when it sees the n-th compaction temp file appear.
//   fill <dir>: accept until a write fails (run under `ulimit -f`), then report the in-memory state
import { mkdirSync, watch } from "node:fs";
import { Outbox } from "../../src/core/outbox/outbox";

interface Payload {
  n: number;
  tag: string;
  filler: string;
}

const [mode, dir, tag = "t", maxLogBytes = "65536", killAtCompaction = "0"] = process.argv.slice(2);
const say = (line: string) => process.stdout.write(`${line}\n`);
/**
 * Resolves once the line is in the pipe, where a SIGKILL of this process can no longer take it back.
 * process.stdout on a pipe is asynchronous once the pipe is full (it holds only a few hundred short
 * writes, and a parent that gets no CPU for a moment on a busy machine reads nothing): a line written
 * then waits in this process's memory and dies with it. Losing an "a", "f" or "m" line only leaves
 * the parent less to check; losing an "s" line while the finish it announced is already on disk makes
 * the parent report a finished entry as lost ("confirmed id N lost"). So "s" lines are flushed first.
 */
const sayFlushed = (line: string) =>
  new Promise<void>((resolve, reject) => {
    process.stdout.write(`${line}\n`, (err) => (err ? reject(err) : resolve()));
  });

async function loop(): Promise<void> {
  let seen = Number(killAtCompaction);
  if (seen > 0) {
    mkdirSync(dir!, { recursive: true });
    // The event arrives while the compaction awaits its I/O: the kill lands between two of its steps.
    watch(dir!, (_event, name) => {
      if (name === "outbox.log.compacting" && --seen === 0) process.kill(process.pid, "SIGKILL");
    });
  }
  const { outbox, problems } = await Outbox.open<Payload>({ dir: dir!, maxLogBytes: Number(maxLogBytes) });
  say(`ready ${JSON.stringify(problems)}`);
  let n = 0;
  const producer = async () => {
    for (;;) {
      const i = n++;
      const key = `${tag}-${i}`;
      const { id, duplicate } = await outbox.accept(
        { n: i, tag, filler: "x".repeat(i % 500 === 499 ? 2 ** 18 : i % 200) },
        key,
      );
      say(`a ${id} ${key} ${duplicate ? "dup" : "new"}`);
    }
  };
  const consumer = async () => {
    for (;;) {
      const done = outbox.pending().slice(0, Math.max(0, outbox.size - 40));
      if (done.length === 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      // Out of this process before the finish starts: from then on it may be durable at any moment.
      await sayFlushed(done.map((e) => `s ${e.id}`).join("\n"));
      await Promise.all(done.map((e) => outbox.recordAttempt(e.id)));
      await Promise.all(done.map((e) => outbox.finish(e.id, { kind: "delivered", at: Date.now() })));
      for (const e of done) say(`f ${e.id}`);
    }
  };
  const counter = async () => {
    for (let seq = Number(outbox.getMeta("seq") ?? "0") + 1; ; seq++) {
      await outbox.setMeta("seq", String(seq));
      say(`m ${seq}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  await Promise.all([...Array.from({ length: 8 }, producer), consumer(), counter()]);
}

async function fill(): Promise<void> {
  const { outbox } = await Outbox.open<Payload>({ dir: dir! });
  say("ready");
  let n = 0;
  let failed = false;
  const producer = async () => {
    while (!failed) {
      const i = n++;
      try {
        const { id } = await outbox.accept({ n: i, tag: "fill", filler: "y".repeat(300) }, `fill-${i}`);
        say(`a ${id} fill-${i}`);
      } catch (err) {
        failed = true;
        say(`e ${JSON.stringify((err as Error).message)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, producer));
  say(`pending ${outbox.pending().map((e) => e.id)}`);
  try {
    const { id } = await outbox.accept({ n: -1, tag: "fill", filler: "z".repeat(300) }, "fill-again");
    say(`again accepted ${id}`);
  } catch (err) {
    say(`again ${JSON.stringify((err as Error).message)}`);
  }
  await outbox.close();
}

(mode === "fill" ? fill() : loop()).catch((err: unknown) => {
  say(`crash ${JSON.stringify(String(err))}`);
  process.exit(1);
});
