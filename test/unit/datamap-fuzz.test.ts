// Property/fuzz tests: whatever arrives (random bytes, hostile shapes, huge lines, 10k lines, odd unicode, inputs
// built to make sane user regexes backtrack), map() never throws and ends ok or rejected within a time bound.
// Deterministic: set DATAMAP_FUZZ_SEED to reproduce or vary a run.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CompiledDataMap,
  compileDataMap,
  DATA_MAP_PRESETS,
  type DataMapConfig,
  type MapResult,
} from "../../src/core/datamap";
import { parseEmail } from "../../src/core/mail/parse-email";

const SEED = Number(process.env.DATAMAP_FUZZ_SEED ?? 20250701);
/** Per input; generous for slow CI machines (measured worst case here: ~60 ms for deeply nested HTML). */
const TIME_BOUND_MS = 500;

/** mulberry32: small, fast, good enough to pick test inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const saneRegexes: DataMapConfig = {
  rules: [
    {
      field: "account",
      source: { kind: "body" },
      extractor: { kind: "regex", pattern: "^\\s*(?<account>[0-9A-F]{3,16})\\s*$", flags: "mi" },
      required: true,
    },
    {
      field: "zone",
      source: { kind: "body" },
      extractor: { kind: "regex", pattern: "zone\\s*[:=]?\\s*(?<zone>\\d+)", flags: "i" },
    },
    {
      field: "eventCode",
      source: { kind: "body" },
      extractor: { kind: "regex", pattern: "(?<eventCode>[A-Z]{2})\\s*/\\s*(\\d+)" },
      transforms: [{ kind: "translate", table: "events" }],
    },
    {
      field: "eventCode",
      source: { kind: "subject" },
      extractor: { kind: "whole" },
      transforms: [{ kind: "translate", table: "events" }],
    },
    {
      field: "text",
      source: { kind: "body" },
      extractor: { kind: "regex", pattern: "^(?<text>.*\\S)\\s*$", flags: "m" },
    },
    {
      field: "area",
      source: { kind: "body" },
      extractor: { kind: "regex", pattern: "(\\d+)\\s*,\\s*(\\d+)\\s*$", group: 2 },
    },
    { field: "user", source: { kind: "body" }, extractor: { kind: "label", label: "User" } },
    { field: "occurredAt", source: { kind: "body" }, extractor: { kind: "label", label: "Time" } },
    {
      field: "site",
      source: { kind: "header", name: "X-Site" },
      extractor: { kind: "split", delimiter: "-", part: -1 },
    },
    { field: "sender", source: { kind: "sender", part: "name" }, extractor: { kind: "fixed", start: 2, length: 8 } },
  ],
  allowSenders: ["@site.example", "@*.site.example", "panel@other.example"],
  spoofCheck: { enabled: true },
};

const withJsonata: DataMapConfig = {
  rules: [
    ...saneRegexes.rules,
    {
      field: "summary",
      source: { kind: "subject" },
      extractor: { kind: "jsonata", expression: '$substring($trim(source), 0, 40) & " " & $string($count(email.to))' },
    },
  ],
  limits: { jsonataTimeoutMs: 100 },
};

const maps: [string, CompiledDataMap][] = [
  ...DATA_MAP_PRESETS.map((p): [string, CompiledDataMap] => [p.id, compileDataMap(p.config())]),
  ["sane regexes", compileDataMap(saneRegexes)],
  ["jsonata", compileDataMap(withJsonata)],
];

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Maps with every config; checks the result is a well-formed ok or rejection, in time. */
async function mapAll(label: string, input: unknown): Promise<void> {
  for (const [name, map] of maps) {
    // CPU time, not wall time: the bound is about the work a hostile email can cause, and a shared
    // machine's wall clock also counts the other processes' turns.
    const started = process.cpuUsage();
    let result: MapResult;
    try {
      result = await map.map(input as never);
    } catch (err) {
      assert.fail(`${name} threw on ${label} (seed ${SEED}): ${String(err)}`);
    }
    const used = process.cpuUsage(started);
    const ms = (used.user + used.system) / 1000;
    assert.ok(ms < TIME_BOUND_MS, `${name} took ${ms.toFixed(0)} ms of CPU on ${label} (seed ${SEED})`);
    assert.ok(Array.isArray(result.trace), `${name} on ${label}: no trace`);
    if (result.ok) {
      const a = result.alarm;
      assert.match(a.account, /^[0-9A-F]{3,16}$/, `${name} on ${label}`);
      assert.match(a.eventCode, a.eventFormat === "SIA" ? /^[A-Z]{2}$/ : /^\d{3}$/, `${name} on ${label}`);
      assert.ok(a.qualifier === "new" || a.qualifier === "restore");
      for (const n of [a.zone, a.area, a.user]) assert.ok(n === null || Number.isSafeInteger(n));
      assert.match(a.occurredAt, ISO);
      assert.doesNotThrow(() => JSON.stringify(result));
    } else {
      assert.equal(typeof result.rule, "string");
      assert.ok(result.rule.length > 0 && result.reason.length > 0, `${name} on ${label}: empty rejection`);
      assert.doesNotMatch(result.reason, /internal error/, `${name} on ${label} (seed ${SEED})`);
    }
  }
}

