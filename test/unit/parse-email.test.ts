// parseEmail: what alarm devices actually send (plain, HTML-only, pictures, legacy charsets) and what a hostile
// sender might, built in the test so no binary fixtures are committed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { discardSpool, type ParsedEmail, parseEmail } from "../../src/core/mail/parse-email";

const SPOOL_ROOT = join(__dirname, "..", "..", ".run", `test-spool-${process.pid}`);
let spoolCount = 0;
const nextSpoolDir = (): string => join(SPOOL_ROOT, `mail-${++spoolCount}`);

after(async () => {
  await rm(SPOOL_ROOT, { recursive: true, force: true });
});

/** Deterministic pseudo-random bytes, so a failure can be reproduced. */
function bytes(seed: string, length: number): Buffer {
  const out: Buffer[] = [];
  let block = Buffer.from(seed);
  for (let n = 0; n < length; n += 32) {
    block = createHash("sha256").update(block).digest();
    out.push(block);
  }
  return Buffer.concat(out).subarray(0, length);
}

function base64Lines(buf: Buffer): string {
  return (buf.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");
}

function mail(...lines: string[]): Buffer {
  return Buffer.from(lines.join("\r\n"), "latin1");
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

const JPEG = Buffer.concat([
  Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46]),
  bytes("jpeg", 300),
]);
const PNG = Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), bytes("png", 120)]);

describe("parseEmail: bodies", () => {
  it("reads a plain text alarm with no Message-ID and no Date", async () => {
    const email = await parseEmail(Buffer.from("Subject: Alarm\r\n\r\n123588\r\nBA\r\n1\r\n1\r\n"));
    assert.equal(email.subject, "Alarm");
    assert.equal(email.text, "123588\nBA\n1\n1\n");
    assert.equal(email.html, null);
    assert.equal(email.messageId, null);
    assert.equal(email.date, null);
    assert.deepEqual(email.from, []);
    assert.deepEqual(email.attachments, []);
    assert.deepEqual(email.headers, { subject: "Alarm" });
    assert.deepEqual(email.problems, []);
  });

  it("derives the text of an HTML-only alarm from its HTML", async () => {
    const email = await parseEmail(
      mail(
        "From: Freezer Monitor <monitor@cold.example>",
        "To: alarms@gateway.example, Ops <ops@gateway.example>",
        "Cc: backup@gateway.example",
        "Message-ID: <20250701.4471@cold.example>",
        "Date: Tue, 01 Jul 2025 10:15:00 +0200",
        "Subject: Temperature",
        "MIME-Version: 1.0",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<html><head><style>p{color:red}</style></head><body>",
        "<p><b>High Temperature Alarm</b> at <i>Pantry Freezer 3</i>, site 4471</p></body></html>",
        "",
      ),
    );
    assert.match(email.text, /High Temperature Alarm at Pantry Freezer 3, site 4471/);
    assert.doesNotMatch(email.text, /<|color:red/);
    assert.match(email.html ?? "", /<b>High Temperature Alarm<\/b>/);
    assert.equal(email.messageId, "20250701.4471@cold.example");
    assert.equal(email.date, "2025-07-01T08:15:00.000Z");
    assert.deepEqual(email.from, [{ address: "monitor@cold.example", name: "Freezer Monitor" }]);
    assert.deepEqual(email.to, [
      { address: "alarms@gateway.example", name: "" },
      { address: "ops@gateway.example", name: "Ops" },
    ]);
    assert.deepEqual(email.cc, [{ address: "backup@gateway.example", name: "" }]);
    assert.deepEqual(email.problems, []);
  });

  it("takes text and HTML from multipart/alternative", async () => {
    const email = await parseEmail(
      mail(
        "Subject: Door",
        "Content-Type: multipart/alternative; boundary=alt",
        "",
        "--alt",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Door 2 open",
        "--alt",
        "Content-Type: text/html; charset=us-ascii",
        "",
        "<p>Door <b>2</b> open</p>",
        "--alt--",
        "",
      ),
    );
    assert.equal(email.text.trim(), "Door 2 open");
    assert.equal(email.html?.trim(), "<p>Door <b>2</b> open</p>");
    assert.deepEqual(email.attachments, []);
  });

  it("fills the text when the only body is HTML inside multipart/mixed (mailparser leaves it empty)", async () => {
    const email = await parseEmail(
      mail(
        "Subject: Motion",
        "Content-Type: multipart/mixed; boundary=mix",
        "",
        "--mix",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<div>Motion detected</div><div>Camera <b>Yard</b> &amp; gate</div>",
        "--mix",
        "Content-Type: image/jpeg; name=snap.jpg",
        "Content-Transfer-Encoding: base64",
        "",
        base64Lines(JPEG),
        "--mix--",
        "",
      ),
    );
    assert.match(email.text, /Motion detected\s+Camera Yard & gate/);
    assert.equal(email.attachments.length, 1);
  });

  it("falls back to a tag stripper for HTML html-to-text refuses (too deeply nested)", async () => {
    const html = `${"<div>".repeat(1500)}Smoke in hall 7${"</div>".repeat(1500)}`;
    const email = await parseEmail(mail("Subject: x", "Content-Type: text/html", "", html, ""));
    assert.equal(email.text, "Smoke in hall 7");
    assert.ok(email.problems.some((p) => /HTML not converted to text.*nested/.test(p)));
  });
});

