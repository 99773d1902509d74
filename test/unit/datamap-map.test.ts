// map(): how rules combine (order, fallbacks, required), what the trace shows, JSONata (the asynchronous
// path) and the Try-it helpers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compileDataMap,
  type DataMapConfig,
  defaultDataMapConfig,
  type FieldRule,
  type MappableEmail,
  type MapResult,
  tryDataMap,
  tryDataMapOnRawEmail,
} from "../../src/core/datamap";

const classic: MappableEmail = {
  messageId: "m1@site.example",
  from: [{ address: "panel@site.example", name: "Panel" }],
  to: [{ address: "alarms@gateway.example", name: "" }],
  cc: [],
  date: "2025-07-01T08:15:00.000Z",
  subject: "Alarm",
  text: "123588\nBA\n1\n1",
  html: null,
  headers: {},
  attachments: [],
};

function mapSync(config: DataMapConfig, email: MappableEmail, extra: object = {}): MapResult {
  const map = compileDataMap(config);
  const result = map.map({ email, ...extra });
  assert.ok(!(result instanceof Promise), "a config without JSONata maps synchronously");
  return result;
}

function okAlarm(result: MapResult) {
  if (!result.ok) assert.fail(`rejected by ${result.rule}: ${result.reason}`);
  return result.alarm;
}

const line = (field: string, n: number, required = false): FieldRule => ({
  field,
  source: { kind: "bodyLine", line: n },
  extractor: { kind: "whole" },
  transforms: [{ kind: "trim" }],
  required,
});

describe("map", () => {
  it("maps the classic email synchronously, with a trace per rule", () => {
    const result = mapSync(defaultDataMapConfig(), classic, { receivedAt: "2025-07-01T08:15:02.000Z" });
    const alarm = okAlarm(result);
    assert.equal(alarm.account, "123588");
    assert.equal(alarm.source.receivedAt, "2025-07-01T08:15:02.000Z");
    assert.deepEqual(result.trace[1], { rule: 2, field: "eventCode", source: "BA", extracted: "BA", value: "BA" });
  });

  it("a later rule for the same field is a fallback that runs only while the field is empty", () => {
    const config: DataMapConfig = {
      rules: [
        line("account", 1, true),
        { field: "eventCode", source: { kind: "bodyLine", line: 5 }, extractor: { kind: "whole" } },
        {
          field: "eventCode",
          source: { kind: "subject" },
          extractor: { kind: "whole" },
          transforms: [{ kind: "translate", table: "events" }],
          required: true,
        },
        { field: "eventCode", source: { kind: "constant", value: "XX" }, extractor: { kind: "whole" } },
      ],
    };
    const result = mapSync(config, { ...classic, subject: "Panic button pressed" });
    assert.equal(okAlarm(result).eventCode, "PA");
    assert.equal(result.trace[1].note, "no line 5: the body has 4 non-blank lines");
    assert.equal(result.trace[3].note, "skipped: eventCode already set by rule 3 (eventCode)");
  });

  it("required is checked after the field's last rule, and names that rule and why", () => {
    const config: DataMapConfig = {
      rules: [line("account", 1), line("eventCode", 2), line("zone", 7, true), line("zone", 8)],
    };
    const result = mapSync(config, classic);
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.rule, "rule 4 (zone)");
    assert.equal(result.field, "zone");
    assert.equal(result.reason, "zone is required but empty: no line 8: the body has 4 non-blank lines");
    assert.equal(result.trace[3].error, result.reason);
  });

  it("evaluates eventFormat rules first, so translations give the right code", () => {
    const config: DataMapConfig = {
      rules: [
        line("account", 1),
        { ...line("eventCode", 2), transforms: [{ kind: "translate", table: "events" }] },
        { field: "eventFormat", source: { kind: "header", name: "X-Format" }, extractor: { kind: "whole" } },
      ],
    };
    const cid = okAlarm(mapSync(config, { ...classic, headers: { "x-format": "Contact ID" } }));
    assert.deepEqual([cid.eventFormat, cid.eventCode, cid.siaCode, cid.cidEvent], ["CID", "130", "BA", "130"]);
    const sia = okAlarm(mapSync(config, classic));
    assert.deepEqual([sia.eventFormat, sia.eventCode], ["SIA", "BA"]);
    const bad = mapSync(config, { ...classic, headers: { "x-format": "DC-09" } });
    assert.ok(!bad.ok && bad.rule === "rule 3 (eventFormat)" && /not SIA or CID/.test(bad.reason));
  });

  it("extra fields land in alarm.extra; text defaults to the subject", () => {
    const config: DataMapConfig = {
      rules: [
        line("account", 1),
        line("eventCode", 2),
        { field: "siteName", source: { kind: "msg", path: "payload.site" }, extractor: { kind: "whole" } },
      ],
    };
    const alarm = okAlarm(mapSync(config, classic, { msg: { payload: { site: "Depot 4" } } }));
    assert.deepEqual(alarm.extra, { siteName: "Depot 4" });
    assert.equal(alarm.text, "Alarm");
  });

  it("attachments are references to msg.email.attachments, without the bytes", () => {
    const email = {
      ...classic,
      attachments: [
        { filename: "a.jpg", contentType: "image/jpeg", size: 3, content: Buffer.from("abc"), inline: false },
        { filename: "b.mp4", contentType: "video/mp4", size: 9e8, content: null, path: "/spool/b.mp4", inline: false },
      ],
    };
    const alarm = okAlarm(mapSync(defaultDataMapConfig(), email));
    assert.deepEqual(alarm.attachments, [
      { index: 0, filename: "a.jpg", contentType: "image/jpeg", size: 3, inline: false },
      { index: 1, filename: "b.mp4", contentType: "video/mp4", size: 9e8, inline: false, path: "/spool/b.mp4" },
    ]);
  });

  it("never throws on input that is not an email", () => {
    const map = compileDataMap(defaultDataMapConfig());
    for (const input of [null, undefined, 42, "x", { email: null }, { email: { text: 5, from: "x" } }]) {
      const result = map.map(input as never);
      assert.ok(!(result instanceof Promise));
      assert.equal(result.ok, false);
    }
  });

  // Found by the soak (scenario 6): an email past the MIME parser's limits (1001 parts) reached review with
  // "rule 1 (account): account is required but empty", hiding that the email itself could not be read.
  it("rejects an email the connector could not read with the reason it could not, before any rule", () => {
    const unreadable = {
      ...classic,
      text: "",
      subject: "",
      unreadable: "unreadable email: Max allowed child nodes exceeded",
    };
    for (const config of [
      defaultDataMapConfig(),
      { ...defaultDataMapConfig(), allowSenders: ["other@site.example"] },
    ]) {
      const result = mapSync(config, unreadable);
      assert.equal(result.ok, false);
      if (result.ok) continue;
      assert.equal(result.rule, "email");
      assert.equal(result.reason, "unreadable email: Max allowed child nodes exceeded; nothing to map");
    }
    assert.equal(mapSync(defaultDataMapConfig(), { ...classic, unreadable: null }).ok, true);
  });

  it("the trace source excerpt is bounded", () => {
    const config: DataMapConfig = {
      rules: [{ field: "text", source: { kind: "body" }, extractor: { kind: "whole" } }],
    };
    const result = mapSync(config, { ...classic, text: "x".repeat(5000) });
    assert.equal(result.trace[0].source.length, 201);
  });
});