const TOKENS = [
  "123588",
  "00A7F2",
  "BA",
  "FA",
  "KR",
  "130",
  "E130",
  "3401",
  " / ",
  "/",
  "Zone:",
  "zone",
  "User:",
  "Time: 2025-07-01T10:15:00Z",
  "Time: yesterday",
  "High Temperature Alarm at Pantry Freezer 3, site 4471",
  "cleared",
  "restored",
  "On Tue, 1 Jul 2025, Panel <p@x> wrote:",
  "> ",
  ">>> ALARM <<<",
  "-- ",
  "--",
  "Sent from my iPhone",
  "Kind regards,",
  "-----Original Message-----",
  "---------- Forwarded message ---------",
  "________________________________",
  "From: a",
  "Sent: b",
  "Subject: c",
  "<div>",
  "</table>",
  "&nbsp;",
  "\u00a0",
  "\u200b",
  "\ufeff",
  "\u0000",
  "\r",
  "\r\n",
  "\t",
  "😀",
  "\ud800",
  "e\u0301",
  "\u202e",
  "Kühlraum",
  "999999999999999999999",
  ",",
  " ",
  "\n",
  "\n\n\n",
];

function randomText(rnd: () => number, maxTokens: number): string {
  const n = Math.floor(rnd() * maxTokens);
  let out = "";
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.7) out += TOKENS[Math.floor(rnd() * TOKENS.length)];
    else if (r < 0.85) out += "\n";
    else out += String.fromCharCode(Math.floor(rnd() * 0x3000));
  }
  return out;
}

function randomValue(rnd: () => number, depth = 0): unknown {
  const r = rnd();
  if (r < 0.15) return null;
  if (r < 0.3) return Math.floor(rnd() * 1e6) - 5e5;
  if (r < 0.45) return randomText(rnd, 8);
  if (r < 0.55) return rnd() < 0.5;
  if (r < 0.7 && depth < 3) return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth + 1));
  if (r < 0.85 && depth < 3) return { address: randomValue(rnd, depth + 1), name: randomValue(rnd, depth + 1) };
  return undefined;
}

