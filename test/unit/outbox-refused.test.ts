// A refused alarm stays in the outbox, out of the delivery order, until it is queued again (issue #21).
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { Outbox } from "../../src/core/outbox/outbox";
import { encodeRecord } from "../../src/core/outbox/records";

describe("outbox: refused entries", () => {
  const dirs: string[] = [];
  const boxes: Outbox<unknown>[] = [];
  afterEach(async () => {
    for (const b of boxes.splice(0)) await b.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  async function open(dir: string, maxLogBytes?: number) {
    const { outbox, problems } = await Outbox.open<{ n: number }>({ dir, maxLogBytes });
    boxes.push(outbox as Outbox<unknown>);
    assert.deepEqual(problems, []);
    return outbox;
  }
  function freshDir() {
    const dir = mkdtempSync(join(tmpdir(), "outbox-refused-"));
    dirs.push(dir);
    return dir;
  }
  const refusal = {
    kind: "refused" as const,
    at: 1,
    reason: "DUH",
    answer: '"DUH"0001R1L1#1234[]',
    detail: "primary x",
  };

  it("keeps a refused entry out of pending, lists it with the answer, and queues it again after those pending", async () => {
    const box = await open(freshDir());
    const a = await box.accept({ n: 1 }, "a");
    const b = await box.accept({ n: 2 }, "b");
    await box.finish(a.id, refusal);
    assert.deepEqual(
      box.pending().map((e) => e.id),
      [b.id],
    );
    assert.deepEqual(
      box.refusedEntries().map((e) => [e.id, e.reason, e.answer, e.payload]),
      [[a.id, "DUH", '"DUH"0001R1L1#1234[]', { n: 1 }]],
    );
    assert.equal(box.refusedCount, 1);
    assert.equal((await box.accept({ n: 1 }, "a")).duplicate, true, "still a duplicate while refused");
    assert.equal(await box.requeue(a.id), true);
    assert.equal(await box.requeue(a.id), false, "no longer refused");
    assert.deepEqual(
      box.pending().map((e) => e.id),
      [b.id, a.id],
    );
    assert.equal(box.refusedCount, 0);
  });

  it("reads refused and requeued entries back after a restart, and after a compaction", async () => {
    const dir = freshDir();
    let box = await open(dir, 4096);
    const ids: number[] = [];
    for (let n = 0; n < 3; n++) ids.push((await box.accept({ n }, `k${n}`)).id);
    await box.finish(ids[0]!, refusal);
    await box.finish(ids[1]!, refusal);
    await box.requeue(ids[1]!);
    await box.close();
    boxes.length = 0;
    box = await open(dir, 4096);
    assert.deepEqual(
      box.refusedEntries().map((e) => e.id),
      [ids[0]],
    );
    assert.deepEqual(
      box.pending().map((e) => e.id),
      [ids[2], ids[1]],
    );
    // Grow the log past 4 KiB so it is rewritten from the live state.
    for (let n = 0; n < 40; n++) await box.setMeta("pad", "x".repeat(200));
    assert.ok(box.stats.compactions >= 1);
    await box.close();
    boxes.length = 0;
    box = await open(dir, 4096);
    assert.deepEqual(
      box.refusedEntries().map((e) => [e.id, e.answer]),
      [[ids[0], '"DUH"0001R1L1#1234[]']],
    );
    assert.deepEqual(
      box.pending().map((e) => e.id),
      [ids[2], ids[1]],
    );
  });

  it('an entry finished as "failed" (logs written before refusals were kept) is done, as it was', async () => {
    const dir = freshDir();
    let box = await open(dir);
    const { id } = await box.accept({ n: 1 }, "old");
    await box.close();
    boxes.length = 0;
    appendFileSync(
      join(dir, "outbox.log"),
      encodeRecord({ t: "fin", id, o: { kind: "failed", at: 1, reason: "DUH" } }),
    );
    box = await open(dir);
    assert.equal(box.size, 0);
    assert.equal(box.refusedCount, 0);
  });
});