describe("map with JSONata (asynchronous)", () => {
  const jsonataConfig = (expression: string, extra: Partial<DataMapConfig> = {}): DataMapConfig => ({
    rules: [
      line("account", 1, true),
      line("eventCode", 2),
      { field: "text", source: { kind: "subject" }, extractor: { kind: "jsonata", expression }, required: true },
    ],
    ...extra,
  });

  it("returns a Promise and sees source, fields, email and msg", async () => {
    const map = compileDataMap(
      jsonataConfig('$uppercase(source) & " " & fields.account & " " & email.from[0].address & " " & msg.topic'),
    );
    assert.equal(map.async, true);
    const pending = map.map({ email: classic, msg: { topic: "site-4" } });
    assert.ok(pending instanceof Promise);
    const alarm = okAlarm(await pending);
    assert.equal(alarm.text, "ALARM 123588 panel@site.example site-4");
  });

  it("an evaluation error rejects the email, naming the rule", async () => {
    const result = await compileDataMap(jsonataConfig("$number(source) + 1")).map({ email: classic });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.rule, "rule 3 (text)");
    assert.match(result.reason, /^JSONata expression failed: D3030 Unable to cast value to a number/);
  });

  it("a result that is not text is explained", async () => {
    const result = await compileDataMap(jsonataConfig("{'a': 1}")).map({ email: classic });
    assert.ok(!result.ok);
    assert.match(result.reason, /text is required but empty: JSONata expression gave object, not text or a number/);
  });

  it("a runaway expression is stopped by the time limit", async () => {
    const expression = "($f := function($n) { $n > 1e9 ? $n : $f($n + 1) }; $f(0))";
    const map = compileDataMap(jsonataConfig(expression, { limits: { jsonataTimeoutMs: 50 } }));
    const started = Date.now();
    const result = await map.map({ email: classic });
    assert.ok(Date.now() - started < 2000);
    assert.ok(!result.ok);
    assert.match(result.reason, /JSONata expression failed: (D1012|D1011|U1001)/);
  });
});

describe("Try it", () => {
  it("returns config problems as a list", async () => {
    const result = await tryDataMap(
      { rules: [{ field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(" } }] },
      { email: classic },
    );
    assert.equal(result.config, "invalid");
    if (result.config !== "invalid") return;
    assert.match(result.problems[0], /^rule 1 \(zone\): regular expression/);
  });

  it("parses a pasted email and shows what the rules see and extract", async () => {
    const raw = [
      "From: Panel <panel@site.example>",
      "To: alarms@gateway.example",
      "Subject: RE: Alarm",
      "",
      "123588",
      "BA",
      "4",
      "",
      "On Tue, 1 Jul 2025, Panel <panel@site.example> wrote:",
      "> 999999",
      "",
    ].join("\n");
    const result = await tryDataMapOnRawEmail(defaultDataMapConfig(), raw);
    assert.equal(result.config, "ok");
    if (result.config !== "ok" || result.email !== "read") return assert.fail(JSON.stringify(result));
    assert.equal(result.prepared.body, "123588\nBA\n4");
    assert.deepEqual(result.prepared.notes, ["quoted reply removed from line 5"]);
    assert.equal(result.prepared.subject, "Alarm");
    assert.equal(okAlarm(result.result).zone, 4);
  });
});
