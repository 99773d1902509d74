// Writes the hostile email corpus of the soak (scenario 6) into .run/hostile-corpus: malformed MIME,
// deep nesting (10,000 parts), a 100 MB attachment, invalid and exotic charsets, header injection,
// overlong lines, HTML bombs, empty emails, and valid alarms wrapped in all of that. Deterministic:
// the same options write the same bytes (fixed dates, seeded randomness). Nothing here is committed.
//   node --import tsx test/hostile/generate-corpus.ts [--out <dir>] [--big-mb 100] [--count 50]
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { seededRandom } from "../helpers/soak-report";
import { RUN_DIR } from "../standin/paths";

export type Category =
  | "malformed-mime"
  | "nesting"
  | "big-attachment"
  | "charset"
  | "header-injection"
  | "overlong-lines"
  | "html-bomb"
  | "empty"
  | "wrapped-alarm";

/**
 * mapped: a valid classic alarm is in there and must come out (its account is `account`);
 * rejected: nothing in there is an alarm; either: garbage that may or may not read as one.
 */
export type Expectation = "mapped" | "rejected" | "either";

export interface CorpusEntry {
  id: number;
  file: string;
  category: Category;
  title: string;
  expect: Expectation;
  /** The alarm's account when expect is "mapped". */
  account?: string;
  bytes: number;
}

export interface CorpusOptions {
  dir?: string;
  /** Size of the one very large attachment (decoded), MiB. */
  bigMiB?: number;
  seed?: number;
}

export const CORPUS_DIR = join(RUN_DIR, "hostile-corpus");
const DATE = "Fri, 27 Nov 2026 10:00:00 +0000";

interface Draft {
  category: Category;
  title: string;
  expect: Expectation;
  account?: string;
  raw: Buffer;
}

/** Account of the alarm in corpus email n: "C" and the number, hexadecimal as DC-09 wants. */
export function corpusAccount(n: number): string {
  return `C${String(n).padStart(6, "0")}`;
}

const lines = (account: string, eol = "\r\n") => `${account}${eol}BA${eol}1${eol}1${eol}`;

function b64(data: Buffer | string): string {
  return Buffer.from(data).toString("base64").replace(/.{76}/g, "$&\r\n");
}