describe("parseEmail: attachments", () => {
  const related = mail(
    "Subject: Snapshot",
    "Content-Type: multipart/mixed; boundary=outer",
    "",
    "--outer",
    "Content-Type: multipart/related; boundary=rel",
    "",
    "--rel",
    "Content-Type: text/html; charset=utf-8",
    "",
    '<p>Intrusion zone 4</p><img src="cid:logo@cam">',
    "--rel",
    "Content-Type: image/png",
    "Content-ID: <logo@cam>",
    "Content-Disposition: inline",
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(PNG),
    "--rel--",
    "--outer",
    'Content-Type: image/JPEG; name="snapshot 1.jpg"',
    'Content-Disposition: attachment; filename="snapshot 1.jpg"',
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(JPEG),
    "--outer--",
    "",
  );

  it("keeps a JPEG attachment and an inline image in memory", async () => {
    const email = await parseEmail(related);
    assert.match(email.text, /Intrusion zone 4/);
    assert.equal(email.attachments.length, 2);
    const [inline, jpeg] = email.attachments;
    assert.equal(inline.inline, true);
    assert.equal(inline.contentId, "logo@cam");
    assert.equal(inline.contentType, "image/png");
    assert.equal(inline.filename, "");
    assert.deepEqual(inline.content, PNG);
    assert.equal(inline.size, PNG.length);
    assert.equal(jpeg.inline, false);
    assert.equal(jpeg.filename, "snapshot 1.jpg");
    assert.equal(jpeg.contentType, "image/jpeg");
    assert.equal(jpeg.size, JPEG.length);
    assert.deepEqual(jpeg.content, JPEG);
    assert.equal(jpeg.path, undefined);
    assert.deepEqual(email.problems, []);
  });

  it("gives the same result from a stream in small chunks as from a Buffer", async () => {
    const fromBuffer = await parseEmail(related);
    const fromStream = await parseEmail(chunked(related, 7));
    assert.deepEqual(fromStream, fromBuffer);
  });

  const clip = bytes("clip", 5000);
  const withClip = mail(
    "Subject: Clip",
    "Content-Type: multipart/mixed; boundary=b",
    "",
    "--b",
    "Content-Type: text/plain",
    "",
    "Motion at gate",
    "--b",
    "Content-Type: image/jpeg; name=small.jpg",
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(JPEG),
    "--b",
    'Content-Type: video/mp4; name="clip.mp4"',
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(clip),
    "--b--",
    "",
  );

  it("spools an attachment over the limit to disk, and discardSpool removes it", async () => {
    const spoolDir = nextSpoolDir();
    assert.equal(existsSync(spoolDir), false);
    const email = await parseEmail(chunked(withClip, 1000), { maxInMemoryBytes: 1024, spoolDir });
    assert.equal(email.text.trim(), "Motion at gate");
    const [small, big] = email.attachments;
    assert.deepEqual(small.content, JPEG);
    assert.equal(big.content, null);
    assert.equal(big.size, clip.length);
    assert.equal(big.filename, "clip.mp4");
    assert.ok(big.path?.startsWith(`${spoolDir}/`), big.path);
    assert.match(big.path ?? "", /\.mp4$/);
    assert.deepEqual(readFileSync(big.path ?? ""), clip);
    assert.ok(email.problems.some((p) => p.includes('"clip.mp4"') && p.includes("spooled to disk")));

    await discardSpool(email);
    assert.equal(existsSync(big.path ?? ""), false);
    assert.equal(existsSync(spoolDir), false, "the directory parseEmail created goes too");
    await discardSpool(email); // twice is harmless
  });

  it("hands an attachment under the limit back in memory, whole, even when it waited on disk meanwhile", async () => {
    const spoolDir = nextSpoolDir();
    const video = bytes("video", 3 * 1024 * 1024);
    const raw = mail(
      "From: cam@site.test",
      "Subject: Clip",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain",
      "",
      "Motion",
      "--b",
      'Content-Type: video/mp4; name="clip.mp4"',
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(video),
      "--b--",
      "",
    );
    const email = await parseEmail(chunked(raw, 64 * 1024), { maxInMemoryBytes: 10 * 1024 * 1024, spoolDir });
    const [clipPart] = email.attachments;
    assert.ok(Buffer.isBuffer(clipPart?.content));
    assert.equal(clipPart?.path, undefined);
    assert.ok(clipPart?.content?.equals(video), "the same bytes");
    assert.deepEqual(email.problems, []);
    assert.deepEqual(existsSync(spoolDir) ? readdirSync(spoolDir) : [], [], "nothing left on disk");
  });

  it("leaves a spool directory it did not create in place", async () => {
    const spoolDir = nextSpoolDir();
    const first = await parseEmail(withClip, { maxInMemoryBytes: 1024, spoolDir });
    const second = await parseEmail(withClip, { maxInMemoryBytes: 1024, spoolDir });
    assert.equal(readdirSync(spoolDir).length, 2);
    await discardSpool(second);
    assert.deepEqual(readdirSync(spoolDir), [first.attachments[1].path?.split("/").pop()]);
    await discardSpool(first);
    assert.equal(existsSync(spoolDir), false);
  });

  it("without a spoolDir counts an oversized attachment but does not keep it", async () => {
    const email = await parseEmail(withClip, { maxInMemoryBytes: 1024 });
    const big = email.attachments[1];
    assert.equal(big.content, null);
    assert.equal(big.path, undefined);
    assert.equal(big.size, clip.length);
    assert.deepEqual(email.attachments[0].content, JPEG);
    assert.ok(
      email.problems.some((p) => /"clip\.mp4".*too large.*not kept/.test(p)),
      email.problems.join("\n"),
    );
    assert.equal(email.text.trim(), "Motion at gate");
  });

  it("rejects when the caller destroys the source (e.g. a timeout) instead of waiting forever", async () => {
    const source = new Readable({ read() {} });
    source.push("Subject: Alarm\r\n\r\n1130");
    setTimeout(() => source.destroy(), 20);
    await assert.rejects(parseEmail(source), /^Error: email source failed: closed before the end/);
  });

  it("sanitises attachment file names", async () => {
    const email = await parseEmail(
      mail(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        'Content-Type: application/octet-stream; name="..\\\\..\\\\evil\x01\x1f.exe"',
        "",
        "x",
        "--b",
        'Content-Type: application/octet-stream; name="../../etc/passwd"',
        "",
        "y",
        "--b",
        'Content-Type: application/octet-stream; name=".."',
        "",
        "z",
        "--b--",
        "",
      ),
    );
    assert.deepEqual(
      email.attachments.map((a) => a.filename),
      ["evil.exe", "passwd", ""],
    );
  });

  it("rejects when the source stream fails, and removes what it spooled", async () => {
    const spoolDir = nextSpoolDir();
    const raw = mail(
      "Content-Type: multipart/mixed; boundary=b",
      "",
      "--b",
      "Content-Type: video/mp4; name=clip.mp4",
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(bytes("long clip", 300_000)),
      "--b--",
      "",
    );
    const source = new Readable({ read() {} });
    source.push(raw.subarray(0, 200_000));
    const fail = setTimeout(() => source.destroy(new Error("connection reset")), 200);
    let spooled = 0;
    const watch = setInterval(() => {
      try {
        spooled = Math.max(spooled, readdirSync(spoolDir).length);
      } catch {
        // not made yet, or removed between two looks (what the test wants in the end)
      }
    }, 1);
    try {
      await assert.rejects(
        parseEmail(source, { maxInMemoryBytes: 1024, spoolDir }),
        /^Error: email source failed: connection reset/,
      );
    } finally {
      clearInterval(watch);
      clearTimeout(fail);
    }
    assert.equal(spooled, 1, "the clip was being spooled when the source failed");
    assert.equal(existsSync(spoolDir), false);
  });
});

