// Sources, extractors and transforms one by one: what each returns, and the words it uses when it finds nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { viewEmail } from "../../src/core/datamap/email-view";
import { compileExtractor, compileRegex, type Extracted, LineCache, Miss } from "../../src/core/datamap/extract";
import { compileSource, type SourceContext } from "../../src/core/datamap/sources";
import { type CompiledTable, compileTable, defaultTranslationTables } from "../../src/core/datamap/tables";
import { compileTransform, TransformScratch } from "../../src/core/datamap/transforms";
import type { FieldExtractor, FieldSource, FieldTransform, MappableEmail } from "../../src/core/datamap/types";

function extract(extractor: FieldExtractor, text: string, field = "zone"): Extracted {
  return compileExtractor(extractor, field)(text, new LineCache());
}

function missReason(value: Extracted): string {
  assert.ok(value instanceof Miss, `expected nothing, got ${JSON.stringify(value)}`);
  return value.reason;
}

const EMAIL: MappableEmail = {
  messageId: "m1@site.example",
  from: [{ address: "Panel@Site.Example", name: "Alarm Panel" }],
  to: [
    { address: "123588@alarms.example", name: "Alarms" },
    { address: "ops@alarms.example", name: "Ops" },
  ],
  cc: [{ address: "audit@alarms.example", name: "Audit" }],
  date: "2025-07-01T08:15:00.000Z",
  subject: "Alarm",
  text: "123588\nBA\n1\n1",
  html: null,
  headers: { "x-panel-id": "P-77", received: "from a\nfrom b" },
  attachments: [
    { filename: "snap.jpg", contentType: "image/jpeg", size: 10, inline: true },
    { filename: "", contentType: "text/plain", size: 1, inline: false },
    { filename: "clip.mp4", contentType: "video/mp4", size: 99, inline: false },
  ],
};

function read(source: FieldSource, email: MappableEmail = EMAIL, msg?: Record<string, unknown>): Extracted {
  const view = viewEmail(email);
  const ctx: SourceContext = { view, subject: view.subject, body: view.text, lines: new LineCache(), msg };
  return compileSource(source)(ctx);
}

describe("sources", () => {
  it("read subject, body and body lines (blank lines do not count, negative from the end)", () => {
    assert.equal(read({ kind: "subject" }), "Alarm");
    assert.equal(read({ kind: "body" }), "123588\nBA\n1\n1");
    const spaced = { ...EMAIL, text: "\n123588\n\n  \nBA\r\n1\n" };
    assert.equal(read({ kind: "bodyLine", line: 2 }, spaced), "BA");
    assert.equal(read({ kind: "bodyLine", line: -1 }, spaced), "1");
    assert.equal(missReason(read({ kind: "bodyLine", line: 4 }, spaced)), "no line 4: the body has 3 non-blank lines");
  });

  it("read the sender's address or name, and recipients one per line", () => {
    assert.equal(read({ kind: "sender" }), "Panel@Site.Example");
    assert.equal(read({ kind: "sender", part: "name" }), "Alarm Panel");
    assert.equal(read({ kind: "recipient" }), "123588@alarms.example\nops@alarms.example");
    assert.equal(read({ kind: "recipient", part: "name", includeCc: true }), "Alarms\nOps\nAudit");
    assert.equal(missReason(read({ kind: "sender" }, { ...EMAIL, from: [] })), "the email has no From address");
  });

  it("read headers case-insensitively, attachment names, msg properties and constants", () => {
    assert.equal(read({ kind: "header", name: "X-Panel-ID" }), "P-77");
    assert.equal(read({ kind: "header", name: "Received" }), "from a\nfrom b");
    assert.equal(missReason(read({ kind: "header", name: "X-Site" })), "the email has no X-Site header");
    assert.equal(missReason(read({ kind: "header", name: "constructor" })), "the email has no constructor header");
    assert.equal(read({ kind: "attachmentName" }), "snap.jpg\nclip.mp4");
    const msg = { payload: { site: { id: 4471 }, list: ["a", "b"], obj: { x: 1 } }, topic: "t" };
    assert.equal(read({ kind: "msg", path: "payload.site.id" }, EMAIL, msg), "4471");
    assert.equal(read({ kind: "msg", path: "msg.payload.list.1" }, EMAIL, msg), "b");
    assert.equal(read({ kind: "msg", path: "payload.obj" }, EMAIL, msg), '{"x":1}');
    assert.match(missReason(read({ kind: "msg", path: "payload.nope" }, EMAIL, msg)), /msg.payload.nope is not set/);
    assert.equal(read({ kind: "constant", value: "BA" }), "BA");
  });

  it("refuse unusable settings", () => {
    assert.throws(() => compileSource({ kind: "bodyLine", line: 0 }), /body line 0 is not a line number/);
    assert.throws(() => compileSource({ kind: "header", name: "X Site" }), /header name "X Site"/);
    assert.throws(() => compileSource({ kind: "msg", path: "payload.__proto__.x" }), /is not a dotted path/);
    assert.throws(() => compileSource({ kind: "sender", part: "domain" as never }), /address part "domain"/);
    assert.throws(() => compileSource({ kind: "nope" } as never), /source kind "nope" is unknown/);
  });
});

