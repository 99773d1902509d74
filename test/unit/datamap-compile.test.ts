// Deploy-time checks: a bad rule is reported when the config is compiled, naming the rule, never at the first
// email. Every problem of a config is listed at once.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compileDataMap,
  DATA_MAP_PRESETS,
  type DataMapConfig,
  DataMapConfigError,
  dataMapConfigProblems,
  type FieldRule,
} from "../../src/core/datamap";

const account: FieldRule = { field: "account", source: { kind: "bodyLine", line: 1 }, extractor: { kind: "whole" } };

function problemsOf(config: unknown): string[] {
  try {
    compileDataMap(config as DataMapConfig);
  } catch (err) {
    assert.ok(err instanceof DataMapConfigError, `threw ${String(err)}`);
    assert.equal(err.message, err.problems.join("\n"));
    assert.deepEqual(dataMapConfigProblems(config), err.problems);
    return err.problems;
  }
  return assert.fail("compiled although it should not");
}

/** Problems of a config whose rule 2 is `rule`. */
function ruleProblems(rule: unknown): string[] {
  return problemsOf({ rules: [account, rule] });
}

describe("compileDataMap: problems name the rule", () => {
  const cases: [string, unknown, RegExp][] = [
    [
      "unterminated regex group",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "zone (?<zone>\\d+" } },
      /^rule 2 \(zone\): regular expression \/zone \(\?<zone>\\d\+\/: Unterminated group$/,
    ],
    [
      "named group that does not exist",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(?<z>\\d+)", group: "zone" } },
      /^rule 2 \(zone\): regular expression .* has no group named "zone" \(it has "z"\)$/,
    ],
    [
      "regex with a backreference",
      { field: "text", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(\\w)\\1" } },
      /^rule 2 \(text\): regular expression \/\(\\w\)\\1\/: a backreference \(\\1\) is not supported: user patterns run on a linear-time engine/,
    ],
    [
      "regex with a named backreference",
      { field: "text", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(?<c>\\w)\\k<c>" } },
      /^rule 2 \(text\): regular expression .*: a backreference \(\\k<name>\) is not supported/,
    ],
    [
      "regex with a lookahead",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "zone (\\d+)(?= open)" } },
      /^rule 2 \(zone\): regular expression .*: a lookahead \(\?= …\) or \(\?! …\) is not supported/,
    ],
    [
      "regex with a capture inside a lookbehind",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(?<=(zone) )\\d+" } },
      /^rule 2 \(zone\): regular expression .*: a capture group inside a lookbehind is not supported/,
    ],
    [
      "regex too large for the source limit",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(?:\\w|\\d){1,300}!" } },
      /^rule 2 \(zone\): regular expression .* is too large: RE2 program size \d+, at most 366 for limits\.maxSourceChars 16384/,
    ],
    [
      "regex flag g",
      { field: "text", source: { kind: "body" }, extractor: { kind: "regex", pattern: "x", flags: "gi" } },
      /^rule 2 \(text\): regular expression flags "gi": only i, m, s and u/,
    ],
    [
      "JSONata syntax error",
      { field: "text", source: { kind: "body" }, extractor: { kind: "jsonata", expression: "$substring(source, 0" } },
      /^rule 2 \(text\): JSONata expression: S0203 Expected "\)".*\(at character \d+\)$/,
    ],
    [
      "JSONata regex with a lookahead",
      {
        field: "text",
        source: { kind: "body" },
        extractor: { kind: "jsonata", expression: "$match(source, /a(?!b)/)" },
      },
      /^rule 2 \(text\): JSONata expression: regex \/a\(\?!b\)\/: a lookahead .* is not supported/,
    ],
    [
      "translation table that does not exist",
      {
        field: "eventCode",
        source: { kind: "subject" },
        extractor: { kind: "whole" },
        transforms: [{ kind: "trim" }, { kind: "translate", table: "codes" }],
      },
      /^rule 2 \(eventCode\): transform 2 \(translate\): translation table "codes" does not exist \(tables: "events"\)/,
    ],
    [
      "line 0",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "line", line: 0 } },
      /^rule 2 \(zone\): line 0 is not a line number/,
    ],
    [
      "split part as text",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "split", delimiter: "/", part: "3" } },
      /^rule 2 \(zone\): split part "3" is not 1, 2, … or -1/,
    ],
    [
      "empty split delimiter",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "split", delimiter: "", part: 1 } },
      /^rule 2 \(zone\): split delimiter is empty$/,
    ],
    [
      "fixed start 0",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "fixed", start: 0, length: 2 } },
      /^rule 2 \(zone\): fixed start 0 is not a position/,
    ],
    [
      "empty label",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "label", label: " " } },
      /^rule 2 \(zone\): label is empty$/,
    ],
    [
      "unknown extractor",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "xpath" } },
      /^rule 2 \(zone\): extractor kind "xpath" is unknown$/,
    ],
    ["missing extractor", { field: "zone", source: { kind: "body" } }, /^rule 2 \(zone\): extractor is missing$/],
    [
      "unknown source",
      { field: "zone", source: { kind: "payload" }, extractor: { kind: "whole" } },
      /^rule 2 \(zone\): source kind "payload" is unknown$/,
    ],
    [
      "a msg path reaching the prototype",
      { field: "zone", source: { kind: "msg", path: "constructor.prototype" }, extractor: { kind: "whole" } },
      /^rule 2 \(zone\): msg property "constructor.prototype" is not a dotted path/,
    ],
    [
      "a field name that is not a name",
      { field: "zone id", source: { kind: "body" }, extractor: { kind: "whole" } },
      /^rule 2: field "zone id" is not account, eventCode, .* or a name of letters and digits/,
    ],
    ["a rule that is not an object", "zone", /^rule 2: is not an object$/],
    [
      "required not a boolean",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "whole" }, required: "yes" },
      /^rule 2 \(zone\): required is not true\/false$/,
    ],
    [
      "transform that is not a list",
      { field: "zone", source: { kind: "body" }, extractor: { kind: "whole" }, transforms: { kind: "trim" } },
      /^rule 2 \(zone\): transforms is not a list$/,
    ],
  ];
  for (const [name, rule, expected] of cases) {
    it(name, () => {
      const problems = ruleProblems(rule);
      assert.equal(problems.length, 1, problems.join("\n"));
      assert.match(problems[0], expected);
    });
  }

  it("lists every problem of every rule at once", () => {
    const problems = problemsOf({
      rules: [
        { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(" } },
        account,
        { field: "area", source: { kind: "bodyLine", line: 0 }, extractor: { kind: "line", line: "x" } },
      ],
    });
    assert.deepEqual(
      problems.map((p) => p.split(":")[0]),
      ["rule 1 (zone)", "rule 3 (area)", "rule 3 (area)"],
    );
  });

  it("checks the settings besides the rules", () => {
    const problems = problemsOf({
      rules: [account],
      tables: { events: { kind: "events", restoreWords: [], entries: [{ sia: "B", cid: "13", match: ["x"] }] } },
      preprocess: { stripSignatures: true, normaliseWhitespace: "yes" },
      validation: { zone: { min: 10, max: 1 } },
      allowSenders: ["ops@site.example", "not an address"],
      spoofCheck: { enabled: "yes" },
      eventFormat: "DC09",
      limits: { maxSourceChars: 10 },
    });
    const expected = [
      /^limits.maxSourceChars: 10 is not a whole number 256-1048576$/,
      /^table "events" entry 1 \(B\): SIA code "B" is not two capital letters$/,
      /^table "events" entry 1 \(B\): Contact ID event "13" is not three digits$/,
      /^table "events" entry 1 \(B\): description is not text$/,
      /^preprocess.stripSignatures: is not a preprocessing step$/,
      /^preprocess.normaliseWhitespace: is not true\/false$/,
      /^eventFormat: "DC09" is not "SIA" or "CID"$/,
      /^validation.zone: .* is not a range/,
      /^allowSenders entry 2 "not an address": not an address, @domain or @\*.domain/,
      /^spoofCheck.enabled: is not true\/false$/,
    ];
    assert.equal(problems.length, expected.length, problems.join("\n"));
    for (const [i, p] of problems.entries()) assert.match(p, expected[i]);
  });

  it("refuses a config that is not an object or has no rule list", () => {
    assert.deepEqual(problemsOf(null), ["the data-map config is not an object"]);
    assert.deepEqual(problemsOf({}), ["rules: is not a list"]);
  });

  it("compiles every preset", () => {
    for (const preset of DATA_MAP_PRESETS) {
      assert.deepEqual(dataMapConfigProblems(preset.config()), [], preset.id);
      assert.equal(compileDataMap(preset.config()).async, false, preset.id);
    }
  });

  it("presets are fresh objects: editing one does not change the next", () => {
    const a = DATA_MAP_PRESETS[0].config();
    (a.rules[0].transforms ?? []).push({ kind: "upper" });
    a.rules[0].source = { kind: "subject" };
    assert.deepEqual(DATA_MAP_PRESETS[0].config().rules[0].transforms, [{ kind: "trim" }]);
  });

  it("a config survives JSON (what the editor stores)", () => {
    for (const preset of DATA_MAP_PRESETS) {
      const json = JSON.parse(JSON.stringify(preset.config()));
      assert.deepEqual(json, preset.config());
    }
  });
});