export function generateCorpus(opts: CorpusOptions = {}): CorpusEntry[] {
  const dir = opts.dir ?? CORPUS_DIR;
  const bigMiB = opts.bigMiB ?? 100;
  const random = seededRandom(opts.seed ?? 9);
  const drafts: Draft[] = [];
  let n = 0;
  const id = () => `<corpus-${n}@hostile.test>`;
  /** Headers of an ordinary email; `extra` comes last, `omit` drops some. */
  const head = (subject: string, extra = "", omit: string[] = []) =>
    [
      ["From", "Panel <panel@site.hostile.test>"],
      ["To", "alarms@contoso.test"],
      ["Subject", subject],
      ["Date", DATE],
      ["Message-ID", id()],
      ["MIME-Version", "1.0"],
    ]
      .filter(([k]) => !omit.includes(k!))
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("") + extra;
  const add = (category: Category, title: string, expect: Expectation, raw: string | Buffer, mapped = false) => {
    drafts.push({
      category,
      title,
      expect,
      account: mapped ? corpusAccount(n) : undefined,
      raw: typeof raw === "string" ? Buffer.from(raw, "utf8") : raw,
    });
    n++;
  };
  const account = () => corpusAccount(n);
  const text = "Content-Type: text/plain; charset=utf-8\r\n";

  // --- malformed MIME ---------------------------------------------------------------------------
  const placements = ["first", "middle", "last"] as const;
  for (const where of placements) {
    const body = (a: string) => (where === "first" ? `${lines(a)}junk after\r\n` : where === "middle" ? `x\r\n` : "");
    add(
      "malformed-mime",
      `multipart without boundary parameter (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed\r\n")}\r\n${lines(account())}${body(account())}`,
    );
    add(
      "malformed-mime",
      `boundary declared, never used (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=never\r\n")}\r\n${lines(account())}`,
    );
    add(
      "malformed-mime",
      `unterminated multipart (${where})`,
      "either",
      `${head("Alarm", 'Content-Type: multipart/mixed; boundary="b"\r\n')}\r\n--b\r\n${text}\r\n${lines(account())}--b\r\n${text}\r\nmore`,
    );
    add(
      "malformed-mime",
      `boundary mismatch (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=b1\r\n")}\r\n--b2\r\n${text}\r\n${lines(account())}--b2--\r\n`,
    );
    add(
      "malformed-mime",
      `broken base64 text part (${where})`,
      "either",
      `${head("Alarm", `${text}Content-Transfer-Encoding: base64\r\n`)}\r\n${b64(lines(account())).slice(0, 9)}!!!@@@***\r\n====\r\n`,
    );
    add(
      "malformed-mime",
      `broken quoted-printable (${where})`,
      "either",
      `${head("Alarm", `${text}Content-Transfer-Encoding: quoted-printable\r\n`)}\r\n${account()}=ZZ=\r\nBA=0\r\n1=\r\n=1=`,
    );
    add(
      "malformed-mime",
      `Content-Type garbage ";;;;" (${where})`,
      "either",
      `${head("Alarm", "Content-Type: ;;;;;;==\r\n")}\r\n${lines(account())}`,
    );
    add(
      "malformed-mime",
      `Content-Type "multipart/" with no subtype (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/; boundary=x\r\n")}\r\n--x\r\n\r\n${lines(account())}--x--\r\n`,
    );
    add(
      "malformed-mime",
      `no blank line between headers and body (${where})`,
      "either",
      `${head("Alarm", text)}${lines(account())}`,
    );
    add(
      "malformed-mime",
      `conflicting Content-Type headers (${where})`,
      "either",
      `${head("Alarm", `Content-Type: text/html\r\nContent-Type: multipart/mixed; boundary=q\r\n${text}`)}\r\n${lines(account())}`,
    );
    add(
      "malformed-mime",
      `unknown transfer encoding x-gzip (${where})`,
      "either",
      `${head("Alarm", `${text}Content-Transfer-Encoding: x-gzip\r\n`)}\r\n\x1f\x8b\x08\x00garbage${lines(account())}`,
    );
    add(
      "malformed-mime",
      `truncated inside a header (${where})`,
      "either",
      `${head("Alarm")}Content-Type: multipart/mixed; bound`,
    );
    add(
      "malformed-mime",
      `truncated inside a base64 attachment (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=t\r\n")}\r\n--t\r\n${text}\r\n${lines(account())}--t\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQSkZJRgABAQ`,
    );
    add(
      "malformed-mime",
      `empty boundary="" (${where})`,
      "either",
      `${head("Alarm", 'Content-Type: multipart/mixed; boundary=""\r\n')}\r\n--\r\n${text}\r\n${lines(account())}----\r\n`,
    );
    add(
      "malformed-mime",
      `boundary of 500 characters (${where})`,
      "either",
      `${head("Alarm", `Content-Type: multipart/mixed; boundary="${"b".repeat(500)}"\r\n`)}\r\n--${"b".repeat(500)}\r\n${text}\r\n${lines(account())}--${"b".repeat(500)}--\r\n`,
    );
    add(
      "malformed-mime",
      `part headers run into the part body (${where})`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=p\r\n")}\r\n--p\r\nContent-Type: text/plain\r\n${lines(account())}--p--\r\n`,
    );
    add(
      "malformed-mime",
      `continuation line before any header (${where})`,
      "either",
      ` folded: nothing\r\n${head("Alarm", text)}\r\n${lines(account())}`,
    );
    add(
      "malformed-mime",
      `bare LF line ends (${where})`,
      "mapped",
      `${head("Alarm", text)}\r\n${lines(account(), "\n")}`.replace(/\r\n/g, "\n"),
      true,
    );
    add(
      "malformed-mime",
      `bare CR line ends (${where})`,
      "either",
      `${head("Alarm", text)}\r\n${lines(account(), "\r")}`.replace(/\r\n/g, "\r"),
    );
    add(
      "malformed-mime",
      `NUL bytes in the body (${where})`,
      "either",
      `${head("Alarm", text)}\r\n\0\0${lines(account())}\0`,
    );
    add(
      "malformed-mime",
      `NUL byte in a header (${where})`,
      "either",
      `${head("Al\0arm", text)}\r\n${lines(account())}`,
    );
    add(
      "malformed-mime",
      `RFC 2231 filename with a broken encoding (${where})`,
      "mapped",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=r\r\n")}\r\n--r\r\n${text}\r\n${lines(account())}--r\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8'en'%ZZ%E2%82%../../etc/passwd; filename*0*=x; filename*1*=%FF\r\n\r\nAAAA\r\n--r--\r\n`,
      true,
    );
    add(
      "malformed-mime",
      `message/rfc822 part holding garbage (${where})`,
      "mapped",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=m\r\n")}\r\n--m\r\n${text}\r\n${lines(account())}--m\r\nContent-Type: message/rfc822\r\n\r\n\0\0\0::::\r\n--m--\r\n`,
      true,
    );
  }

  // --- nesting ------------------------------------------------------------------------------------
  const nested = (depth: number, inner: string) => {
    let out = inner;
    for (let d = depth; d > 0; d--)
      out = `Content-Type: multipart/mixed; boundary="n${d}"\r\n\r\n--n${d}\r\n${out}\r\n--n${d}--\r\n`;
    return out;
  };
  for (const depth of [10, 100, 1000, 10_000]) {
    add(
      "nesting",
      `${depth} nested multiparts, alarm innermost`,
      "either",
      `${head("Alarm")}${nested(depth, `${text}\r\n${lines(account())}`)}`,
    );
  }
  add(
    "nesting",
    "10,000 nested multiparts, alarm outside them",
    "either",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=top\r\n")}\r\n--top\r\n${text}\r\n${lines(account())}--top\r\n${nested(10_000, `${text}\r\ninner`)}--top--\r\n`,
  );
  for (const count of [1000, 10_000]) {
    const parts = Array.from({ length: count }, (_, i) => `--s\r\n${text}\r\npart ${i}\r\n`).join("");
    add(
      "nesting",
      `${count} sibling parts after the alarm part`,
      "either",
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=s\r\n")}\r\n--s\r\n${text}\r\n${lines(account())}${parts}--s--\r\n`,
    );
  }
  let rfc822 = `${text}\r\n${lines(corpusAccount(n))}`;
  for (let d = 0; d < 200; d++) rfc822 = `Content-Type: message/rfc822\r\n\r\nSubject: level ${d}\r\n${rfc822}`;
  add("nesting", "200 nested message/rfc822", "either", `${head("Alarm")}${rfc822}`);
  add(
    "nesting",
    "1000 nested multipart/alternative, no text",
    "rejected",
    `${head("Alarm")}${nested(1000, "Content-Type: image/gif\r\n\r\nGIF89a")}`.replace(
      /multipart\/mixed/g,
      "multipart/alternative",
    ),
  );
  for (let i = 0; i < 3; i++) {
    add(
      "nesting",
      `5000 nested parts with attachments, variant ${i}`,
      "either",
      `${head("Alarm")}${nested(5000, `Content-Type: application/octet-stream; name=f${i}.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64("x".repeat(1000))}`)}`,
    );
  }

  // --- big attachments (the one of bigMiB MiB is a valid alarm from a camera) -------------------------
  for (const mib of [bigMiB, 11, 25]) {
    const size = mib * 1024 * 1024;
    const clip = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) clip[i] = Math.floor(random() * 256);
    const start = `${head("Alarm", "Content-Type: multipart/mixed; boundary=clip\r\n")}\r\n--clip\r\n${text}\r\n${lines(account())}--clip\r\nContent-Type: video/mp4; name=clip.mp4\r\nContent-Disposition: attachment; filename=clip.mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
    add(
      "big-attachment",
      `${mib} MiB attachment with a valid alarm`,
      "mapped",
      Buffer.concat([Buffer.from(start), Buffer.from(b64(clip)), Buffer.from("\r\n--clip--\r\n")]),
      true,
    );
  }
  add(
    "big-attachment",
    "20 MiB attachment with broken base64 throughout",
    "mapped",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=bb\r\n")}\r\n--bb\r\n${text}\r\n${lines(account())}--bb\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n${"!@#$%^&*()_+{}|".repeat(1_400_000)}\r\n--bb--\r\n`,
    true,
  );
  add(
    "big-attachment",
    "200 attachments of 50 KiB",
    "mapped",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=many\r\n")}\r\n--many\r\n${text}\r\n${lines(account())}${Array.from({ length: 200 }, (_, i) => `--many\r\nContent-Type: image/jpeg; name=s${i}.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(Buffer.alloc(50 * 1024, i))}\r\n`).join("")}--many--\r\n`,
    true,
  );

  // --- charsets -------------------------------------------------------------------------------------
  const declared = [
    "utf-7",
    "iso-2022-jp",
    "gb18030",
    "big5",
    "koi8-r",
    "windows-1251",
    "ibm037",
    "utf-16le",
    "utf-16be",
    "utf-32",
    "shift_jis",
    "euc-kr",
    "unknown-8bit",
    "x-user-defined",
    "utf8",
    "UTF-8 ",
    "../../etc/passwd",
    'utf-8"; x="y',
    "c".repeat(10_000),
    "utf-\u00008",
    "iso-8859-99",
    "windows-65001",
    "",
  ];
  for (const cs of declared) {
    add(
      "charset",
      `declared charset ${JSON.stringify(cs.slice(0, 30))}, ASCII alarm`,
      "either",
      `${head("Alarm", `Content-Type: text/plain; charset="${cs}"\r\n`)}\r\n${lines(account())}`,
    );
  }
  for (const [cs, encode] of [
    ["utf-16le", (s: string) => Buffer.from(s, "utf16le")],
    ["utf-16be", (s: string) => Buffer.from(s, "utf16le").swap16()],
    ["iso-8859-1", (s: string) => Buffer.from(s, "latin1")],
  ] as const) {
    const a = account();
    add(
      "charset",
      `alarm properly encoded in ${cs} (base64)`,
      "mapped",
      `${head("Alarm", `Content-Type: text/plain; charset=${cs}\r\nContent-Transfer-Encoding: base64\r\n`)}\r\n${b64(encode(lines(a)))}\r\n`,
      true,
    );
  }
  const badUtf8 = [
    Buffer.from([0xc0, 0xaf]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xff, 0xfe, 0xfd]),
    Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    Buffer.from([0xe2, 0x82]),
    Buffer.from([0xef, 0xbb, 0xbf]),
  ];
  for (const [i, bad] of badUtf8.entries()) {
    add(
      "charset",
      `invalid UTF-8 sequence ${i + 1} before the alarm lines`,
      "either",
      Buffer.concat([Buffer.from(`${head("Alarm", text)}\r\n`), bad, Buffer.from(`\r\n${lines(account())}`)]),
    );
    add(
      "charset",
      `invalid UTF-8 sequence ${i + 1} inside the subject`,
      "mapped",
      Buffer.concat([
        Buffer.from(`${head("Al", "", ["Subject"])}Subject: Al`),
        bad,
        Buffer.from(`arm\r\n${text}\r\n${lines(account())}`),
      ]),
      true,
    );
  }
  const words = [
    "=?bogus-charset?Q?Alarm?=",
    "=?utf-8?B?!!!notbase64!!!?=",
    "=?utf-8?Q?=ZZ=?=",
    "=?utf-8?Q?=?utf-8?Q?nested?=?=",
    "=?utf-8?B?QWxhcm0=?=".repeat(1000),
    "=?utf-7?Q?+ADw-script+AD4-?=",
    "=?iso-2022-jp?B?GyRCJCIbKEI=?=",
    "\u202eevil\u202c \u200b\u200b Alarm 🔥",
    `=?utf-8?Q?${"=E2=80=AE".repeat(500)}?=`,
  ];
  for (const w of words) {
    add(
      "charset",
      `encoded-word subject ${JSON.stringify(w.slice(0, 24))}`,
      "mapped",
      `${head(w, text)}\r\n${lines(account())}`,
      true,
    );
  }

  // --- header injection -------------------------------------------------------------------------------
  // Past the MIME parser's limits (1 MiB of header): unreadable, rejected to review with that reason.
  const overLimits = new Set(["1 MiB header value", "100,000 folded continuation lines"]);
  const injections: [string, string][] = [
    ["CRLF in an encoded subject", "Subject: =?utf-8?Q?Alarm=0D=0ABcc:_victim@evil.test=0D=0A=0D=0A999999?=\r\n"],
    ["CRLF in an encoded From", "From: =?utf-8?Q?x=0D=0ATo:_a@evil.test?= <p@x.test>\r\n"],
    ["header named __proto__", '__proto__: {"polluted":true}\r\n'],
    ["header named constructor", "constructor: prototype\r\n"],
    ["header named toString", "toString: 1\r\nhasOwnProperty: 2\r\nvalueOf: 3\r\n"],
    ["10,000 headers", Array.from({ length: 10_000 }, (_, i) => `X-Filler-${i}: ${i}\r\n`).join("")],
    ["1 MiB header value", `X-Huge: ${"h".repeat(1024 * 1024)}\r\n`],
    ["100,000 folded continuation lines", `X-Folded: start\r\n${" more\r\n".repeat(100_000)}`],
    ["Message-ID with CRLF and spaces", "Message-ID: <a b\r\n c@x>\r\n"],
    ["10 KiB Message-ID", `Message-ID: <${"m".repeat(10_240)}@x>\r\n`],
    ["empty Message-ID <>", "Message-ID: <>\r\n"],
    ["three Message-IDs", "Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\nMessage-ID: <three@x>\r\n"],
    [
      "Authentication-Results dmarc=pass in a display name",
      'From: "dmarc=pass header.from=bank.test" <a@evil.test>\r\n',
    ],
    [
      "1000 Received headers",
      Array.from({ length: 1000 }, (_, i) => `Received: from hop${i} by hop${i + 1}; ${DATE}\r\n`).join(""),
    ],
    ["header of just a colon", ":\r\n: :\r\n"],
    ["header name with spaces", "X Spaced Name: value\r\n"],
    ["two From headers", "From: first@a.test\r\nFrom: second@b.test\r\n"],
    ["From with 1000 addresses", `From: ${Array.from({ length: 1000 }, (_, i) => `a${i}@x.test`).join(", ")}\r\n`],
    ["From: <>", "From: <>\r\n"],
    ["group syntax and comments", 'From: Alarms:(c) a@b.test (comment (nested)), "q\\"uote" <c@d.test>;\r\n'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a template injection attempt is the point
    ["template and JSONata injection", "Subject: {{msg.payload}} ${process.exit(1)} $eval('1') #{7*7}\r\n"],
    ["JSON in a header", 'X-Alarm: {"account":"DEAD","eventCode":"BA"}\r\n'],
    ["alarm lines smuggled in a header", "X-Body: 999999\r\n BA\r\n 1\r\n 1\r\n"],
    ["Subject of 100,000 characters", `Subject: ${"S".repeat(100_000)}\r\n`],
    ["IDN and homoglyph sender", "From: =?utf-8?B?0JDQu9Cw0YDQvA==?= <alarm@xn--80ak6aa92e.test>\r\n"],
  ];
  // The sender checks refuse an email with more than one From (a reader shows one, the checks might read
  // another: RFC 5322 section 3.6 allows exactly one): rejected to review with that reason, by design.
  const spoofRefused = new Set(["two From headers"]);
  for (const [title, extra] of injections) {
    const omit = ["Subject", "From", "Message-ID"].filter((h) => extra.toLowerCase().startsWith(`${h.toLowerCase()}:`));
    const valid = !overLimits.has(title) && !spoofRefused.has(title);
    add(
      "header-injection",
      title,
      valid ? "mapped" : "rejected",
      `${head("Alarm", `${extra}${text}`, omit)}\r\n${lines(account())}`,
      valid,
    );
  }
  // A quoted parameter holding CRLF CRLF ends the header there: what follows is the body, as any reader sees it.
  add(
    "header-injection",
    "Content-Type parameter with CRLF CRLF",
    "either",
    `${head("Alarm", 'Content-Type: text/plain; charset="utf-8\r\n\r\n999999\r\nBA"\r\n')}\r\n${lines(account())}`,
  );
  for (let i = 0; i < 14; i++) {
    const junk = Array.from({ length: 40 }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join("");
    add(
      "header-injection",
      `random printable header ${i + 1}`,
      "mapped",
      `${head("Alarm", `X-Junk-${i}: ${junk}\r\n${text}`)}\r\n${lines(account())}`,
      true,
    );
  }

  // --- overlong lines ---------------------------------------------------------------------------------
  for (const size of [1024 * 1024, 10 * 1024 * 1024]) {
    add(
      "overlong-lines",
      `one body line of ${size >> 20} MiB, then the alarm`,
      "either",
      `${head("Alarm", text)}\r\n${"L".repeat(size)}\r\n${lines(account())}`,
    );
    add(
      "overlong-lines",
      `the alarm, then one body line of ${size >> 20} MiB`,
      "mapped",
      `${head("Alarm", text)}\r\n${lines(account())}${"L".repeat(size)}\r\n`,
      true,
    );
  }
  add(
    "overlong-lines",
    "100,000 short lines after the alarm",
    "mapped",
    `${head("Alarm", text)}\r\n${lines(account())}${"x\r\n".repeat(100_000)}`,
    true,
  );
  add(
    "overlong-lines",
    "100,000 short lines before the alarm",
    "either",
    `${head("Alarm", text)}\r\n${"x\r\n".repeat(100_000)}${lines(account())}`,
  );
  add(
    "overlong-lines",
    "1 MiB of carriage returns",
    "rejected",
    `${head("Alarm", text)}\r\n${"\r".repeat(1024 * 1024)}`,
  );
  add("overlong-lines", "1 MiB line of spaces", "rejected", `${head("Alarm", text)}\r\n${" ".repeat(1024 * 1024)}\r\n`);
  add(
    "overlong-lines",
    "account padded with 10,000 spaces",
    "either",
    `${head("Alarm", text)}\r\n${account()}${" ".repeat(10_000)}\r\nBA\r\n1\r\n1\r\n`,
  );
  add(
    "overlong-lines",
    "header line of 998+ characters",
    "mapped",
    `${head("Alarm", `X-Long: ${"y".repeat(5000)}\r\n${text}`)}\r\n${lines(account())}`,
    true,
  );
  for (let i = 0; i < 20; i++) {
    const len = 1000 + Math.floor(random() * 200_000);
    add(
      "overlong-lines",
      `alarm then a random line of ${len} chars`,
      "mapped",
      `${head("Alarm", text)}\r\n${lines(account())}${"z".repeat(len)}\r\n`,
      true,
    );
  }

  // --- HTML bombs ---------------------------------------------------------------------------------------
  const html = "Content-Type: text/html; charset=utf-8\r\n";
  const bombs: [string, string][] = [
    ["10,000 nested divs", `${"<div>".repeat(10_000)}x${"</div>".repeat(10_000)}`],
    ["100,000 nested divs", `${"<div>".repeat(100_000)}x`],
    ["1,000,000 &amp; entities", "&amp;".repeat(1_000_000)],
    ["5 MiB of paragraphs", "<p>lorem ipsum</p>".repeat(300_000)],
    ["table of 100,000 cells", `<table><tr>${"<td>c</td>".repeat(100_000)}</tr></table>`],
    ["100,000 unclosed tags", "<b><i><u>".repeat(33_334)],
    ["100,000 unterminated comments", "<!--".repeat(100_000)],
    ["1 MiB script", `<script>${"var a=1;".repeat(130_000)}</script>`],
    ["1,000,000 <br>", "<br>".repeat(1_000_000)],
    ["numeric entities out of range", "&#xFFFFFFFF;&#0;&#xD800;&#99999999999;".repeat(1000)],
    ["meta charset contradicting the header", '<meta charset="utf-16"><p>x</p>'],
    ["deep lists", `${"<ul><li>".repeat(20_000)}x`],
  ];
  for (const [title, bomb] of bombs) {
    add("html-bomb", `HTML only: ${title}`, "either", `${head("Alarm", html)}\r\n${bomb}\r\n`);
    add(
      "html-bomb",
      `alarm in text/plain, HTML alternative: ${title}`,
      "mapped",
      `${head("Alarm", "Content-Type: multipart/alternative; boundary=alt\r\n")}\r\n--alt\r\n${text}\r\n${lines(account())}--alt\r\n${html}\r\n${bomb}\r\n--alt--\r\n`,
      true,
    );
  }
  for (let i = 0; i < 12; i++) {
    const a = account();
    add(
      "html-bomb",
      `HTML-only alarm after ${(i + 1) * 1000} nested spans`,
      "either",
      `${head("Alarm", html)}\r\n${"<span>".repeat((i + 1) * 1000)}<p>${a}</p><p>BA</p><p>1</p><p>1</p>\r\n`,
    );
  }
  add(
    "html-bomb",
    "HTML-only classic alarm, related part with a cid image",
    "mapped",
    `${head("Alarm", 'Content-Type: multipart/related; boundary="rel"\r\n')}\r\n--rel\r\n${html}\r\n<p>${account()}</p><p>BA</p><p>1</p><p>1</p><img src="cid:snap">\r\n--rel\r\nContent-Type: image/jpeg\r\nContent-ID: <snap>\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(Buffer.alloc(2000, 7))}\r\n--rel--\r\n`,
    true,
  );

  // --- empty ------------------------------------------------------------------------------------------
  add("empty", "zero bytes", "rejected", "");
  add("empty", "only CRLF", "rejected", "\r\n");
  add("empty", "headers, no body", "rejected", head("Alarm", text));
  add("empty", "headers, blank line, no body", "rejected", `${head("Alarm", text)}\r\n`);
  add("empty", "no headers at all, empty body", "rejected", "\r\n\r\n");
  add(
    "empty",
    "empty multipart",
    "rejected",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=e\r\n")}\r\n--e--\r\n`,
  );
  add(
    "empty",
    "multipart of empty parts",
    "rejected",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=e\r\n")}\r\n--e\r\n\r\n--e\r\n\r\n--e--\r\n`,
  );
  add(
    "empty",
    "empty base64 body",
    "rejected",
    `${head("Alarm", `${text}Content-Transfer-Encoding: base64\r\n`)}\r\n\r\n`,
  );
  add("empty", "empty subject, empty body", "rejected", `${head("", text)}\r\n`);
  add("empty", "whitespace-only body", "rejected", `${head("Alarm", text)}\r\n \t \r\n\t\r\n`);
  add(
    "empty",
    "zero-byte attachment only",
    "rejected",
    `${head("Alarm", "Content-Type: multipart/mixed; boundary=z\r\n")}\r\n--z\r\nContent-Type: application/pdf; name=e.pdf\r\n\r\n\r\n--z--\r\n`,
  );
  add(
    "empty",
    "empty text and empty HTML alternative",
    "rejected",
    `${head("Alarm", "Content-Type: multipart/alternative; boundary=y\r\n")}\r\n--y\r\n${text}\r\n\r\n--y\r\n${html}\r\n\r\n--y--\r\n`,
  );
  for (const h of ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"]) {
    add(
      "empty",
      `${h} header present but empty, valid alarm`,
      "mapped",
      `${head("Alarm", `${h}:\r\n${text}`, [h])}\r\n${lines(account())}`,
      true,
    );
  }
  for (let i = 0; i < 8; i++) {
    add(
      "empty",
      `all headers missing but Content-Type, body variant ${i + 1}`,
      "either",
      `${text}\r\n${i % 2 === 0 ? lines(account()) : "\r\n".repeat(i)}`,
    );
  }

  // --- valid alarms wrapped in ordinary oddities ------------------------------------------------------
  const wrappers: ((a: string) => string)[] = [
    (a) => `${head("Alarm", text)}\r\n\r\n\r\n${lines(a)}\r\n\r\n-- \r\nsent from a panel\r\n`,
    (a) =>
      `${head("Alarm", `${text}Content-Transfer-Encoding: quoted-printable\r\n`)}\r\n${lines(a).replace(/\r\n/g, "=0D=0A=\r\n")}`,
    (a) => `${head("Alarm", `${text}Content-Transfer-Encoding: base64\r\n`)}\r\n${b64(lines(a))}\r\n`,
    (a) =>
      `${head("Alarm", "Content-Type: multipart/mixed; boundary=w\r\n")}\r\npreamble\r\n--w\r\n${text}\r\n${lines(a)}--w--\r\nepilogue\r\n`,
    (a) => `${head("=?utf-8?B?QWxhcm0=?=", text)}\r\n${lines(a)}`,
    (a) => `${head("Alarm", 'Content-Type: TEXT/PLAIN; CHARSET="UTF-8"; format=flowed; delsp=yes\r\n')}\r\n${lines(a)}`,
  ];
  for (let i = 0; drafts.length < 305; i++)
    add(
      "wrapped-alarm",
      `ordinary oddity ${(i % wrappers.length) + 1}, copy ${Math.floor(i / wrappers.length) + 1}`,
      "mapped",
      wrappers[i % wrappers.length]!(account()),
      true,
    );

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const entries = drafts.map((d, i): CorpusEntry => {
    const file = `${String(i).padStart(3, "0")}-${d.category}.eml`;
    writeFileSync(join(dir, file), d.raw);
    return {
      id: i,
      file,
      category: d.category,
      title: d.title,
      expect: d.expect,
      account: d.account,
      bytes: d.raw.length,
    };
  });
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(entries, null, 1)}\n`);
  return entries;
}

/** `count` entries taken from every category in turn (first ones first), for the short CI run. */
export function spreadSubset(entries: CorpusEntry[], count: number): CorpusEntry[] {
  const queues = new Map<Category, CorpusEntry[]>();
  for (const e of entries) queues.set(e.category, [...(queues.get(e.category) ?? []), e]);
  const picked: CorpusEntry[] = [];
  for (let round = 0; picked.length < Math.min(count, entries.length); round++) {
    for (const q of queues.values()) if (q[round] && picked.length < count) picked.push(q[round]!);
  }
  return picked.sort((a, b) => a.id - b.id);
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const entries = generateCorpus({ dir: flag("out"), bigMiB: Number(flag("big-mb") ?? 100) });
  const shown = flag("count") ? spreadSubset(entries, Number(flag("count"))) : entries;
  const counts = new Map<string, number>();
  for (const e of shown) counts.set(e.category, (counts.get(e.category) ?? 0) + 1);
  console.log(
    `${shown.length} emails in ${flag("out") ?? CORPUS_DIR}: ${[...counts].map(([c, k]) => `${c} ${k}`).join(", ")}`,
  );
}