describe("extractors", () => {
  it("whole and line N", () => {
    assert.equal(extract({ kind: "whole" }, " a \n b "), " a \n b ");
    assert.equal(extract({ kind: "line", line: 2 }, "a\n\nb\nc"), "b");
    assert.equal(extract({ kind: "line", line: -2 }, "a\n\nb\nc"), "b");
    assert.equal(
      missReason(extract({ kind: "line", line: 3 }, "one line")),
      "no line 3: the text has 1 non-blank line",
    );
  });

  it("split by a delimiter and take a part (1-based, negative from the end)", () => {
    const line = "123588 / BA / 1 / 1";
    assert.equal(extract({ kind: "split", delimiter: "/", part: 2 }, line), " BA ");
    assert.equal(extract({ kind: "split", delimiter: " / ", part: -1 }, line), "1");
    assert.equal(
      missReason(extract({ kind: "split", delimiter: ";", part: 2 }, line)),
      'no part 2 when split by ";": there are 1',
    );
  });

  it("fixed position and length (1-based column)", () => {
    assert.equal(extract({ kind: "fixed", start: 1, length: 6 }, "123588BA001"), "123588");
    assert.equal(extract({ kind: "fixed", start: 9, length: 5 }, "123588BA001"), "001");
    assert.equal(
      missReason(extract({ kind: "fixed", start: 20, length: 2 }, "123588BA001")),
      "position 20 is past the end of the text (11 characters)",
    );
  });

  it("label: value lookup, case-insensitive, first line with a value", () => {
    const text = "Event Type:\nevent type :  Motion Detection \nZones: 7\nZone: 3\nChannel No. 2";
    assert.equal(extract({ kind: "label", label: "Event Type" }, text), "Motion Detection");
    assert.equal(extract({ kind: "label", label: "zone" }, text), "3");
    assert.equal(extract({ kind: "label", label: "Channel No.", separator: "" }, text), "2");
    assert.equal(extract({ kind: "label", label: "Zone", separator: "=" }, "Zone = 12"), "12");
    assert.equal(
      missReason(extract({ kind: "label", label: "Area" }, text)),
      'no line starts with "Area:" followed by a value',
    );
  });

  it("regular expression: the group named like the field, else group 1, else the match", () => {
    assert.equal(extract({ kind: "regex", pattern: "zone (?<zone>\\d+)" }, "zone 12"), "12");
    assert.equal(extract({ kind: "regex", pattern: "site (\\d+)" }, "site 4471", "account"), "4471");
    assert.equal(extract({ kind: "regex", pattern: "\\d+" }, "zone 12"), "12");
    assert.equal(extract({ kind: "regex", pattern: "(?<a>\\w+) (?<b>\\w+)", group: "b" }, "x y"), "y");
    assert.equal(extract({ kind: "regex", pattern: "(\\w+) (\\w+)", group: 2 }, "x y"), "y");
    assert.equal(extract({ kind: "regex", pattern: "ZONE (\\d+)", flags: "i" }, "zone 5"), "5");
    assert.equal(missReason(extract({ kind: "regex", pattern: "x(\\d)" }, "abc")), "regular expression did not match");
    assert.equal(
      missReason(extract({ kind: "regex", pattern: "a|(?<zone>b)" }, "a")),
      'regular expression matched but group "zone" took no part',
    );
  });

  it("regular expressions are checked on deploy", () => {
    assert.throws(() => compileRegex("(?<zone>\\d+", undefined, undefined, "zone"), /: Unterminated group$/);
    assert.throws(() => compileRegex("(\\d+)", "g", undefined, "zone"), /only i, m, s and u/);
    assert.throws(() => compileRegex("(?<a>\\d+)", "", "b", "zone"), /has no group named "b" \(it has "a"\)/);
    assert.throws(() => compileRegex("(\\d+)", "", 2, "zone"), /has no group 2 \(it has 1\)/);
    assert.throws(() => compileRegex("(a)\\1", "", undefined, "zone"), /a backreference \(\\1\) is not supported/);
    assert.throws(() => compileRegex("a{1001}", "", undefined, "zone"), /a repeat count above 1000 \(\{1001\}\)/);
    assert.throws(() => compileRegex("", "", undefined, "zone"), /regular expression is empty/);
  });
});