describe("data-map fuzz", () => {
  it(`random bytes parsed by parseEmail (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    for (let i = 0; i < 60; i++) {
      const length = Math.floor(rnd() * 4000);
      const bytes = Buffer.alloc(length);
      for (let j = 0; j < length; j++) bytes[j] = Math.floor(rnd() * 256);
      // half of them behind a plausible header, so that the body reaches the rules
      const raw =
        i % 2 === 0 ? bytes : Buffer.concat([Buffer.from("From: p@site.example\r\nSubject: Alarm\r\n\r\n"), bytes]);
      let email: unknown;
      try {
        email = await parseEmail(raw);
      } catch {
        continue; // unreadable is parseEmail's verdict, reported by the connector
      }
      await mapAll(`random bytes #${i}`, { email });
    }
  });

  it(`random alarm-like emails, as objects and through parseEmail (seed ${SEED})`, async () => {
    const rnd = prng(SEED + 1);
    for (let i = 0; i < 150; i++) {
      const subject = randomText(rnd, 6).replace(/[\r\n]/g, " ");
      const text = randomText(rnd, 60);
      const email = {
        messageId: `fuzz-${i}@site.example`,
        from: [{ address: rnd() < 0.7 ? "panel@site.example" : "x@evil.example", name: randomText(rnd, 3) }],
        to: [{ address: "alarms+123588@gateway.example", name: "" }],
        cc: [],
        date: rnd() < 0.8 ? "2025-07-01T08:15:00.000Z" : randomText(rnd, 2),
        subject,
        text,
        html: rnd() < 0.2 ? `<div>${text}</div>` : null,
        headers: {
          "x-site": randomText(rnd, 4),
          "authentication-results": rnd() < 0.5 ? "spf=pass; dmarc=pass" : randomText(rnd, 10),
        },
        attachments: [],
      };
      await mapAll(`random email #${i}`, { email, msg: { payload: randomValue(rnd) } });
      if (i % 5 === 0) {
        const raw = `From: Panel <panel@site.example>\r\nSubject: ${subject.replace(/\0/g, "")}\r\n\r\n${text}`;
        await mapAll(`random raw email #${i}`, { email: await parseEmail(Buffer.from(raw, "utf8")) });
      }
    }
  });

  it(`hostile shapes: wrong types everywhere (seed ${SEED})`, async () => {
    const rnd = prng(SEED + 2);
    const fixed: unknown[] = [
      null,
      undefined,
      0,
      "email",
      [],
      { email: null },
      { email: [] },
      { email: { subject: 1, text: ["a"], from: "panel@site.example", headers: [] } },
      { email: { from: [null, 1, { address: 5 }], to: {}, attachments: [null, { filename: 3 }] } },
      { email: { headers: { "authentication-results": 42, __proto__: { x: 1 } } }, msg: "not an object" },
      { email: { text: "123588\nBA\n1\n1" }, receivedAt: { toString: 5 } },
      {
        email: Object.defineProperty({}, "subject", {
          get() {
            throw new Error("getter");
          },
        }),
      },
    ];
    for (const [i, input] of fixed.entries()) {
      for (const [name, map] of maps) {
        const result = await map.map(input as never);
        assert.equal(typeof result.ok, "boolean", `${name} on hostile #${i}`);
      }
    }
    for (let i = 0; i < 100; i++) {
      const email: Record<string, unknown> = {};
      for (const key of [
        "messageId",
        "from",
        "to",
        "cc",
        "date",
        "subject",
        "text",
        "html",
        "headers",
        "attachments",
      ]) {
        if (rnd() < 0.7) email[key] = randomValue(rnd);
      }
      await mapAll(`random shape #${i}`, { email, msg: randomValue(rnd), receivedAt: randomValue(rnd) });
    }
  });

  it("huge lines, many lines and odd unicode", async () => {
    const inputs: [string, string][] = [
      ["1 MB line", "x".repeat(1_000_000)],
      ["10k lines", "123588\nBA\n".repeat(5_000)],
      ["100k short lines", "1\n".repeat(100_000)],
      ["100k blank lines", "\n \n".repeat(50_000)],
      ["emoji", "😀".repeat(50_000)],
      ["lone surrogates", "\ud800\udfff\udc00".repeat(20_000)],
      ["RTL and combining", "\u202e123588\u202c\ne\u0301\u0301\u0301\nBA".repeat(5_000)],
      ["NUL", "\u0000".repeat(100_000)],
    ];
    for (const [label, text] of inputs) {
      await mapAll(`${label} in the body`, {
        email: { subject: "Alarm", text, from: [{ address: "p@site.example", name: "" }] },
      });
      await mapAll(`${label} in the subject`, { email: { subject: text, text: "123588\nBA\n1\n1" } });
      await mapAll(`${label} in a header`, {
        email: { text: "123588", headers: { "x-site": text, "authentication-results": text } },
      });
    }
  });

  it("regex-bomb inputs against sane user regexes and the preprocessing", async () => {
    const bombs: [string, string][] = [
      ["zone + spaces", `zone${" ".repeat(200_000)}x`],
      ["zone + spaces and newlines", `zone${" \n".repeat(100_000)}x`],
      ["digits without end", `${"1".repeat(200_000)}x`],
      ["digits, comma, digits", `${"1".repeat(100_000)} , ${"1".repeat(100_000)} x`],
      ["letter pairs", `${"AB".repeat(100_000)} /`],
      ["commas", ", ".repeat(100_000)],
      ["spaces then a letter per line", `${" ".repeat(1999)}a\n`.repeat(100)],
      ["wrote lines", `On ${"x ".repeat(5_000)}\n`.repeat(30)],
      ["quotes", "> ".repeat(100_000)],
      ["dashes", "-".repeat(200_000)],
      ["underscores and From", `${"_".repeat(100)}\nFrom: a\n`.repeat(2_000)],
      ["header blocks", "From: a\nSent: b\nTo: c\n".repeat(5_000)],
      ["phrases", "high temperature ".repeat(20_000)],
      ["labels", "User:\n".repeat(50_000)],
      ["parens in Authentication-Results", `${"(".repeat(50_000)}dmarc=fail`],
    ];
    for (const [label, text] of bombs) {
      await mapAll(`${label} in the body`, {
        email: { subject: "Alarm", text, from: [{ address: "p@site.example", name: "" }] },
      });
      await mapAll(`${label} in the subject`, { email: { subject: text, text: "123588" } });
      await mapAll(`${label} as HTML`, { email: { html: `<div>${text}</div>`, text: "" } });
      await mapAll(`${label} in Authentication-Results`, {
        email: { text: "123588", headers: { "authentication-results": text } },
      });
    }
  });

  it("deeply nested and huge HTML", async () => {
    await mapAll("60k nested divs", { email: { html: `${"<div>".repeat(60_000)}x`, text: "" } });
    await mapAll("50k table rows", {
      email: { html: `<table>${"<tr><td>Zone:</td><td>3</td></tr>".repeat(50_000)}</table>`, text: "" },
    });
    await mapAll("unclosed tags", { email: { html: "<a href='".repeat(50_000), text: "" } });
  });
});
