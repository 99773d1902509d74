// The progress file: durable, atomic, shared writes, and honest about a damaged file.
import assert from "node:assert/strict";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { backoffDelay } from "../../src/core/backoff";
import { ProgressStore, type SettledEmail } from "../../src/core/mail/progress-store";
import { RUN_DIR } from "../standin/paths";

const dir = join(RUN_DIR, "progress-store-test");

function freshPath(name: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  for (const f of readdirSync(dir))
    if (f.startsWith(`${name}.json`)) rmSync(join(dir, f), { recursive: true, force: true });
  return path;
}

describe("ProgressStore", () => {
  it("starts empty, saves, and reads back what was saved", async () => {
    const path = freshPath("roundtrip");
    const store = new ProgressStore(path);
    const { progress } = await store.load();
    assert.deepEqual([progress.uidValidity, progress.watermark, progress.settled], [null, 0, []]);
    store.update((p) => {
      p.uidValidity = "1700000000";
      p.settled.push({ uid: 7, messageId: "a@b", outcome: "accepted", action: { kind: "seen" }, applied: false });
    });
    await store.save();
    const again = new ProgressStore(path);
    assert.equal((await again.load()).progress.settled[0]?.uid, 7);
    assert.equal(JSON.parse(readFileSync(path, "utf8")).uidValidity, "1700000000");
  });

  it("shares one write among concurrent savers, and each resolves only once its change is on disk", async () => {
    const path = freshPath("coalesce");
    const store = new ProgressStore(path);
    await store.load();
    const saves: Promise<void>[] = [];
    for (let uid = 1; uid <= 100; uid++) {
      store.update((p) => {
        p.settled.push({ uid, messageId: null, outcome: "accepted", action: { kind: "none" }, applied: true });
      });
      saves.push(store.save());
    }
    await Promise.all(saves);
    assert.equal(JSON.parse(readFileSync(path, "utf8")).settled.length, 100);
  });

  it("reports a damaged file instead of silently starting over", async () => {
    const path = freshPath("damaged");
    writeFileSync(path, '{"uidValidity":"1","settled":[{"uid":1');
    const { progress, problem } = await new ProgressStore(path).load();
    assert.match(problem ?? "", /unreadable/);
    assert.equal(progress.uidValidity, null);
  });

  it("fails a save it cannot make, and makes it on the next try", async () => {
    const sub = join(dir, "readonly");
    rmSync(sub, { recursive: true, force: true });
    mkdirSync(sub, { recursive: true });
    const store = new ProgressStore(join(sub, "p.json"));
    await store.load();
    store.update((p) => {
      p.watermark = 5;
    });
    chmodSync(sub, 0o500);
    // root ignores directory permissions; make the temp file's name a directory instead
    mkdirSync(join(sub, "p.json.tmp"), { recursive: true });
    await assert.rejects(store.save());
    rmSync(join(sub, "p.json.tmp"), { recursive: true });
    chmodSync(sub, 0o700);
    await store.save();
    assert.equal(JSON.parse(readFileSync(join(sub, "p.json"), "utf8")).watermark, 5);
  });
});

describe("ProgressStore journal", () => {
  const settled = (uid: number): SettledEmail => ({
    uid,
    messageId: `m${uid}@example.com`,
    outcome: "accepted",
    action: { kind: "seen" },
    applied: false,
  });

  it("keeps a recorded settlement over a restart without rewriting the progress file", async () => {
    const path = freshPath("journal-restart");
    const store = new ProgressStore(path);
    await store.load();
    await Promise.all([1, 2, 3].map((uid) => store.record(settled(uid))));
    assert.equal(existsSync(path), false, "no progress file written for settlements");
    const again = new ProgressStore(path);
    const { progress, problem } = await again.load();
    assert.equal(problem, undefined);
    assert.deepEqual(
      progress.settled.map((s) => [s.uid, s.applied]),
      [
        [1, false],
        [2, false],
        [3, false],
      ],
    );
  });

  it("folds the journal into the progress file on save and starts an empty one", async () => {
    const path = freshPath("journal-fold");
    const store = new ProgressStore(path);
    await store.load();
    await store.record(settled(1));
    await store.record(settled(2));
    assert.equal(store.journalLength, 2);
    store.update((p) => {
      p.settled = p.settled.filter((s) => s.uid !== 1); // compacted away
    });
    await store.save();
    assert.equal(store.journalLength, 0);
    await store.record(settled(3));
    const { progress } = await new ProgressStore(path).load();
    assert.deepEqual(
      progress.settled.map((s) => s.uid),
      [2, 3],
      "uid 1 stays forgotten: the journal that held it is gone",
    );
  });

  it("skips a line torn by a crash and still appends whole lines after it", async () => {
    const path = freshPath("journal-torn");
    const store = new ProgressStore(path);
    await store.load();
    await store.record(settled(1));
    await store.close();
    appendFileSync(`${path}.journal-0`, '{"uid":2,"messageId":"m2@exa'); // the crash hit mid-write
    const again = new ProgressStore(path);
    assert.deepEqual(
      (await again.load()).progress.settled.map((s) => s.uid),
      [1],
    );
    await again.record(settled(3));
    await again.close();
    const third = new ProgressStore(path);
    const { progress, problem } = await third.load();
    assert.equal(problem, undefined, "no unreadable line: the torn tail was cut before appending");
    assert.deepEqual(
      progress.settled.map((s) => s.uid),
      [1, 3],
    );
  });

  it("takes back a settlement it could not write", async () => {
    const path = freshPath("journal-fail");
    const store = new ProgressStore(path);
    await store.load();
    mkdirSync(`${path}.journal-0`, { recursive: true }); // the journal cannot be opened as a file
    await assert.rejects(store.record(settled(1)));
    assert.equal(store.current.settled.length, 0);
    rmSync(`${path}.journal-0`, { recursive: true });
    await store.record(settled(1));
    assert.deepEqual(
      store.current.settled.map((s) => s.uid),
      [1],
    );
  });
});

describe("backoffDelay", () => {
  it("grows exponentially to the cap, with jitter in the upper half", () => {
    const policy = { initialMs: 1000, maxMs: 60_000 };
    assert.equal(
      backoffDelay(0, policy, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(0, policy, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(3, policy, () => 1),
      8000,
    );
    assert.equal(
      backoffDelay(30, policy, () => 1),
      60_000,
    );
    assert.equal(
      backoffDelay(30, policy, () => 0),
      30_000,
    );
  });
});
