// Extractors: how a rule cuts its value out of the source text. Compiled once (regexes built and checked
// on deploy); at map time each is a small function that returns the value or a Miss saying why not.
import type { RE2JS } from "re2js";
import { compileLinear, execLinear, sizeProblem } from "./linear-regex";
import type { FieldExtractor } from "./types";

/** Nothing was found, and why, in words for the Try-it panel and msg.error. */
export class Miss {
  constructor(readonly reason: string) {}
}

export type Extracted = string | Miss;

/** Splits a text into its non-blank lines once per text (rules often read lines of the same body). */
export class LineCache {
  private text: string | null = null;
  private lines: string[] = [];

  linesOf(text: string): string[] {
    if (text !== this.text) {
      this.text = text;
      this.lines = contentLines(text);
    }
    return this.lines;
  }
}

const NON_SPACE = /\S/;

/** Non-blank lines, without a trailing CR. */
export function contentLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    let line = text.slice(start, end);
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    if (NON_SPACE.test(line)) out.push(line);
    start = end + 1;
  }
  return out;
}

/** 1-based, negative from the end: the item or undefined. */
function pick<T>(list: T[], n: number): T | undefined {
  return n > 0 ? list[n - 1] : list[list.length + n];
}

export function lineOf(lines: string[], n: number, what = "text"): Extracted {
  const line = pick(lines, n);
  if (line !== undefined) return line;
  return new Miss(`no line ${n}: the ${what} has ${lines.length} non-blank line${lines.length === 1 ? "" : "s"}`);
}

export type CompiledExtractor = (text: string, lines: LineCache) => Extracted;

function isPosition(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 1_000_000;
}

