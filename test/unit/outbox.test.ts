// The outbox: an accepted alarm survives restarts, damage, compaction, write failures and kill -9.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Outbox, type OutboxOptions } from "../../src/core/outbox/outbox";
import { REPO_ROOT, RUN_DIR } from "../standin/paths";

interface Alarm {
  account: string;
  code: string;
  text?: string;
}

const CHILD = join(REPO_ROOT, "test", "helpers", "outbox-child.ts");

function freshDir(name: string): string {
  const dir = join(RUN_DIR, `outbox-test-${name}`);
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

async function openBox(dir: string, opts: Partial<OutboxOptions> = {}) {
  return Outbox.open<Alarm>({ dir, ...opts });
}

const alarm = (n: number, text?: string): Alarm => ({ account: "1234", code: `E${n}`, ...(text ? { text } : {}) });
const ids = (box: Outbox<unknown>) => box.pending().map((e) => e.id);

interface ChildRun {
  /** Complete lines printed so far (a partial last line is never a promise). */
  lines: string[];
  /** The child printed "ready" (or ended). */
  ready: Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill: () => void;
}

function startChild(args: string[], opts: { ulimitKb?: number } = {}): ChildRun {
  const argv = ["--import", "tsx", CHILD, ...args];
  const child = opts.ulimitKb
    ? spawn("bash", ["-c", `ulimit -f ${opts.ulimitKb} && exec "$@"`, "bash", process.execPath, ...argv], {
        cwd: REPO_ROOT,
      })
    : spawn(process.execPath, argv, { cwd: REPO_ROOT });
  const lines: string[] = [];
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  let buffered = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      if (line.startsWith("ready")) markReady();
    }
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.on("close", (code, signal) => {
      markReady();
      resolve({ code, signal, stderr });
    });
  });
  return { lines, ready, done, kill: () => child.kill("SIGKILL") };
}

