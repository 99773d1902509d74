// Every user regular expression (rules, JSONata regex literals) runs on re2js, a port of RE2: its time grows
// linearly with the text, so no pattern can make one email stall the runtime by backtracking, as
// JavaScript's own engine does on ^(?:\w|\d)+$ or (.*)(.*)(.*)x (issue #20). Patterns are still written as
// in JavaScript; what RE2 cannot do in linear time is refused on deploy with the construct named.
import { RE2JS } from "re2js";

/**
 * Characters × RE2 program size one search may cost. RE2's time is linear in both (each character advances at
 * most one thread per instruction); measured 15-65 ns per unit when it cannot use its DFA (large Unicode
 * classes cost most), so a few hundred ms at worst per rule (test/unit/datamap-linear-regex.test.ts). With the
 * default source limit of 16,384 characters that allows a program size of 366: the presets use 58 and 264,
 * [0-9A-F]{3,16} 31.
 */
export const WORK_BUDGET = 6_000_000;

const WHY = "user patterns run on a linear-time engine (RE2) so that no email can stall the runtime";

/** Which construct of a JavaScript pattern RE2 has no linear-time equivalent for, or null. */
export function unsupportedConstruct(pattern: string): string | null {
  let inClass = false;
  const lookbehinds: number[] = []; // depth of the groups that are lookbehinds
  let depth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (!inClass && next >= "1" && next <= "9") return `a backreference (\\${next})`;
      if (!inClass && next === "k" && pattern[i + 2] === "<") return "a backreference (\\k<name>)";
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
    } else if (c === "(") {
      depth++;
      if (pattern.startsWith("(?=", i) || pattern.startsWith("(?!", i)) return "a lookahead (?= …) or (?! …)";
      if (pattern.startsWith("(?<=", i) || pattern.startsWith("(?<!", i)) lookbehinds.push(depth);
      else if (lookbehinds.length > 0 && pattern[i + 1] !== "?") return "a capture group inside a lookbehind";
      else if (lookbehinds.length > 0 && pattern.startsWith("(?<", i)) return "a capture group inside a lookbehind";
    } else if (c === ")") {
      if (lookbehinds[lookbehinds.length - 1] === depth) lookbehinds.pop();
      depth--;
    } else if (c === "{") {
      const m = /^\{(\d+)(?:,(\d*))?\}/.exec(pattern.slice(i, i + 24));
      if (m !== null && (Number(m[1]) > 1000 || (m[2] !== undefined && m[2] !== "" && Number(m[2]) > 1000))) {
        return `a repeat count above 1000 (${m[0]})`;
      }
    }
  }
  return null;
}

function re2Flags(flags: string): number {
  // lookbehinds without captures run in linear time in re2js; "u" needs nothing: RE2 reads code points
  let f = RE2JS.LOOKBEHINDS;
  if (flags.includes("i")) f |= RE2JS.CASE_INSENSITIVE;
  if (flags.includes("m")) f |= RE2JS.MULTILINE;
  if (flags.includes("s")) f |= RE2JS.DOTALL;
  return f;
}

/**
 * Compiles a JavaScript pattern (already accepted by `new RegExp`) for re2js; throws a message that names the
 * construct RE2 cannot run, for the rule's label to precede.
 */
export function compileLinear(pattern: string, flags: string): RE2JS {
  const unsupported = unsupportedConstruct(pattern);
  if (unsupported !== null) throw new Error(`${unsupported} is not supported: ${WHY}`);
  try {
    return RE2JS.compile(RE2JS.translateRegExp(pattern), re2Flags(flags));
  } catch (err) {
    const said = err instanceof Error ? err.message.replace(/^error parsing regexp: /, "") : String(err);
    // RE2 counts nested repeats multiplied: (x{1,600}){1,3} is 1800
    const hint = said.startsWith("invalid repeat count")
      ? ", at most 1000 repetitions with nested repeats multiplied"
      : "";
    throw new Error(`not supported (${said}${hint}): ${WHY}`);
  }
}

/** The longest text a pattern may search within WORK_BUDGET. */
export function maxTextFor(re: RE2JS): number {
  return Math.floor(WORK_BUDGET / Math.max(1, re.programSize()));
}

/** Why the pattern is too large to search `maxChars` characters, or null. */
export function sizeProblem(re: RE2JS, maxChars: number): string | null {
  if (maxTextFor(re) >= maxChars) return null;
  const most = Math.floor(WORK_BUDGET / maxChars);
  return (
    `is too large: RE2 program size ${re.programSize()}, at most ${most} for limits.maxSourceChars ${maxChars} ` +
    "(its time grows with both; large repeat counts like {100} make it large)"
  );
}

export interface LinearMatch {
  /** As RegExp.exec: [0] the match, [n] group n or undefined. */
  values: (string | undefined)[];
  index: number;
  end: number;
  groups: Record<string, string | undefined> | undefined;
}

/** The first match at or after `from` (UTF-16 index), or null. */
export function execLinear(re: RE2JS, text: string, from = 0): LinearMatch | null {
  if (from > text.length) return null;
  const m = re.matcher(text);
  if (!m.find(from)) return null;
  const values: (string | undefined)[] = [];
  for (let g = 0; g <= re.groupCount(); g++) values.push(m.group(g) ?? undefined);
  const names = Object.entries(re.namedGroups());
  let groups: Record<string, string | undefined> | undefined;
  if (names.length > 0) {
    groups = {};
    for (const [name, index] of names) groups[name] = values[index];
  }
  return { values, index: m.start(), end: m.end(), groups };
}

/** Thrown when a regular expression in JSONata runs past the expression's time limit. */
function timeoutError(timeoutMs: number): Error {
  return new Error(`a regular expression ran past the time limit of ${timeoutMs} ms`);
}

/**
 * A RegExp look-alike for jsonata's `RegexEngine` option: jsonata builds one per regex literal it evaluates
 * and calls only `exec` with `lastIndex` (its literals are always global). Each instance gives up after the
 * expression's time limit, so a loop of matches ($match, $replace, $split) cannot outlast it either.
 */
export function linearRegexEngine(timeoutMs: number): RegExpConstructor {
  class LinearRegExp {
    lastIndex = 0;
    readonly source: string;
    readonly flags: string;
    private readonly re: RE2JS;
    private readonly deadline = Date.now() + timeoutMs;

    constructor(pattern: RegExp | string, flags?: string) {
      this.source = typeof pattern === "string" ? pattern : pattern.source;
      this.flags = flags ?? (typeof pattern === "string" ? "" : pattern.flags);
      this.re = compileLinear(this.source, this.flags);
    }

    exec(input: string): RegExpExecArray | null {
      if (Date.now() > this.deadline) throw timeoutError(timeoutMs);
      const text = String(input);
      if (text.length > maxTextFor(this.re)) {
        throw new Error(
          `regular expression /${this.source}/ on ${text.length} characters: more than the ${maxTextFor(this.re)} ` +
            "it can search within its time budget; cut the text first (e.g. $substring)",
        );
      }
      const m = execLinear(this.re, text, this.flags.includes("g") ? this.lastIndex : 0);
      if (m === null) {
        this.lastIndex = 0;
        return null;
      }
      if (this.flags.includes("g")) this.lastIndex = m.end;
      return Object.assign(m.values, { index: m.index, input: text, groups: m.groups }) as unknown as RegExpExecArray;
    }
  }
  return LinearRegExp as unknown as RegExpConstructor;
}
