// Issue #20 point 3: no user pattern freezes the runtime. The patterns that stopped Node-RED for 51 s and for
// minutes with JavaScript's backtracking engine, and a JSONata $match with a catastrophic pattern, map hostile
// emails within a bound while the event loop stays responsive (measured with monitorEventLoopDelay). What RE2
// cannot run in linear time is refused on deploy with the construct named.
import assert from "node:assert/strict";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { describe, it, type TestContext } from "node:test";
import {
  compileDataMap,
  DATA_MAP_PRESETS,
  type DataMapConfig,
  type FieldRule,
  type MappableEmail,
  type MapResult,
} from "../../src/core/datamap";
import { compileLinear, execLinear, linearRegexEngine, sizeProblem } from "../../src/core/datamap/linear-regex";

/** Per email, on a machine shared with other test runs; measured here: see the diagnostics (tens of ms). */
const BOUND_MS = 1000;

const fixed: FieldRule[] = [
  { field: "account", source: { kind: "constant", value: "1234" }, extractor: { kind: "whole" } },
  { field: "eventCode", source: { kind: "constant", value: "BA" }, extractor: { kind: "whole" } },
];

function withRule(rule: Omit<FieldRule, "field">, limits?: DataMapConfig["limits"]): DataMapConfig {
  return { rules: [...fixed, { field: "detail", ...rule } as FieldRule], limits };
}

/** The value of the rule under test ("detail", an extra field: "text" would fall back to the subject). */
function detail(result: MapResult): string {
  if (!result.ok) return assert.fail(`rejected by ${result.rule}: ${result.reason}`);
  return result.alarm.extra.detail ?? "";
}

function email(text: string): MappableEmail {
  return { from: [{ address: "camera@site.example", name: "" }], subject: "Alarm", text, headers: {} };
}

/** Maps while the event-loop delay is recorded; the result, the time and the longest event-loop delay. */
async function timedMap(config: DataMapConfig, mail: MappableEmail) {
  const map = compileDataMap(config);
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  // a timer that must keep firing: it is late by as long as the mapping blocks the loop
  const ticker = setInterval(() => {}, 5);
  await new Promise((r) => setTimeout(r, 20));
  const started = performance.now();
  const result: MapResult = await map.map({ email: mail });
  const ms = performance.now() - started;
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(ticker);
  delay.disable();
  return { result, ms, maxDelayMs: delay.max / 1e6 };
}

function report(t: TestContext, what: string, ms: number, maxDelayMs: number) {
  t.diagnostic(`${what}: mapped in ${ms.toFixed(1)} ms, longest event-loop delay ${maxDelayMs.toFixed(1)} ms`);
  assert.ok(ms < BOUND_MS, `${what} took ${ms.toFixed(0)} ms`);
  assert.ok(maxDelayMs < BOUND_MS, `${what} blocked the event loop for ${maxDelayMs.toFixed(0)} ms`);
}

