// Validation: each wrong value gets a reason that says which value and what is expected, and the rejection
// names the rule that produced it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileDataMap, type DataMapConfig, type FieldRule, type MapResult } from "../../src/core/datamap";
import {
  checkAccount,
  checkDate,
  checkEventCode,
  checkNumber,
  checkQualifier,
  Invalid,
  rangesFor,
} from "../../src/core/datamap/validate";

function reason(value: unknown): string {
  assert.ok(value instanceof Invalid, `expected invalid, got ${JSON.stringify(value)}`);
  return value.reason;
}

describe("field checks", () => {
  it("account: 3-16 hexadecimal characters, upper-cased", () => {
    assert.equal(checkAccount(" 00a7f2 "), "00A7F2");
    assert.equal(checkAccount("123"), "123");
    assert.equal(reason(checkAccount("12G588")), 'account "12G588" is not hexadecimal (0-9, A-F)');
    assert.equal(reason(checkAccount("12")), 'account "12" has 2 characters; it must have 3-16 hexadecimal characters');
    assert.match(reason(checkAccount("1".repeat(17))), /has 17 characters/);
  });

  it("eventCode: two letters for SIA, three digits for Contact ID", () => {
    assert.equal(checkEventCode("ba", "SIA"), "BA");
    assert.equal(checkEventCode("130", "CID"), "130");
    assert.equal(reason(checkEventCode("B1", "SIA")), 'eventCode "B1" is not a SIA event code (two letters, e.g. BA)');
    assert.equal(
      reason(checkEventCode("BA", "CID")),
      'eventCode "BA" is not a Contact ID event (three digits, e.g. 130)',
    );
    assert.match(reason(checkEventCode("1301", "CID")), /three digits/);
  });

  it("qualifier: new or restore, also as Contact ID 1/3 or E/R", () => {
    assert.equal(checkQualifier("E"), "new");
    assert.equal(checkQualifier("3"), "restore");
    assert.equal(checkQualifier("Restored"), "restore");
    assert.equal(reason(checkQualifier("6")), 'qualifier "6" is not new or restore (1/3, E/R)');
  });

  it("zone/area/user: whole numbers in range", () => {
    assert.equal(checkNumber("zone", "007", { min: 0, max: 999 }), 7);
    assert.equal(reason(checkNumber("zone", "1000", { min: 0, max: 999 })), 'zone "1000" is out of range 0-999');
    assert.equal(reason(checkNumber("area", "A1", { min: 0, max: 99 })), 'area "A1" is not a whole number');
    assert.equal(reason(checkNumber("user", "-1", { min: 0, max: 99 })), 'user "-1" is not a whole number');
  });

  it("default ranges depend on the format; configured ranges replace them", () => {
    assert.deepEqual(rangesFor("CID", undefined).zone, { min: 0, max: 999 });
    assert.deepEqual(rangesFor("CID", undefined).area, { min: 0, max: 99 });
    assert.deepEqual(rangesFor("SIA", undefined).zone, { min: 0, max: 9999 });
    assert.deepEqual(rangesFor("SIA", { zone: { min: 1, max: 64 } }).zone, { min: 1, max: 64 });
  });

  it("dates: ISO 8601, RFC 2822, Unix seconds or milliseconds", () => {
    assert.equal(checkDate("occurredAt", "2025-07-01T10:15:00+02:00"), "2025-07-01T08:15:00.000Z");
    assert.equal(checkDate("occurredAt", "Tue, 01 Jul 2025 10:15:00 +0200"), "2025-07-01T08:15:00.000Z");
    assert.equal(checkDate("occurredAt", "1751357700"), "2025-07-01T08:15:00.000Z");
    assert.equal(checkDate("occurredAt", "1751357700000"), "2025-07-01T08:15:00.000Z");
    assert.match(reason(checkDate("occurredAt", "7")), /^occurredAt "7" is not a date/);
    assert.match(reason(checkDate("occurredAt", "yesterday")), /^occurredAt "yesterday" is not a date/);
    assert.match(reason(checkDate("occurredAt", "1900-01-01T00:00:00Z")), /is not between 1970 and 2200/);
  });
});