describe("parseEmail: charsets", () => {
  it("decodes an ISO-8859-1 quoted-printable body", async () => {
    const email = await parseEmail(
      mail(
        "Subject: Temperatur",
        "Content-Type: text/plain; charset=ISO-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "K=FChlraum 2: Temperatur =FCberschritten (8 =B0C), bitte pr=FCfen. Gr=FC=DFe",
        "",
      ),
    );
    assert.equal(email.text.trim(), "Kühlraum 2: Temperatur überschritten (8 °C), bitte prüfen. Grüße");
    assert.deepEqual(email.problems, []);
  });

  it("decodes RFC 2047 subjects in windows-1252 and Shift_JIS", async () => {
    const cp1252 = await parseEmail(mail("Subject: =?windows-1252?Q?K=FChlraum_=96_Kosten_=80_120?=", "", "x", ""));
    assert.equal(cp1252.subject, "Kühlraum – Kosten € 120");
    assert.equal(cp1252.headers.subject, "Kühlraum – Kosten € 120");

    // 警報 (alarm) and 火災 (fire) in Shift_JIS
    const sjis = Buffer.from([0x8c, 0x78, 0x95, 0xf1, 0x3a, 0x20, 0x89, 0xce, 0x8d, 0xd0]).toString("base64");
    const jp = await parseEmail(mail(`Subject: =?Shift_JIS?B?${sjis}?=`, "", "x", ""));
    assert.equal(jp.subject, "警報: 火災");
  });

  it("decodes an ISO-2022-JP body and a windows-1250 one", async () => {
    const jis = await parseEmail(mail("Content-Type: text/plain; charset=ISO-2022-JP", "", "\x1b$B7YJs\x1b(B 3F", ""));
    assert.equal(jis.text.trim(), "警報 3F");
    // "Žlutý kůň" in windows-1250, sent 8-bit
    const cz = await parseEmail(
      mail("Content-Type: text/plain; charset=windows-1250", "", "\x8elut\xfd k\xf9\xf2", ""),
    );
    assert.equal(cz.text.trim(), "Žlutý kůň");
  });

  it("reads undeclared 8-bit header bytes as windows-1252 and says so", async () => {
    const email = await parseEmail(mail("Subject: K\xfchlraum", "X-Site: M\xfcnchen", "", "x", ""));
    assert.equal(email.subject, "Kühlraum");
    assert.equal(email.headers["x-site"], "München");
    assert.ok(email.problems.some((p) => /x-site has 8-bit bytes/.test(p)));
  });

  it("reports a body in an unknown charset", async () => {
    const email = await parseEmail(mail("Content-Type: text/plain; charset=x-foo", "", "Gr\xfc\xdfe", ""));
    assert.ok(email.text.startsWith("Gr"));
    assert.ok(
      email.problems.some((p) => /text\/plain part .*charset x-foo.*U\+FFFD/.test(p)),
      email.problems[0],
    );
  });
});

