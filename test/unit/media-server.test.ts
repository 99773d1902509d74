// Alarm evidence on the gateway's disk and its signed links, with a real HTTP(S) client: a link works
// until it expires, a changed signature or id is refused, traversal and listing get nothing, Range
// serves a 25 MB clip in parts, and retention removes what is old or over the cap.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type MediaServer, parseRange, startMediaServer } from "../../src/core/media/media-server";
import { MediaStore } from "../../src/core/media/media-store";
import { checkSignedPath, signedPath, signingKeyBytes } from "../../src/core/media/signed-link";
import { ensureTestCertificates } from "../standin/certs";
import { RUN_DIR } from "../standin/paths";

const KEY = signingKeyBytes("c2lnbmluZy1rZXktb2YtdGhlLWNlbnRyZS0xMjM0NTY3OA==");
const JPEG = Buffer.from("ffd8ffe000104a46494600010100000100010000ffd9", "hex");

/** Raw request: the path is sent exactly as written (no URL normalisation by the client). */
function rawGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      const extra = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("end", () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf("\r\n\r\n");
      const head = all.subarray(0, split).toString("latin1");
      resolve({ status: Number(head.split(" ")[1]), head, body: all.subarray(split + 4) });
    });
  });
}

describe("alarm evidence: store, signed links, HTTP server", () => {
  let dir: string;
  let store: MediaStore;
  let server: MediaServer;
  let now = Date.now();
  const logged: string[] = [];
  let jpegId = "";
  let clipId = "";
  let clip: Buffer;

  before(async () => {
    dir = join(mkdtempSync(join(tmpdir(), "media-")), "media");
    store = new MediaStore({
      dir,
      types: ["image/jpeg", "video/*"],
      maxFileBytes: 30 * 1024 * 1024,
      retentionDays: 7,
      maxTotalBytes: 100 * 1024 * 1024,
    });
    clip = Buffer.alloc(25 * 1024 * 1024);
    for (let i = 0; i < clip.length; i += 4096) clip.writeUInt32BE(i, i);
    const spooled = join(dir, "..", "clip.mp4");
    writeFileSync(spooled, clip);
    const kept = await store.keep([
      { filename: "snap.jpg", contentType: "image/jpeg", size: JPEG.length, content: JPEG },
      { filename: "clip.mp4", contentType: "video/mp4", size: clip.length, path: spooled },
      { filename: "notes.html", contentType: "text/html", size: 10, content: Buffer.from("<b>hi</b>") },
    ]);
    assert.equal(kept.stored.length, 2);
    assert.deepEqual(
      kept.skipped.map((s) => s.filename),
      ["notes.html"],
    );
    jpegId = kept.stored[0]?.id ?? "";
    clipId = kept.stored[1]?.id ?? "";
    server = await startMediaServer({
      host: "127.0.0.1",
      port: 0,
      signingKey: KEY,
      store,
      log: (level, m) => logged.push(`${level}: ${m}`),
      now: () => now,
    });
  });
  after(async () => {
    await server?.close();
  });

  it("keeps files 0600 in a 0700 directory, named by a random id, never by the sender's name", () => {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const name of readdirSync(dir)) {
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, name);
      assert.match(name, /^[0-9a-f]{16}(\.json)?$/);
    }
  });

  it("a link works before expiry, with the stored type; 403 after it", async () => {
    const path = signedPath(KEY, jpegId, now + 60_000);
    assert.ok(path.length <= 60, `${path.length} characters`);
    const ok = await rawGet(server.port, path);
    assert.equal(ok.status, 200);
    assert.match(ok.head, /Content-Type: image\/jpeg/i);
    assert.match(ok.head, /X-Content-Type-Options: nosniff/i);
    assert.deepEqual(ok.body, JPEG);
    now += 61_000;
    const late = await rawGet(server.port, path);
    assert.equal(late.status, 403);
    assert.equal(late.body.includes(JPEG), false);
  });

  it("403 with a changed signature, or the signature of one id on another", async () => {
    const path = signedPath(KEY, jpegId, now + 60_000);
    const sig = path.split("/")[4] ?? "";
    // Every character changed in turn, the last one too (its low bits are unused in base64url).
    for (let i = 0; i < sig.length; i++) {
      const changed = sig.slice(0, i) + (sig[i] === "A" ? "B" : "A") + sig.slice(i + 1);
      const r = await rawGet(server.port, path.replace(sig, changed));
      assert.equal(r.status, 403, `character ${i} changed`);
    }
    // The same bytes spelt otherwise: the last character with one of its unused bits flipped.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(sig.slice(-1));
    const respelt = sig.slice(0, -1) + alphabet[last ^ 1];
    assert.deepEqual(Buffer.from(respelt, "base64url"), Buffer.from(sig, "base64url"));
    assert.equal((await rawGet(server.port, path.replace(sig, respelt))).status, 403, "another spelling");
    const other = path.replace(jpegId, clipId);
    assert.equal((await rawGet(server.port, other)).status, 403);
    const otherKey = signedPath(Buffer.from("another key of the same length!!"), jpegId, now + 60_000);
    assert.equal((await rawGet(server.port, otherKey)).status, 403);
    assert.ok(logged.some((l) => l.includes("signature does not match")));
  });

  it("traversal, encoded traversal, listing and other methods get nothing", async () => {
    const good = signedPath(KEY, jpegId, now + 60_000);
    for (const path of [
      "/",
      "/m/",
      `/m/${jpegId}`,
      `/m/../${jpegId}`,
      `/m/${jpegId}/../../etc/passwd`,
      "/m/%2e%2e/%2e%2e/etc/passwd",
      `/m/..%2f..%2f${jpegId}`,
      `${good}/..`,
      `${good}%00`,
      `/m/${jpegId}.json/${good.split("/")[3]}/${good.split("/")[4]}`,
      "/../../../../etc/passwd",
    ]) {
      const r = await rawGet(server.port, path);
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.equal(r.body.includes(JPEG), false, path);
      assert.doesNotMatch(r.body.toString("latin1"), /root:|[0-9a-f]{16}/, path);
    }
    const post = await new Promise<number>((resolve, reject) => {
      const s = connect(server.port, "127.0.0.1", () =>
        s.write(`POST ${good} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`),
      );
      s.once("data", (d) => resolve(Number(d.toString().split(" ")[1])));
      s.on("error", reject);
    });
    assert.equal(post, 405);
  });

  it("Range on a 25 MB clip: parts, the end, a suffix, past the end 416; HEAD says the size", async () => {
    const path = signedPath(KEY, clipId, now + 60_000);
    const mid = await rawGet(server.port, path, { Range: "bytes=10000000-10065535" });
    assert.equal(mid.status, 206);
    assert.match(mid.head, new RegExp(`Content-Range: bytes 10000000-10065535/${clip.length}`, "i"));
    assert.match(mid.head, /Content-Type: video\/mp4/i);
    assert.deepEqual(mid.body, clip.subarray(10_000_000, 10_065_536));
    const tail = await rawGet(server.port, path, { Range: "bytes=-1000" });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, clip.subarray(clip.length - 1000));
    const open = await rawGet(server.port, path, { Range: `bytes=${clip.length - 10}-` });
    assert.deepEqual(open.body, clip.subarray(clip.length - 10));
    const past = await rawGet(server.port, path, { Range: `bytes=${clip.length}-` });
    assert.equal(past.status, 416);
    assert.match(past.head, new RegExp(`Content-Range: bytes \\*/${clip.length}`, "i"));
    const whole = await rawGet(server.port, path);
    assert.equal(whole.status, 200);
    assert.equal(
      createHash("sha256").update(whole.body).digest("hex"),
      createHash("sha256").update(clip).digest("hex"),
    );
  });

  it("parses the Range forms a video player sends", () => {
    assert.deepEqual(parseRange("bytes=0-", 10), [0, 9]);
    assert.deepEqual(parseRange("bytes=2-4", 10), [2, 4]);
    assert.deepEqual(parseRange("bytes=2-400", 10), [2, 9]);
    assert.deepEqual(parseRange("bytes=-3", 10), [7, 9]);
    assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=0-1,4-5", 10), null, "several ranges: the whole file");
    assert.equal(parseRange("items=0-1", 10), null);
  });

  it("a link to a file removed by retention is 404, not an error", async () => {
    const path = signedPath(KEY, jpegId, now + 60_000);
    const removed = await store.cleanup(now + 8 * 86_400_000);
    assert.equal(removed.removed, 2, "both are past 7 days");
    assert.equal((await rawGet(server.port, path)).status, 404);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("retention keeps the total under the cap, oldest first", async () => {
    const small = new MediaStore({
      dir: join(dir, "..", "capped"),
      types: ["image/*"],
      maxFileBytes: 1000,
      retentionDays: 30,
      maxTotalBytes: 250,
    });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const kept = await small.keep([
        { filename: `${i}.png`, contentType: "image/png", size: 100, content: Buffer.alloc(100, i) },
      ]);
      ids.push(kept.stored[0]?.id ?? "");
      await new Promise((r) => setTimeout(r, 5));
    }
    const big = await small.keep([
      { filename: "big.png", contentType: "image/png", size: 5000, content: Buffer.alloc(5000) },
    ]);
    assert.equal(big.stored.length, 0);
    assert.match(big.skipped[0]?.why ?? "", /over the limit/);
    assert.deepEqual(await small.cleanup(), { removed: 2, bytes: 200 });
    assert.equal(await small.find(ids[0] ?? ""), null);
    assert.equal(await small.find(ids[1] ?? ""), null);
    assert.ok(await small.find(ids[2] ?? ""));
    assert.ok(await small.find(ids[3] ?? ""));
  });

  it("serves over HTTPS with the centre's certificate", async () => {
    const certs = ensureTestCertificates(join(RUN_DIR, "certs"));
    const kept = await store.keep([{ filename: "s.jpg", contentType: "image/jpeg", size: JPEG.length, content: JPEG }]);
    const id = kept.stored[0]?.id ?? "";
    const tls = await startMediaServer({
      host: "127.0.0.1",
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      signingKey: KEY,
      store,
      log: () => {},
    });
    try {
      const body = await new Promise<Buffer>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: "127.0.0.1",
            port: tls.port,
            path: signedPath(KEY, id, Date.now() + 60_000),
            ca: certs.ca,
            servername: "localhost",
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () => resolve(Buffer.concat(chunks)));
          },
        );
        req.on("error", reject);
        req.end();
      });
      assert.deepEqual(body, JPEG);
    } finally {
      await tls.close();
    }
  });

  it("checkSignedPath says why", () => {
    const path = signedPath(KEY, jpegId, 2_000_000_000_000);
    assert.deepEqual(checkSignedPath(KEY, path, 1_000_000_000_000), {
      ok: true,
      id: jpegId,
      expiresAtMs: 2_000_000_000_000,
    });
    assert.equal(checkSignedPath(KEY, path, 2_000_000_000_001).ok, false);
    assert.deepEqual(checkSignedPath(KEY, "/m/x", 0), { ok: false, status: 404, why: "not a media link" });
  });
});