describe("Outbox", () => {
  it("keeps accepted entries across a reopen, in order, and forgets finished ones", async () => {
    const dir = freshDir("roundtrip");
    let { outbox, problems } = await openBox(dir);
    assert.deepEqual(problems, []);
    const a = await outbox.accept(alarm(1, "ünïcödé\nline"), "m1@x");
    const b = await outbox.accept(alarm(2), null);
    const c = await outbox.accept(alarm(3), "m3@x");
    assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, false, false]);
    assert.ok(a.id < b.id && b.id < c.id);
    await outbox.recordAttempt(b.id);
    await outbox.setMeta("seq", "42");
    await outbox.close();

    ({ outbox, problems } = await openBox(dir));
    assert.deepEqual(problems, []);
    assert.deepEqual(ids(outbox), [a.id, b.id, c.id]);
    assert.deepEqual(outbox.peek()?.payload, alarm(1, "ünïcödé\nline"));
    assert.equal(outbox.peek()?.key, "m1@x");
    assert.equal(outbox.pending()[1]?.attempts, 1);
    assert.equal(outbox.getMeta("seq"), "42");
    assert.equal(outbox.size, 3);
    await outbox.finish(a.id, { kind: "delivered", at: Date.now(), detail: "10.0.0.1:3061" });
    await outbox.finish(c.id, { kind: "failed", at: Date.now(), reason: "NAK" });
    assert.deepEqual(ids(outbox), [b.id]);
    await outbox.close();

    ({ outbox, problems } = await openBox(dir));
    assert.deepEqual(problems, []);
    assert.deepEqual(ids(outbox), [b.id]);
    const d = await outbox.accept(alarm(4), null);
    assert.ok(d.id > c.id, "ids keep growing across a reopen");
    await outbox.close();
  });

  it("keeps ids monotonic across compaction, even when nothing is pending and no key remembers them", async () => {
    const dir = freshDir("ids");
    let { outbox } = await openBox(dir);
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await outbox.accept(alarm(i), null)).id;
    for (const e of outbox.pending()) await outbox.finish(e.id, { kind: "delivered", at: 0 });
    await outbox.close();
    // A tiny limit compacts at open: the new log holds only the header with the id counter.
    ({ outbox } = await openBox(dir, { maxLogBytes: 10 }));
    assert.equal(outbox.stats.compactions, 1);
    assert.equal(outbox.size, 0);
    await outbox.close();
    ({ outbox } = await openBox(dir));
    assert.equal((await outbox.accept(alarm(9), null)).id, last + 1);
    await outbox.close();
  });

  it("treats a key seen within the window as a duplicate, concurrently, after finish and after reopen", async () => {
    const dir = freshDir("dedupe");
    let { outbox } = await openBox(dir);
    const first = await outbox.accept(alarm(1), "<abc@mail>");
    assert.deepEqual(await outbox.accept(alarm(1), "<abc@mail>"), { id: first.id, duplicate: true });
    assert.equal(outbox.size, 1, "a duplicate is not stored again");
    const [x, y] = await Promise.all([outbox.accept(alarm(2), "<same@mail>"), outbox.accept(alarm(2), "<same@mail>")]);
    assert.equal(x.id, y.id);
    assert.deepEqual([x.duplicate, y.duplicate].sort(), [false, true]);
    assert.equal(outbox.size, 2);
    await outbox.finish(first.id, { kind: "delivered", at: Date.now() });
    assert.deepEqual(await outbox.accept(alarm(1), "<abc@mail>"), { id: first.id, duplicate: true });
    await outbox.close();

    ({ outbox } = await openBox(dir));
    assert.deepEqual(await outbox.accept(alarm(1), "<abc@mail>"), { id: first.id, duplicate: true });
    assert.deepEqual(await outbox.accept(alarm(2), "<same@mail>"), { id: x.id, duplicate: true });
    assert.equal(outbox.size, 1);
    await outbox.close();
  });

  it("accepts a key again once the window has passed, also after reopen", async () => {
    const dir = freshDir("window");
    let { outbox } = await openBox(dir, { dedupeWindowMs: 250 });
    const first = await outbox.accept(alarm(1), "k");
    assert.equal((await outbox.accept(alarm(1), "k")).duplicate, true);
    await sleep(300);
    const again = await outbox.accept(alarm(1), "k");
    assert.equal(again.duplicate, false);
    assert.ok(again.id > first.id);
    const other = await outbox.accept(alarm(2), "k2");
    await outbox.close();
    await sleep(300);
    ({ outbox } = await openBox(dir, { dedupeWindowMs: 250 }));
    const third = await outbox.accept(alarm(2), "k2");
    assert.equal(third.duplicate, false);
    assert.ok(third.id > other.id);
    assert.deepEqual(ids(outbox), [first.id, again.id, other.id, third.id]);
    await outbox.close();
  });

  describe("a damaged log", () => {
    async function threeEntries(name: string): Promise<{ dir: string; log: string; got: number[] }> {
      const dir = freshDir(name);
      const { outbox } = await openBox(dir);
      const got: number[] = [];
      for (let i = 1; i <= 3; i++) got.push((await outbox.accept(alarm(i, "x".repeat(50)), `key-${i}`)).id);
      await outbox.close();
      return { dir, log: join(dir, "outbox.log"), got };
    }

    it("ignores a torn last record, keeps the rest, and appends cleanly after it", async () => {
      const { dir, log, got } = await threeEntries("torn");
      const size = readFileSync(log).length;
      truncateSync(log, size - 30);
      let { outbox, problems } = await openBox(dir);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!, /^torn last record ignored \(\d+ bytes\)$/);
      assert.deepEqual(ids(outbox), got.slice(0, 2));
      const next = await outbox.accept(alarm(4), "key-4");
      await outbox.close();
      ({ outbox, problems } = await openBox(dir));
      assert.deepEqual(problems, [], "the torn tail was cut, the new record is on a line of its own");
      assert.deepEqual(ids(outbox), [...got.slice(0, 2), next.id]);
      await outbox.close();
    });

    it("ignores garbage appended after the last record, with or without a newline", async () => {
      const { dir, log, got } = await threeEntries("garbage");
      appendFileSync(log, Buffer.from([0, 1, 2, 0x67, 0x61, 0x72, 0xff]));
      let { outbox, problems } = await openBox(dir);
      assert.deepEqual(problems, ["torn last record ignored (7 bytes)"]);
      assert.deepEqual(ids(outbox), got);
      await outbox.close();
      appendFileSync(log, "this is not a record\n");
      ({ outbox, problems } = await openBox(dir));
      assert.match(problems[0]!, /^record 5 malformed, ignored$/);
      assert.deepEqual(ids(outbox), got);
      await outbox.close();
    });

    it("ignores a record with a flipped byte, keeps the records around it, and keeps the damaged file", async () => {
      const { dir, log, got } = await threeEntries("flipped");
      const data = readFileSync(log);
      const lines = data.toString("latin1").split("\n");
      const middle = lines.findIndex((l) => l.includes('"k":"key-2"'));
      const offset = lines.slice(0, middle).join("\n").length + 1 + lines[middle]!.indexOf("xxx") + 1;
      data[offset] = data[offset]! ^ 0x01; // 'x' -> 'y'
      writeFileSync(log, data);
      let { outbox, problems } = await openBox(dir);
      assert.equal(problems[0], `record ${middle + 1} CRC mismatch, ignored`);
      assert.match(problems[1] ?? "", /damaged log kept as outbox\.log\.damaged-/);
      assert.deepEqual(ids(outbox), [got[0], got[2]]);
      assert.equal(readdirSync(dir).filter((f) => f.startsWith("outbox.log.damaged-")).length, 1);
      await outbox.close();
      ({ outbox, problems } = await openBox(dir));
      assert.deepEqual(problems, [], "the log was rewritten clean");
      assert.deepEqual(ids(outbox), [got[0], got[2]]);
      assert.equal((await outbox.accept(alarm(1), "key-1")).duplicate, true);
      await outbox.close();
    });
  });

  it("compacts the log, keeping pending entries, attempts, meta, recent keys and the id counter", async () => {
    const dir = freshDir("compact");
    let { outbox } = await openBox(dir, { maxLogBytes: 4096 });
    const filler = "f".repeat(500);
    const accepted: number[] = [];
    for (let i = 0; i < 300; i++) accepted.push((await outbox.accept(alarm(i, filler), `mid-${i}`)).id);
    for (const id of accepted.slice(0, 250)) await outbox.finish(id, { kind: "delivered", at: Date.now() });
    await outbox.recordAttempt(accepted[250]!);
    await outbox.recordAttempt(accepted[250]!);
    await outbox.setMeta("seq", "7");
    assert.ok(outbox.stats.compactions >= 3, `compactions: ${outbox.stats.compactions}`);
    await outbox.close();
    ({ outbox } = await openBox(dir, { maxLogBytes: 4096 })); // over the limit: compacts now, after the finishes
    assert.ok(outbox.stats.compactions >= 1);
    await outbox.close();
    assert.ok(readFileSync(join(dir, "outbox.log")).length < 60_000, "the finished entries' payloads are gone");

    ({ outbox } = await openBox(dir, { maxLogBytes: 4096 }));
    assert.deepEqual(ids(outbox), accepted.slice(250));
    assert.equal(outbox.peek()?.attempts, 2);
    assert.equal(outbox.peek()?.payload.text, filler);
    assert.equal(outbox.getMeta("seq"), "7");
    assert.deepEqual(await outbox.accept(alarm(0), "mid-0"), { id: accepted[0], duplicate: true });
    assert.deepEqual(await outbox.accept(alarm(299), "mid-299"), { id: accepted[299], duplicate: true });
    assert.equal((await outbox.accept(alarm(300), "mid-300")).id, accepted[299]! + 1);
    await outbox.close();
  });

  it("after a crash mid-compaction uses the complete old log and removes the temp file", async () => {
    const dir = freshDir("compact-crash");
    let { outbox } = await openBox(dir);
    const a = await outbox.accept(alarm(1), "a");
    const b = await outbox.accept(alarm(2), "b");
    await outbox.close();
    // The temp file as a crash leaves it: partial (torn), or complete but not yet renamed.
    const tmp = join(dir, "outbox.log.compacting");
    for (const leftover of ['0123abcd {"t":"hdr","v":1,"ne', readFileSync(join(dir, "outbox.log"), "utf8")]) {
      writeFileSync(tmp, leftover);
      let problems: string[];
      ({ outbox, problems } = await openBox(dir));
      assert.deepEqual(problems, []);
      assert.deepEqual(ids(outbox), [a.id, b.id]);
      assert.equal(existsSync(tmp), false);
      await outbox.close();
    }
  });

  it("drops keys past the window at compaction, and keeps the pending entries", async () => {
    const dir = freshDir("compact-window");
    let { outbox } = await openBox(dir, { dedupeWindowMs: 50 });
    const old = await outbox.accept(alarm(1), "old");
    await outbox.finish(old.id, { kind: "delivered", at: 0 });
    const kept = await outbox.accept(alarm(2), "kept");
    await outbox.close();
    await sleep(80);
    ({ outbox } = await openBox(dir, { dedupeWindowMs: 50, maxLogBytes: 10 }));
    await outbox.close();
    const text = readFileSync(join(dir, "outbox.log"), "utf8");
    assert.doesNotMatch(text, /"old"/);
    assert.match(text, /"kept"/);
    ({ outbox } = await openBox(dir));
    assert.deepEqual(ids(outbox), [kept.id]);
    await outbox.close();
  });

  it("shares fsyncs among 1000 concurrent accepts (group commit), and all of them survive", async () => {
    const dir = freshDir("group");
    let { outbox } = await openBox(dir);
    const syncsBefore = outbox.stats.syncs;
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => outbox.accept(alarm(i, "t".repeat(100)), `<${i}@mail>`)),
    );
    const ms = performance.now() - started;
    const syncs = outbox.stats.syncs - syncsBefore;
    assert.equal(new Set(results.map((r) => r.id)).size, 1000);
    assert.ok(syncs <= 20, `${syncs} fsyncs for 1000 accepts`);
    assert.ok(outbox.stats.commits <= 20);
    // A second wave arriving while the first is being written still batches.
    const waves = await Promise.all(
      Array.from({ length: 10 }, async (_, w) => {
        const got: number[] = [];
        for (let i = 0; i < 100; i++) got.push((await outbox.accept(alarm(i), `w${w}-${i}`)).id);
        return got;
      }),
    );
    assert.ok(outbox.stats.syncs - syncsBefore < 1000, `${outbox.stats.syncs - syncsBefore} fsyncs for 2000 accepts`);
    await outbox.close();
    ({ outbox } = await openBox(dir));
    assert.equal(outbox.size, 2000);
    assert.deepEqual(
      ids(outbox),
      [...results.map((r) => r.id), ...waves.flat()].sort((a, b) => a - b),
    );
    await outbox.close();
    console.log(`# 1000 concurrent accepts: ${ms.toFixed(1)} ms, ${syncs} fdatasync`);
  });

  it("rejects accept on a write failure (file size limit), and keeps nothing it did not confirm", async () => {
    const dir = freshDir("efbig");
    // ulimit -f: writes past 256 KiB fail with EFBIG (Node ignores SIGXFSZ), a partial write first.
    const child = startChild(["fill", dir], { ulimitKb: 256 });
    const { code, stderr } = await child.done;
    const lines = child.lines;
    assert.equal(code, 0, `${lines.slice(-5).join("\n")}\n${stderr}`);
    const acked = lines.filter((l) => l.startsWith("a ")).map((l) => Number(l.split(" ")[1]));
    const error = lines.find((l) => l.startsWith("e "));
    assert.ok(acked.length > 100, `accepted ${acked.length} before the limit`);
    assert.match(error ?? "", /outbox write failed.*not durable.*(EFBIG|too large).*alarm NOT accepted/);
    const inMemory = lines
      .find((l) => l.startsWith("pending "))!
      .slice(8)
      .split(",")
      .map(Number);
    assert.deepEqual(
      inMemory,
      [...acked].sort((a, b) => a - b),
      "memory holds exactly the confirmed entries",
    );
    const again = lines.find((l) => l.startsWith("again "))!;
    const recovered = again.match(/^again accepted (\d+)$/);
    if (!recovered) assert.match(again, /alarm NOT accepted/);
    console.log(`# ${acked.length} accepted, then: ${error}; next accept: ${again}`);

    const { outbox, problems } = await openBox(dir);
    assert.ok(
      problems.every((p) => /^torn last record ignored/.test(p)),
      problems.join("; "),
    );
    const expected = [...acked, ...(recovered ? [Number(recovered[1])] : [])].sort((a, b) => a - b);
    assert.deepEqual(ids(outbox), expected, "the log holds exactly the confirmed entries");
    await outbox.close();
  });

  it("fails to open where the directory cannot be, and says why", async () => {
    const base = freshDir("not-a-dir");
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, "file"), "x");
    await assert.rejects(openBox(join(base, "file", "outbox")), /outbox .* cannot be opened: .*(ENOTDIR|EEXIST)/);
    mkdirSync(join(base, "logdir", "outbox.log"), { recursive: true });
    await assert.rejects(openBox(join(base, "logdir")), /cannot be opened: .*EISDIR/);
  });

  it("keeps accepting when a compaction cannot be written, reports it, and compacts later", async () => {
    const dir = freshDir("compact-fail");
    const reported: string[] = [];
    let { outbox } = await openBox(dir, { maxLogBytes: 2048, onProblem: (m) => reported.push(m) });
    const before = outbox.stats.compactions; // creating the log counts as one
    mkdirSync(join(dir, "outbox.log.compacting")); // the temp file cannot be created
    const got: number[] = [];
    for (let i = 0; i < 40; i++) got.push((await outbox.accept(alarm(i, "z".repeat(100)), `c${i}`)).id);
    assert.equal(outbox.stats.compactions, before);
    assert.match(reported[0] ?? "", /compaction failed, will retry later: .*EISDIR/);
    rmSync(join(dir, "outbox.log.compacting"), { recursive: true });
    for (let i = 40; i < 200; i++) got.push((await outbox.accept(alarm(i, "z".repeat(100)), `c${i}`)).id);
    assert.ok(outbox.stats.compactions > before);
    await outbox.close();
    ({ outbox } = await openBox(dir));
    assert.deepEqual(ids(outbox), got);
    await outbox.close();
  });

  it("refuses a second open of the same directory and calls after close", async () => {
    const dir = freshDir("once");
    const { outbox } = await openBox(dir);
    await assert.rejects(openBox(dir), /already open in this process/);
    await outbox.close();
    await assert.rejects(outbox.accept(alarm(1), null), /closed/);
    const again = await openBox(dir);
    await again.outbox.close();
  });

  it("loses no confirmed entry when the process is killed with SIGKILL at random moments", async () => {
    const dir = freshDir("kill9");
    const acked = new Map<number, string>(); // id -> key, printed after accept() resolved
    const started = new Set<number>(); // finish() called: it may or may not have become durable
    const finished = new Set<number>(); // finish() resolved
    let maxSeq = 0;
    let maxIdBefore = 0;
    let tornTails = 0;
    let killedInCompaction = 0;
    const rounds = 14;
    for (let round = 0; round < rounds; round++) {
      // Every third round the child kills itself in the middle of its 1st..3rd compaction.
      const killAtCompaction = round % 3 === 2 && round < 12 ? 1 + Math.floor(Math.random() * 3) : 0;
      const child = startChild(["loop", dir, `r${round}`, "32768", String(killAtCompaction)]);
      await child.ready;
      // The clock starts at the first confirmed accept: a slow start on a busy machine is no failure.
      let exited = false;
      void child.done.then(() => {
        exited = true;
      });
      for (let waited = 0; !killAtCompaction && !exited && waited < 10_000; waited += 5) {
        if (child.lines.some((l) => l.startsWith("a "))) break;
        await sleep(5);
      }
      // Otherwise a random moment in the busy loop: mid-write, mid-fsync, mid-compaction.
      await Promise.race([child.done, sleep(killAtCompaction ? 5000 : 20 + Math.random() * 400)]);
      if (round >= 12) {
        // The last rounds: this process gets no CPU for a moment before the kill, as on a busy machine.
        // It reads nothing, the pipe fills and the child's lines queue in the child, to die with it.
        // The bookkeeping must hold all the same: an "s" line that never arrived while its finish is on
        // disk would make a finished entry look lost (the child flushes "s" lines before finishing).
        const until = Date.now() + 100 + Math.random() * 200;
        while (Date.now() < until) {}
      }
      child.kill();
      const { signal, stderr } = await child.done;
      assert.equal(signal, "SIGKILL", `${child.lines.slice(-3).join("\n")}\n${stderr}`);
      const ready = child.lines[0] ?? "";
      // A self-kill may come in the compaction at open, before "ready".
      if (!killAtCompaction) assert.ok(ready.startsWith("ready"), ready);
      let newIds = 0;
      for (const line of child.lines) {
        const [kind, value, key] = line.split(" ");
        if (kind === "a") {
          const id = Number(value);
          assert.ok(id > maxIdBefore, `id ${id} of round ${round} not above the ids before the restart`);
          acked.set(id, key!);
          newIds++;
        } else if (kind === "s") started.add(Number(value));
        else if (kind === "f") finished.add(Number(value));
        else if (kind === "m") maxSeq = Math.max(maxSeq, Number(value));
      }
      if (!killAtCompaction) assert.ok(newIds > 0, `round ${round} accepted nothing before the kill`);
      maxIdBefore = Math.max(0, ...acked.keys());

      if (existsSync(join(dir, "outbox.log.compacting"))) killedInCompaction++;
      const { outbox, problems } = await openBox(dir, { maxLogBytes: 32768 });
      assert.ok(problems.length <= 1 && problems.every((p) => /^torn last record ignored/.test(p)), problems.join());
      tornTails += problems.length;
      const pending = ids(outbox);
      assert.deepEqual(
        pending,
        [...pending].sort((a, b) => a - b),
        "pending in acceptance order",
      );
      const pendingSet = new Set(pending);
      for (const [id] of acked) {
        if (!started.has(id)) assert.ok(pendingSet.has(id), `confirmed id ${id} lost after round ${round}`);
      }
      for (const id of finished) assert.ok(!pendingSet.has(id), `finished id ${id} pending again`);
      for (const [id, key] of acked) {
        assert.deepEqual(await outbox.accept(alarm(0), key), { id, duplicate: true }, `key ${key} forgotten`);
      }
      assert.ok(Number(outbox.getMeta("seq") ?? "0") >= maxSeq, "meta went back");
      await outbox.close();
    }
    console.log(
      `# kill -9: ${acked.size} confirmed accepts over ${rounds} kills;`,
      `${tornTails} torn tails, ${killedInCompaction} kills during compaction`,
    );
  });
});