describe("parseEmail: headers", () => {
  it("unfolds, joins repeated headers, decodes the subject, keeps other values raw", async () => {
    const email = await parseEmail(
      mail(
        "Received: from a by b;",
        "\tTue, 1 Jul 2025 10:00:00 +0000",
        "Received: from c by d; Tue, 1 Jul 2025 09:59:00 +0000",
        "Subject: =?utf-8?B?RmV1ZXJhbGFybQ==?=",
        "From: =?utf-8?Q?K=C3=BCche?= <kitchen@example.com>",
        "X-Alarm-Code: 1130",
        "__proto__: polluted",
        "",
        "body",
        "",
      ),
    );
    assert.equal(
      email.headers.received,
      "from a by b; Tue, 1 Jul 2025 10:00:00 +0000\nfrom c by d; Tue, 1 Jul 2025 09:59:00 +0000",
    );
    assert.equal(email.headers.subject, "Feueralarm");
    assert.equal(email.headers.from, "=?utf-8?Q?K=C3=BCche?= <kitchen@example.com>");
    assert.deepEqual(email.from, [{ address: "kitchen@example.com", name: "Küche" }]);
    assert.equal(email.headers["x-alarm-code"], "1130");
    assert.equal(Object.getPrototypeOf(email.headers), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(email.headers, "__proto__")?.value, "polluted");
  });

  it("gives null and a problem line for an invalid Date", async () => {
    const email = await parseEmail(mail("Date: yesterday-ish", "Message-ID: <>", "", "x", ""));
    assert.equal(email.date, null);
    assert.equal(email.messageId, null);
    assert.ok(email.problems.some((p) => /Date header "yesterday-ish" is not a valid date/.test(p)));
  });

  it("skips a header value over 64 KiB with a problem line", async () => {
    const email = await parseEmail(mail(`X-Huge: ${"a".repeat(70_000)}`, "Subject: Alarm", "", "1130", ""));
    assert.equal(email.headers["x-huge"], undefined);
    assert.equal(email.subject, "Alarm");
    assert.equal(email.text.trim(), "1130");
    assert.ok(email.problems.some((p) => /header x-huge skipped/.test(p)));
  });
});

