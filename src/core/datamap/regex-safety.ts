// A deploy-time check for regular expressions that can take exponential time: a variable-length repeat of a
// group that itself contains a variable-length repeat, like (\w+\s?)+ or (a|a+)*. JavaScript's regex engine
// backtracks, a hostile email can make such a pattern run for hours, and it cannot be interrupted.
// A heuristic: it also refuses some safe patterns (e.g. (?:,\d+)+); those can be rewritten as [\d,]+.
// Polynomial cases (\s*:?\s*) are bounded instead by the source text limits.

interface Frame {
  start: number;
  variable: boolean;
}

/** Length of the escape sequence at i (pattern[i] === "\\"). */
function escapeLength(pattern: string, i: number): number {
  const next = pattern[i + 1];
  const brace = pattern[i + 2];
  if ((next === "p" || next === "P" || next === "u") && brace === "{") {
    const end = pattern.indexOf("}", i + 3);
    return end < 0 ? 2 : end - i + 1;
  }
  if (next === "k" && brace === "<") {
    const end = pattern.indexOf(">", i + 3);
    return end < 0 ? 2 : end - i + 1;
  }
  return 2;
}

/** Index just after the character class that starts at i. */
function classEnd(pattern: string, i: number): number {
  let j = i + 1;
  while (j < pattern.length) {
    const c = pattern[j];
    if (c === "\\") j += 2;
    else if (c === "]") return j + 1;
    else j++;
  }
  return pattern.length;
}

/** Length of "(" plus a "?:", "?=", "?!", "?<=", "?<!" or "?<name>" prefix. */
function groupOpenLength(pattern: string, i: number): number {
  if (pattern[i + 1] !== "?") return 1;
  if (pattern[i + 2] === "<" && pattern[i + 3] !== "=" && pattern[i + 3] !== "!") {
    const end = pattern.indexOf(">", i + 3);
    return end < 0 ? 2 : end - i + 1;
  }
  return pattern[i + 2] === "<" ? 4 : 3;
}

const BRACE_QUANTIFIER = /^\{(\d+)(,(\d*))?\}/;

/** The quantifier at i: its length and whether it repeats a variable number of times (not "?", not {n}). */
function quantifierAt(pattern: string, i: number): { length: number; variable: boolean } | null {
  const c = pattern[i];
  let length: number;
  let variable: boolean;
  if (c === "*" || c === "+") {
    length = 1;
    variable = true;
  } else if (c === "?") {
    length = 1;
    variable = false;
  } else if (c === "{") {
    const m = BRACE_QUANTIFIER.exec(pattern.slice(i, i + 24));
    if (m === null) return null;
    length = m[0].length;
    variable = m[2] !== undefined && (m[3] === "" || Number(m[3]) > Number(m[1]));
  } else {
    return null;
  }
  if (pattern[i + length] === "?") length++; // lazy
  return { length, variable };
}

/** The offending part of the pattern, e.g. "(\\w+\\s?)+", or null when none was found. */
export function findNestedQuantifier(pattern: string): string | null {
  const stack: Frame[] = [{ start: 0, variable: false }];
  // the last complete atom: where it starts and whether it contains a variable repeat
  let atomStart = -1;
  let atomVariable = false;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    const top = stack[stack.length - 1];
    if (c === "\\") {
      atomStart = i;
      atomVariable = false;
      i += escapeLength(pattern, i);
    } else if (c === "[") {
      atomStart = i;
      atomVariable = false;
      i = classEnd(pattern, i);
    } else if (c === "(") {
      stack.push({ start: i, variable: false });
      atomStart = -1;
      i += groupOpenLength(pattern, i);
    } else if (c === ")") {
      const closed = stack.length > 1 ? (stack.pop() as Frame) : { start: 0, variable: false };
      const parent = stack[stack.length - 1];
      if (closed.variable) parent.variable = true;
      atomStart = closed.start;
      atomVariable = closed.variable;
      i++;
    } else if (c === "|") {
      atomStart = -1;
      i++;
    } else {
      const q = quantifierAt(pattern, i);
      if (q === null) {
        atomStart = i;
        atomVariable = false;
        i++;
        continue;
      }
      if (q.variable && atomVariable && atomStart >= 0) return pattern.slice(atomStart, i + q.length);
      if (q.variable) top.variable = true;
      atomStart = -1;
      i += q.length;
    }
  }
  return null;
}
