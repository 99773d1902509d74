// The progress file: durable, atomic, shared writes, and honest about a damaged file.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { backoffDelay } from "../../src/core/backoff";
import { ProgressStore } from "../../src/core/mail/progress-store";
import { RUN_DIR } from "../standin/paths";

const dir = join(RUN_DIR, "progress-store-test");

function freshPath(name: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  rmSync(path, { force: true });
  return path;
}

describe("ProgressStore", () => {
  it("starts empty, saves, and reads back what was saved", async () => {
    const path = freshPath("roundtrip");
    const store = new ProgressStore(path);
    assert.deepEqual((await store.load()).progress, { uidValidity: null, watermark: 0, settled: [] });
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