const tables: ReadonlyMap<string, CompiledTable> = new Map<string, CompiledTable>([
  ["events", compileTable(defaultTranslationTables().events)],
  [
    "sensors",
    compileTable({
      kind: "values",
      entries: [
        { match: ["Pantry Freezer 3"], value: "3" },
        { match: ["Cold Room"], value: "12" },
      ],
    }),
  ],
]);

function transform(t: FieldTransform, value: string | null, scratch = new TransformScratch()): string | null {
  return compileTransform(t, tables)(value, scratch);
}

describe("transforms", () => {
  it("trim, upper, lower leave a missing value missing", () => {
    assert.equal(transform({ kind: "trim" }, "  BA \t"), "BA");
    assert.equal(transform({ kind: "upper" }, "ba"), "BA");
    assert.equal(transform({ kind: "lower" }, "BA"), "ba");
    assert.equal(transform({ kind: "trim" }, null), null);
  });

  it("pad left (default zeros) or right, never cuts", () => {
    assert.equal(transform({ kind: "pad", length: 3 }, "7"), "007");
    assert.equal(transform({ kind: "pad", length: 4, char: "_", side: "right" }, "ab"), "ab__");
    assert.equal(transform({ kind: "pad", length: 2 }, "1234"), "1234");
    assert.throws(() => transform({ kind: "pad", length: 0 }, "1"), /pad length 0 is not 1-64/);
    assert.throws(() => transform({ kind: "pad", length: 3, char: "ab" }, "1"), /not one character/);
  });

  it("default fills a missing or empty value", () => {
    assert.equal(transform({ kind: "default", value: "0" }, null), "0");
    assert.equal(transform({ kind: "default", value: "0" }, ""), "0");
    assert.equal(transform({ kind: "default", value: "0" }, "5"), "5");
  });

  it("translate with a values table: exact name or a phrase inside the text", () => {
    assert.equal(transform({ kind: "translate", table: "sensors" }, "pantry freezer 3"), "3");
    assert.equal(transform({ kind: "translate", table: "sensors" }, "Alarm in the Cold Room, door open"), "12");
  });

  it("translate with the events table gives the code eventFormat asks for, and records the event", () => {
    const scratch = new TransformScratch();
    scratch.reset("CID");
    assert.equal(transform({ kind: "translate", table: "events" }, "High Temperature Alarm", scratch), "158");
    assert.deepEqual(scratch.event, { sia: "KH", cid: "158", qualifier: "new", description: "High temperature" });
    assert.equal(transform({ kind: "translate", table: "events", output: "sia" }, "Motion"), "BA");
    assert.equal(
      transform({ kind: "translate", table: "events", output: "qualifier" }, "burglary restored"),
      "restore",
    );
    assert.equal(transform({ kind: "translate", table: "events", output: "description" }, "FA"), "Fire alarm");
  });

  it("translate on a miss keeps the value, empties it or fails, as configured", () => {
    const scratch = new TransformScratch();
    assert.equal(transform({ kind: "translate", table: "events" }, "Door left ajar", scratch), "Door left ajar");
    assert.equal(scratch.note, 'table "events" has no entry for "Door left ajar"; kept as it is');
    assert.equal(transform({ kind: "translate", table: "events", onMiss: "empty" }, "Door left ajar"), null);
    const failing = new TransformScratch();
    transform({ kind: "translate", table: "events", onMiss: "fail" }, "Door left ajar", failing);
    assert.equal(failing.fail, 'table "events" has no entry for "Door left ajar"');
  });

  it("translate refuses a table that does not exist or an output it cannot give", () => {
    assert.throws(() => transform({ kind: "translate", table: "zones" }, "x"), /table "zones" does not exist/);
    assert.throws(
      () => transform({ kind: "translate", table: "sensors", output: "sia" }, "x"),
      /holds values: output must be "value"/,
    );
    assert.throws(() => transform({ kind: "shout" } as never, "x"), /transform kind "shout" is unknown/);
  });
});