describe("user regexes run in linear time (issue #20.3)", () => {
  it("^(?:\\w|\\d)+$ on 30 digits and '!' (51 s with RegExp) and on a full body", async (t) => {
    const config = withRule({ source: { kind: "body" }, extractor: { kind: "regex", pattern: "^(?:\\w|\\d)+$" } });
    for (const text of [`${"1".repeat(30)}!`, `${"1".repeat(1999)}!`]) {
      const { result, ms, maxDelayMs } = await timedMap(config, email(text));
      assert.equal(detail(result), "", "the pattern cannot match: the text ends in '!'");
      report(t, `${text.length} characters`, ms, maxDelayMs);
    }
  });

  it("(.*)(.*)(.*)x on a 16,000-character body (minutes with RegExp)", async (t) => {
    const body = Array.from({ length: 8 }, () => "a".repeat(2000)).join("\n");
    for (const flags of ["", "s"]) {
      const config = withRule({
        source: { kind: "body" },
        extractor: { kind: "regex", pattern: "(.*)(.*)(.*)x", flags },
        required: true,
      });
      const { result, ms, maxDelayMs } = await timedMap(config, email(body));
      assert.equal(result.ok, false);
      if (!result.ok) assert.match(result.reason, /detail is required but empty: regular expression did not match/);
      report(t, `flags "${flags}"`, ms, maxDelayMs);
    }
  });

  it("(\\w+\\s?)+$, refused on deploy before, now runs: words ending in '!'", async (t) => {
    const config = withRule({ source: { kind: "body" }, extractor: { kind: "regex", pattern: "(\\w+\\s?)+$" } });
    const { result, ms, maxDelayMs } = await timedMap(config, email(`${`${"word ".repeat(300)}\n`.repeat(10)}word!`));
    assert.equal(detail(result), "");
    report(t, "(\\w+\\s?)+$", ms, maxDelayMs);
    const ok = compileDataMap(config).map({ email: email("zone 12 open") }) as MapResult;
    assert.equal(detail(ok), "open", "group 1 is its last repetition, as in JavaScript");
  });

  it("a JSONata $match, $replace, $split and $contains with catastrophic patterns", async (t) => {
    const hostile = `${"a".repeat(1999)}!\n${"1".repeat(30)}!`;
    const cases: [string, string][] = [
      ["$match(source, /^(a|a)+$/m)", ""],
      ["$count($match(source, /(a+)+b/))", "0"],
      ["$replace(source, /(\\w|\\d)+!/, 'X')", "X\nX"],
      ["$string($contains(source, /^(?:\\w|\\d)+$/m))", "false"],
      ["$count($split(source, /(.*)(.*)(.*)x/))", "1"],
    ];
    for (const [expression, expected] of cases) {
      const config = withRule({ source: { kind: "body" }, extractor: { kind: "jsonata", expression } });
      const { result, ms, maxDelayMs } = await timedMap(config, email(hostile));
      assert.equal(detail(result), expected, expression);
      report(t, expression, ms, maxDelayMs);
    }
  });

  it("a JSONata expression whose regex loop runs past its time limit rejects the email with the reason", async () => {
    // 16,000 matches of /a/ cost more than 5 ms; jsonata itself checks its timeout only between steps
    const config = withRule(
      { source: { kind: "body" }, extractor: { kind: "jsonata", expression: "$count($match(source, /a/))" } },
      { jsonataTimeoutMs: 5, maxLineChars: 16_384 },
    );
    const started = performance.now();
    const { result } = await timedMap(config, email("a".repeat(16_000)));
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.rule, "rule 3 (detail)");
      assert.match(result.reason, /JSONata expression failed: .*a regular expression ran past the time limit of 5 ms/);
    }
    assert.ok(performance.now() - started < BOUND_MS);
  });

  it("a regex that only $eval builds at run time runs on RE2 too: what it cannot run rejects the email", async () => {
    const config = withRule({
      source: { kind: "body" },
      extractor: { kind: "jsonata", expression: "$eval('$match(source, /(\\\\w)\\\\1/).match')" },
    });
    const { result } = await timedMap(config, email("aa"));
    assert.equal(result.ok, false);
    if (!result.ok)
      assert.match(result.reason, /JSONata expression failed: .*a backreference \(\\+1\) is not supported/);
  });

  it("a JSONata regex over a text longer than its work budget rejects the email instead of running long", async () => {
    const config = withRule({
      source: { kind: "body" },
      extractor: { kind: "jsonata", expression: "$match(email.text, /[\\s\\S]{180}!/).match" },
    });
    const { result } = await timedMap(config, email("a".repeat(200_000)));
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /on 200000 characters: more than the \d+ it can search/);
  });
});