function isIndex(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n !== 0 && Math.abs(n) <= 1_000_000;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

const ALLOWED_FLAGS = /^[imsu]*$/;

/** The source text limit when none is given (DataMapLimits.maxSourceChars). */
const DEFAULT_MAX_SOURCE_CHARS = 16_384;

export interface CompiledRegex {
  /** Runs in time linear in the text (linear-regex.ts). */
  regex: RE2JS;
  /** Group name or number whose text is the value; 0 = the whole match. */
  group: string | number;
}

/** Builds the rule's regex and picks its group; throws a message for the rule when it cannot be used. */
export function compileRegex(
  pattern: unknown,
  flags: unknown,
  group: unknown,
  field: string,
  maxSourceChars = DEFAULT_MAX_SOURCE_CHARS,
): CompiledRegex {
  if (typeof pattern !== "string" || pattern === "") throw new Error("regular expression is empty");
  const f = flags === undefined ? "" : flags;
  if (typeof f !== "string" || !ALLOWED_FLAGS.test(f)) {
    throw new Error(`regular expression flags ${JSON.stringify(f)}: only i, m, s and u are allowed`);
  }
  try {
    // written as JavaScript: its syntax errors are the ones the user knows
    new RegExp(pattern, f);
  } catch (err) {
    // V8 says "Invalid regular expression: /x/: Unterminated group"; the rule label already says which one
    const message = err instanceof Error ? err.message.replace(/^Invalid regular expression: \/.*\/\w*: /s, "") : "";
    throw new Error(`regular expression /${pattern}/: ${message}`);
  }
  let regex: RE2JS;
  try {
    regex = compileLinear(pattern, f);
  } catch (err) {
    throw new Error(`regular expression /${pattern}/: ${err instanceof Error ? err.message : String(err)}`);
  }
  const tooLarge = sizeProblem(regex, maxSourceChars);
  if (tooLarge !== null) throw new Error(`regular expression /${pattern}/ ${tooLarge}`);
  const names = Object.keys(regex.namedGroups());
  const count = regex.groupCount();
  let chosen: string | number;
  if (group === undefined || group === "") {
    chosen = names.includes(field) ? field : count >= 1 ? 1 : 0;
  } else if (typeof group === "string" && !/^\d+$/.test(group)) {
    if (!names.includes(group)) {
      const known = names.length > 0 ? `it has ${names.map((n) => `"${n}"`).join(", ")}` : "it has no named groups";
      throw new Error(`regular expression /${pattern}/ has no group named "${group}" (${known})`);
    }
    chosen = group;
  } else {
    const n = typeof group === "number" ? group : Number(group);
    if (!Number.isInteger(n) || n < 0 || n > count) {
      throw new Error(`regular expression /${pattern}/ has no group ${String(group)} (it has ${count})`);
    }
    chosen = n;
  }
  return { regex, group: chosen };
}

/** Compiles one (non-JSONata) extractor; throws a message for the rule when its settings are unusable. */
export function compileExtractor(
  extractor: FieldExtractor,
  field: string,
  maxSourceChars = DEFAULT_MAX_SOURCE_CHARS,
): CompiledExtractor {
  switch (extractor.kind) {
    case "whole":
      return (text) => text;
    case "line": {
      const n = extractor.line;
      if (!isIndex(n)) throw new Error(`line ${JSON.stringify(n)} is not a line number (1, 2, … or -1 for the last)`);
      return (text, cache) => lineOf(cache.linesOf(text), n);
    }
    case "split": {
      const { delimiter, part } = extractor;
      if (typeof delimiter !== "string" || delimiter === "") throw new Error("split delimiter is empty");
      if (!isIndex(part)) throw new Error(`split part ${JSON.stringify(part)} is not 1, 2, … or -1 for the last`);
      return (text) => {
        const parts = text.split(delimiter);
        const value = pick(parts, part);
        if (value !== undefined) return value;
        return new Miss(`no part ${part} when split by ${JSON.stringify(delimiter)}: there are ${parts.length}`);
      };
    }
    case "fixed": {
      const { start, length } = extractor;
      if (!isPosition(start)) throw new Error(`fixed start ${JSON.stringify(start)} is not a position (1 = first)`);
      if (!isPosition(length)) throw new Error(`fixed length ${JSON.stringify(length)} is not 1 or more`);
      return (text) => {
        if (start > text.length) {
          return new Miss(`position ${start} is past the end of the text (${text.length} characters)`);
        }
        return text.slice(start - 1, start - 1 + length);
      };
    }
    case "label": {
      const { label } = extractor;
      const separator = extractor.separator ?? ":";
      if (typeof label !== "string" || label.trim() === "") throw new Error("label is empty");
      if (typeof separator !== "string") throw new Error("label separator is not text");
      const sep = separator.trim() === "" ? "[ \\t]" : `[ \\t]*${escapeRegex(separator.trim())}`;
      const regex = new RegExp(`^[ \\t]*${escapeRegex(label.trim())}${sep}[ \\t]*(.*)$`, "gim");
      const shown = `${label.trim()}${separator.trim()}`;
      return (text) => {
        regex.lastIndex = 0;
        for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
          const value = m[1].trim();
          if (value !== "") return value;
          if (regex.lastIndex === m.index) regex.lastIndex++;
        }
        return new Miss(`no line starts with "${shown}" followed by a value`);
      };
    }
    case "regex": {
      const { regex, group } = compileRegex(extractor.pattern, extractor.flags, extractor.group, field, maxSourceChars);
      const groupName = group === 0 ? "the match" : `group ${typeof group === "string" ? `"${group}"` : group}`;
      return (text) => {
        const m = execLinear(regex, text);
        if (m === null) return new Miss("regular expression did not match");
        const value = typeof group === "string" ? m.groups?.[group] : m.values[group];
        return value === undefined ? new Miss(`regular expression matched but ${groupName} took no part`) : value;
      };
    }
    case "jsonata":
      throw new Error("a JSONata extractor is compiled by compile.ts");
    default:
      throw new Error(`extractor kind ${JSON.stringify((extractor as { kind?: unknown }).kind)} is unknown`);
  }
}