const email = {
  messageId: "m@x",
  from: [{ address: "panel@site.example", name: "" }],
  to: [],
  cc: [],
  date: "2025-07-01T08:15:00.000Z",
  subject: "Alarm",
  text: "12G588\nBA\n1\n1",
  html: null,
  headers: {},
  attachments: [],
};

const rule = (field: string, source: FieldRule["source"]): FieldRule => ({
  field,
  source,
  extractor: { kind: "whole" },
});

function run(config: DataMapConfig, text: string, extra: object = {}): MapResult {
  return compileDataMap(config).map({ email: { ...email, text }, ...extra }) as MapResult;
}

function rejection(result: MapResult): { rule: string; reason: string } {
  if (result.ok) assert.fail(`mapped: ${JSON.stringify(result.alarm)}`);
  return { rule: result.rule, reason: result.reason };
}

describe("validation in map()", () => {
  const lines: DataMapConfig = {
    rules: [
      rule("account", { kind: "bodyLine", line: 1 }),
      rule("eventCode", { kind: "bodyLine", line: 2 }),
      rule("zone", { kind: "bodyLine", line: 3 }),
      rule("area", { kind: "bodyLine", line: 4 }),
    ],
  };

  it("names the rule whose value is wrong", () => {
    assert.deepEqual(rejection(run(lines, "12G588\nBA\n1\n1")), {
      rule: "rule 1 (account)",
      reason: 'account "12G588" is not hexadecimal (0-9, A-F)',
    });
    assert.deepEqual(rejection(run(lines, "123588\nB1\n1\n1")), {
      rule: "rule 2 (eventCode)",
      reason: 'eventCode "B1" is not a SIA event code (two letters, e.g. BA)',
    });
    assert.deepEqual(rejection(run({ ...lines, eventFormat: "CID" }, "123588\n130\n1000\n1")), {
      rule: "rule 3 (zone)",
      reason: 'zone "1000" is out of range 0-999',
    });
    assert.deepEqual(rejection(run({ ...lines, validation: { area: { min: 1, max: 8 } } }, "123588\nBA\n1\n9")), {
      rule: "rule 4 (area)",
      reason: 'area "9" is out of range 1-8',
    });
  });

  it("a required field without a value says why it is empty", () => {
    assert.deepEqual(rejection(run(lines, "123588")), {
      rule: "rule 2 (eventCode)",
      reason: "eventCode is required but empty: no line 2: the body has 1 non-blank line",
    });
    assert.deepEqual(rejection(run({ rules: [rule("eventCode", { kind: "subject" })] }, "")), {
      rule: "account (no rule)",
      reason: "account is required but empty: no rule sets it",
    });
  });

  it("occurredAt: a rule's date, else the email's Date, else receivedAt, else now", () => {
    const withTime: DataMapConfig = { rules: [...lines.rules, rule("occurredAt", { kind: "bodyLine", line: 5 })] };
    const at = (result: MapResult): string => (result.ok ? result.alarm.occurredAt : assert.fail(result.reason));
    assert.equal(at(run(withTime, "123588\nBA\n1\n1\n2025-07-01 08:00:00Z")), "2025-07-01T08:00:00.000Z");
    assert.equal(at(run(withTime, "123588\nBA\n1\n1")), "2025-07-01T08:15:00.000Z");
    const noDate = compileDataMap(withTime).map({
      email: { ...email, date: null, text: "123588\nBA\n1\n1" },
      receivedAt: "2025-07-01T08:16:00.000Z",
    }) as MapResult;
    assert.equal(at(noDate), "2025-07-01T08:16:00.000Z");
    assert.deepEqual(rejection(run(withTime, "123588\nBA\n1\n1\n31/12/2025 10:00")), {
      rule: "rule 5 (occurredAt)",
      reason: 'occurredAt "31/12/2025 10:00" is not a date (use ISO 8601 or RFC 2822, or a JSONata rule)',
    });
  });
});
