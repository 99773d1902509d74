// The durable JSON file under the connectors' progress: what save() promises.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DurableJson } from "../../src/core/durable-json";
import { RUN_DIR } from "../standin/paths";

const dir = join(RUN_DIR, "durable-json-test");

function file(name: string) {
  mkdirSync(dir, { recursive: true });
  return new DurableJson<{ n: number }>(
    join(dir, name),
    () => ({ n: 0 }),
    (p) => ({ n: Number(p.n ?? 0) }),
  );
}

describe("DurableJson", () => {
  it("has every change made before save() on disk when it resolves, and reads it back", async () => {
    const a = file("a.json");
    rmSync(a.path, { force: true });
    a.update((v) => {
      v.n = 1;
    });
    await a.save();
    assert.deepEqual(JSON.parse(readFileSync(a.path, "utf8")), { n: 1 });
    const b = file("a.json");
    assert.deepEqual((await b.load()).progress, { n: 1 });
  });

  it("does not keep a caller waiting for changes made after its call", async () => {
    const a = file("b.json");
    a.update((v) => {
      v.n++;
    });
    let streaming = true;
    const first = a.save().then(() => streaming);
    // Changes keep coming (a burst of settlements), each with its own save.
    const saves: Promise<void>[] = [];
    const until = Date.now() + 300;
    while (Date.now() < until) {
      a.update((v) => {
        v.n++;
      });
      saves.push(a.save());
      await new Promise((r) => setImmediate(r));
    }
    streaming = false;
    assert.equal(await first, true, "the first save resolved while changes were still coming");
    await Promise.all(saves);
    assert.equal(JSON.parse(readFileSync(a.path, "utf8")).n, saves.length + 1);
  });

  it("rejects when the write fails, and writes the change on the next save", async () => {
    const blocked = join(dir, "blocked");
    rmSync(blocked, { recursive: true, force: true });
    writeFileSync(blocked, "a file where a directory should be");
    const a = new DurableJson<{ n: number }>(
      join(blocked, "c.json"),
      () => ({ n: 0 }),
      (p) => ({ n: Number(p.n) }),
    );
    a.update((v) => {
      v.n = 7;
    });
    await assert.rejects(a.save());
    rmSync(blocked);
    await a.save();
    assert.deepEqual(JSON.parse(readFileSync(join(blocked, "c.json"), "utf8")), { n: 7 });
  });

  it("reports an unreadable file instead of ignoring it, and starts empty", async () => {
    const a = file("d.json");
    writeFileSync(a.path, "{ torn");
    const { progress, problem } = await a.load();
    assert.deepEqual(progress, { n: 0 });
    assert.match(problem ?? "", /unreadable/);
  });
});
