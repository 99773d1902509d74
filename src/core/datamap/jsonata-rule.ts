// The JSONata escape hatch: parsed on deploy (syntax errors and regex literals RE2 cannot run name the rule),
// evaluated with a time, depth and sequence limit. Its regex literals ($match, $replace, $split, $contains)
// run on re2js through jsonata's RegexEngine option: a native RegExp would escape the time limit, which
// jsonata checks only between steps. jsonata 2.x evaluates asynchronously only.
import jsonata from "jsonata";
import { Miss } from "./extract";
import { compileLinear, linearRegexEngine } from "./linear-regex";

export type JsonataExpression = jsonata.Expression;

interface JsonataErrorLike {
  code?: unknown;
  message?: unknown;
  position?: unknown;
  token?: unknown;
}

function describe(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const e = err as JsonataErrorLike;
    const message = typeof e.message === "string" ? e.message : String(err);
    const code = typeof e.code === "string" ? `${e.code} ` : "";
    const at = typeof e.position === "number" ? ` (at character ${e.position})` : "";
    return `${code}${message}${at}`;
  }
  return String(err);
}

/** Regex literals anywhere in the parsed expression. */
function regexLiterals(ast: unknown): RegExp[] {
  const found: RegExp[] = [];
  const seen = new Set<unknown>();
  const visit = (node: unknown, depth: number): void => {
    if (typeof node !== "object" || node === null || seen.has(node) || depth > 200) return;
    seen.add(node);
    if (node instanceof RegExp) {
      found.push(node);
      return;
    }
    for (const value of Object.values(node)) visit(value, depth + 1);
  };
  visit(ast, 0);
  return found;
}

/** Parses the expression; throws a message for the rule when it cannot be used. */
export function compileJsonata(expression: unknown, limits: { timeoutMs: number }): JsonataExpression {
  if (typeof expression !== "string" || expression.trim() === "") throw new Error("JSONata expression is empty");
  let expr: JsonataExpression;
  try {
    expr = jsonata(expression, {
      timeout: limits.timeoutMs,
      stack: 500,
      sequence: 100_000,
      RegexEngine: linearRegexEngine(limits.timeoutMs),
    });
  } catch (err) {
    throw new Error(`JSONata expression: ${describe(err)}`);
  }
  for (const re of regexLiterals(expr.ast())) {
    try {
      compileLinear(re.source, re.flags);
    } catch (err) {
      throw new Error(`JSONata expression: regex /${re.source}/: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return expr;
}

const MAX_RESULT_CHARS = 64 * 1024;

/** Runs the expression; the value as text, or a Miss saying what it returned or why it failed. */
export async function evaluateJsonata(
  expr: JsonataExpression,
  input: Record<string, unknown>,
): Promise<{ value: string | Miss; error: string | null }> {
  let result: unknown;
  try {
    result = await expr.evaluate(input);
  } catch (err) {
    return { value: new Miss("JSONata expression failed"), error: `JSONata expression failed: ${describe(err)}` };
  }
  if (Array.isArray(result) && result.length === 1) result = result[0];
  if (result === undefined || result === null)
    return { value: new Miss("JSONata expression gave nothing"), error: null };
  if (typeof result === "string") {
    return { value: result.length > MAX_RESULT_CHARS ? result.slice(0, MAX_RESULT_CHARS) : result, error: null };
  }
  if (typeof result === "number" || typeof result === "boolean") return { value: String(result), error: null };
  const what = Array.isArray(result) ? `a list of ${result.length} values` : typeof result;
  return { value: new Miss(`JSONata expression gave ${what}, not text or a number`), error: null };
}