describe("the work budget", () => {
  it("the largest patterns allowed, on the longest source, in their worst case", (t) => {
    const worst: [string, string, string][] = [
      ["(?:(\\w)|(\\d)|(a)|(b)){1,22}!", "", `${"a".repeat(16_383)}!`],
      ["((a|b|\\w){1,27}){1,3}!", "", `${"a".repeat(16_383)}!`],
      ["(\\p{L}|\\d){1,60}$", "i", `${"a".repeat(16_383)}!`],
      ["[\\s\\S]{180}!", "", `${"ab1 ".repeat(4_096)}!`],
      ["(\\w+\\s?)+$", "", `${"ab1 ".repeat(4_096)}!`],
    ];
    for (const [pattern, flags, text] of worst) {
      const re = compileLinear(pattern, flags);
      assert.equal(sizeProblem(re, 16_384), null, `/${pattern}/ is allowed`);
      const started = performance.now();
      execLinear(re, text);
      const ms = performance.now() - started;
      t.diagnostic(
        `/${pattern}/${flags} (program size ${re.programSize()}) on ${text.length} characters: ${ms.toFixed(0)} ms`,
      );
      assert.ok(ms < BOUND_MS, `/${pattern}/ took ${ms.toFixed(0)} ms`);
    }
  });

  it("refuses a pattern too large for the source limit, and says how large it may be", () => {
    const re = compileLinear("(?:(\\w)|(\\d)){1,60}!", "");
    assert.match(
      sizeProblem(re, 16_384) ?? "",
      /^is too large: RE2 program size \d+, at most 366 for limits\.maxSourceChars 16384/,
    );
    assert.equal(sizeProblem(re, 8_192), null, "a shorter source limit allows it");
    assert.throws(
      () => compileLinear("(\\w{1,600}\\s){1,3}", ""),
      /at most 1000 repetitions with nested repeats multiplied/,
    );
  });
});

describe("RE2 semantics for patterns written as JavaScript", () => {
  it("flags, named groups, lookbehind, unicode, escapes and lazy repeats behave as in JavaScript", () => {
    const cases: [string, string, string, string | undefined][] = [
      ["zone (?<zone>\\d+)", "", "Zone 7, zone 12", "12"],
      ["ZONE (\\d+)", "i", "zone 5", "5"],
      ["^area (\\d+)$", "m", "x\narea 3\ny", "3"],
      ["begin(.*)end", "s", "begin\n1\nend", "\n1\n"],
      ["(?<=acct )\\d+", "", "acct 4471", "4471"],
      ["(?<!x)\\d+", "", "x1 22", "22"],
      ["\\p{L}+", "u", "12 Café", "Café"],
      ["\\u00e9(\\d)", "", "é4", "4"],
      ["<(.+?)>", "", "<a><b>", "a"],
      ["a|(?<zone>b)", "", "a", undefined],
    ];
    for (const [pattern, flags, text, expected] of cases) {
      const m = execLinear(compileLinear(pattern, flags), text);
      assert.ok(m !== null, `/${pattern}/${flags} matched ${JSON.stringify(text)}`);
      const got =
        m.groups?.zone !== undefined || pattern.includes("?<zone>") ? m.groups?.zone : (m.values[1] ?? m.values[0]);
      assert.equal(got, expected, `/${pattern}/${flags}`);
    }
  });

  it("indices are JavaScript's (UTF-16), also after an emoji", () => {
    const m = execLinear(compileLinear("\\d+", ""), "😀 zone 42");
    assert.equal(m?.index, "😀 zone 42".indexOf("42"));
  });

  it("as jsonata's RegexEngine: global exec walks the matches like RegExp", () => {
    const Engine = linearRegexEngine(1000);
    const re = new Engine(/(\d)/g);
    const found: [string, number][] = [];
    for (let m = re.exec("a1b22"); m !== null; m = re.exec("a1b22")) found.push([m[1], m.index]);
    assert.deepEqual(found, [
      ["1", 1],
      ["2", 3],
      ["2", 4],
    ]);
    assert.equal(re.lastIndex, 0);
  });

  it("every preset compiles within the work budget", () => {
    for (const preset of DATA_MAP_PRESETS) compileDataMap(preset.config());
  });
});