describe("parseEmail: garbage and hostile input", () => {
  function assertEmpty(email: ParsedEmail): void {
    assert.equal(email.subject, "");
    assert.equal(email.messageId, null);
    assert.equal(email.date, null);
    assert.deepEqual(email.attachments, []);
  }

  it("resolves an empty message with empty fields", async () => {
    const email = await parseEmail(Buffer.alloc(0));
    assertEmpty(email);
    assert.equal(email.text, "");
    assert.equal(email.html, null);
    assert.deepEqual(email.headers, {});
    assert.deepEqual(email.problems, []);
  });

  it("resolves random bytes without crashing (mailparser reads them as junk header lines)", async () => {
    for (let i = 0; i < 20; i++) {
      const junk = bytes(`junk-${i}`, 4000 + i * 97);
      const email = await parseEmail(i % 2 ? junk : chunked(junk, 333));
      assert.equal(typeof email.text, "string");
      assert.ok(Array.isArray(email.problems));
      for (const [key, value] of Object.entries(email.headers)) {
        assert.match(key, /^[\x21-\x39\x3b-\x7e]+$/);
        assert.equal(typeof value, "string");
      }
    }
  });

  it("reports body text that has no blank line before it", async () => {
    const email = await parseEmail(Buffer.from("123588\r\nBA\r\n"));
    assertEmpty(email);
    assert.ok(email.problems.some((p) => /2 header lines without a "name:"/.test(p)));
  });

  it('rejects a header block over 1 MB with "unreadable email:"', async () => {
    await assert.rejects(
      parseEmail(mail(`X-A: ${"a".repeat(1_100_000)}`, "", "x")),
      /^UnreadableEmailError: unreadable email: Max header size/,
    );
  });

  it('rejects a message of more than 1000 MIME parts with "unreadable email:"', async () => {
    // parts big enough that mailparser hands out (and we spool) some before mailsplit counts part 1001
    const parts = ["Content-Type: multipart/mixed; boundary=b", ""];
    for (let i = 0; i < 1100; i++) parts.push("--b", "Content-Type: image/gif", "", "x".repeat(1000));
    parts.push("--b--", "");
    const spoolDir = nextSpoolDir();
    let spooled = 0;
    const watch = setInterval(() => {
      try {
        spooled = Math.max(spooled, readdirSync(spoolDir).length);
      } catch {
        // not made yet, or removed between two looks (what the test wants in the end)
      }
    }, 1);
    try {
      await assert.rejects(
        parseEmail(mail(...parts), { maxInMemoryBytes: 100, spoolDir }),
        /^UnreadableEmailError: unreadable email:/,
      );
    } finally {
      clearInterval(watch);
    }
    assert.ok(spooled > 0, "some attachments were spooled before the failure");
    assert.equal(existsSync(spoolDir), false, "and they are removed");
  });

  it("survives broken MIME structure", async () => {
    const cases = [
      'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n\r\n--',
      "Content-Type: multipart/mixed\r\n\r\nno boundary at all",
      "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64",
      "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4=\r\n",
      "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nSubject: inner\r\n\r\ninner body",
    ];
    for (const raw of cases) {
      const email = await parseEmail(Buffer.from(raw));
      assert.equal(typeof email.text, "string", raw);
    }
  });
});
