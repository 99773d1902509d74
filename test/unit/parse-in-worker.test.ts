// Parsing on the worker thread gives exactly what parsing on the main thread gives, and a worker
// that is gone costs nothing but speed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

// The built modules (npm test builds first), as Node-RED loads them: the worker thread runs the
// built parse-worker.js, which needs no TypeScript loader.
const { parseEmail, UnreadableEmailError } =
  require("../../nodes/core/mail/parse-email.js") as typeof import("../../src/core/mail/parse-email");
const { parseInWorker, parseWorkerReady, parseWorkerRunning, stopParseWorker } =
  require("../../nodes/core/mail/parse-in-worker.js") as typeof import("../../src/core/mail/parse-in-worker");

const FIXTURES = join(__dirname, "..", "fixtures", "emails");

describe("parseInWorker", () => {
  beforeEach(async () => {
    assert.equal(await parseWorkerReady(), true, "the worker starts");
  });

  it("gives the same email as parseEmail for every fixture", async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".eml"));
    assert.ok(files.length >= 19);
    // All at once, as a burst comes: answers must find their own callers.
    const results = await Promise.all(
      files.map(async (f) => {
        const source = readFileSync(join(FIXTURES, f));
        return [f, await parseInWorker(source, {}), await parseEmail(source, {})] as const;
      }),
    );
    for (const [file, onWorker, onMain] of results) assert.deepEqual(onWorker, onMain, file);
  });

  it("gives attachments back as Buffers", async () => {
    const source = readFileSync(join(FIXTURES, "camera-html-inline-image.eml")); // a snapshot inline
    const [attachment] = (await parseInWorker(source, {})).attachments;
    const [same] = (await parseEmail(source, {})).attachments;
    assert.ok(Buffer.isBuffer(attachment?.content));
    assert.ok(attachment?.content?.equals(same?.content ?? Buffer.alloc(0)));
    assert.ok((attachment?.size ?? 0) > 0);
  });

  it("throws UnreadableEmailError for MIME the parser refuses, as parseEmail does", async () => {
    const source = Buffer.from(`Subject: x\r\nX-A: ${"a".repeat(1_100_000)}\r\n\r\nbody`); // header block over 1 MB
    const onMain = await parseEmail(source, {}).then(
      () => null,
      (err: unknown) => err,
    );
    const onWorker = await parseInWorker(source, {}).then(
      () => null,
      (err: unknown) => err,
    );
    assert.ok(onMain instanceof UnreadableEmailError);
    assert.ok(onWorker instanceof UnreadableEmailError);
    assert.equal(onWorker.message, onMain.message);
  });

  it("answers every email of a batch on its own: one unreadable email among 70 fails alone", async () => {
    // 70 emails sent in one turn go to the worker in several messages (at most 32 each), and come
    // back in one reply per message: each caller must still get its own email, or its own error.
    const good = readFileSync(join(FIXTURES, "plain-4-line.eml"));
    const bad = Buffer.from(`Subject: x\r\nX-A: ${"a".repeat(1_100_000)}\r\n\r\nbody`);
    const sources = Array.from({ length: 70 }, (_, i) =>
      i === 40 ? bad : Buffer.from(good.toString("latin1").replace("Subject:", `Subject: n${i}`), "latin1"),
    );
    const results = await Promise.all(
      sources.map((s) =>
        parseInWorker(s, {}).then(
          (email) => email.subject,
          (err: unknown) => err,
        ),
      ),
    );
    assert.equal(parseWorkerRunning(), true, "on the worker, not fallen back to the main thread");
    for (const [i, result] of results.entries()) {
      if (i === 40) assert.ok(result instanceof UnreadableEmailError, "the unreadable one");
      else assert.match(String(result), new RegExp(`^n${i} `), `email ${i} gets its own answer`);
    }
  });

  it("parses on the main thread when the worker dies mid-parse", async () => {
    const source = readFileSync(join(FIXTURES, "plain-4-line.eml"));
    const parsing = parseInWorker(source, {});
    await stopParseWorker(); // as if the worker crashed with the email on it
    assert.equal(parseWorkerRunning(), false);
    assert.deepEqual(await parsing, await parseEmail(source, {}));
    // the next email starts a new worker, and is parsed here until it is ready
    assert.deepEqual(await parseInWorker(source, {}), await parseEmail(source, {}));
    assert.equal(await parseWorkerReady(), true);
    assert.equal(parseWorkerRunning(), true);
  });

  it("keeps the worker (compiled, warm) between bursts and ends it 10 minutes after its last email", async (t) => {
    const source = readFileSync(join(FIXTURES, "plain-4-line.eml"));
    t.mock.timers.enable({ apis: ["setTimeout"] });
    await parseInWorker(source, {});
    assert.equal(parseWorkerRunning(), true);
    t.mock.timers.tick(9 * 60_000);
    assert.equal(parseWorkerRunning(), true, "a burst some minutes later finds the same worker");
    await parseInWorker(source, {}); // the next burst: ten minutes from now on
    t.mock.timers.tick(9 * 60_000);
    assert.equal(parseWorkerRunning(), true);
    t.mock.timers.tick(60_000);
    t.mock.timers.reset();
    for (let i = 0; i < 100 && parseWorkerRunning(); i++) await sleep(20);
    assert.equal(parseWorkerRunning(), false, "ended: its memory is given back");
  });
});
