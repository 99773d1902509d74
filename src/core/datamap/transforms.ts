// Transforms applied in order to an extracted value: trim, upper/lower, pad, default and translation tables.
// A value is a string or null (nothing extracted); only "default" does anything with null.
import { type CompiledTable, eventCodeFor, type TranslatedEvent, translatedEvent } from "./tables";
import type { EventFormat, FieldTransform, TranslateOutput } from "./types";

/** What transforms of one rule report besides the value; reset before each rule. */
export class TransformScratch {
  format: EventFormat = "SIA";
  /** The event an events table found, for the alarm's qualifier and both codes. */
  event: TranslatedEvent | null = null;
  note: string | null = null;
  /** Set by translate with onMiss "fail". */
  fail: string | null = null;

  reset(format: EventFormat): void {
    this.format = format;
    this.event = null;
    this.note = null;
    this.fail = null;
  }
}

export type CompiledTransform = (value: string | null, scratch: TransformScratch) => string | null;

const EVENT_OUTPUTS: readonly TranslateOutput[] = ["code", "sia", "cid", "qualifier", "description"];

function quoteShort(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

function compileTranslate(
  t: Extract<FieldTransform, { kind: "translate" }>,
  tables: ReadonlyMap<string, CompiledTable>,
): CompiledTransform {
  const table = typeof t.table === "string" ? tables.get(t.table) : undefined;
  if (table === undefined) {
    const known = [...tables.keys()].map((k) => `"${k}"`).join(", ");
    throw new Error(`translation table ${JSON.stringify(t.table)} does not exist (tables: ${known || "none"})`);
  }
  const onMiss = t.onMiss ?? "keep";
  if (onMiss !== "keep" && onMiss !== "empty" && onMiss !== "fail") {
    throw new Error(`translate onMiss ${JSON.stringify(onMiss)} is not "keep", "empty" or "fail"`);
  }
  const name = t.table;
  const miss = (value: string, scratch: TransformScratch): string | null => {
    const why = `table "${name}" has no entry for ${quoteShort(value)}`;
    if (onMiss === "fail") scratch.fail = why;
    else scratch.note = onMiss === "keep" ? `${why}; kept as it is` : `${why}; left empty`;
    return onMiss === "keep" ? value : null;
  };

  if (table.kind === "values") {
    if (t.output !== undefined && t.output !== "value") {
      throw new Error(`table "${name}" holds values: output must be "value", not ${JSON.stringify(t.output)}`);
    }
    return (value, scratch) => {
      if (value === null) return null;
      return table.lookup(value) ?? miss(value, scratch);
    };
  }
  const output = t.output ?? "code";
  if (!EVENT_OUTPUTS.includes(output)) {
    throw new Error(`table "${name}" holds events: output ${JSON.stringify(output)} is not one of ${EVENT_OUTPUTS}`);
  }
  return (value, scratch) => {
    if (value === null) return null;
    const match = table.lookup(value);
    if (match === null) return miss(value, scratch);
    const event = translatedEvent(match);
    scratch.event = event;
    switch (output) {
      case "sia":
        return event.sia;
      case "cid":
        return event.cid;
      case "qualifier":
        return event.qualifier;
      case "description":
        return event.description;
      default:
        return eventCodeFor(event, scratch.format);
    }
  };
}

/** Compiles one transform; throws a message for the rule when its settings are unusable. */
export function compileTransform(t: FieldTransform, tables: ReadonlyMap<string, CompiledTable>): CompiledTransform {
  switch (t.kind) {
    case "trim":
      return (v) => (v === null ? null : v.trim());
    case "upper":
      return (v) => (v === null ? null : v.toUpperCase());
    case "lower":
      return (v) => (v === null ? null : v.toLowerCase());
    case "pad": {
      const { length } = t;
      const char = t.char ?? "0";
      const side = t.side ?? "left";
      if (typeof length !== "number" || !Number.isInteger(length) || length < 1 || length > 64) {
        throw new Error(`pad length ${JSON.stringify(length)} is not 1-64`);
      }
      if (typeof char !== "string" || [...char].length !== 1) {
        throw new Error(`pad character ${JSON.stringify(char)} is not one character`);
      }
      if (side !== "left" && side !== "right") throw new Error(`pad side ${JSON.stringify(side)} is not left or right`);
      return (v) => {
        if (v === null || v.length >= length) return v;
        return side === "left" ? v.padStart(length, char) : v.padEnd(length, char);
      };
    }
    case "default": {
      const fallback = t.value;
      if (typeof fallback !== "string") throw new Error(`default value ${JSON.stringify(fallback)} is not text`);
      return (v) => (v === null || v === "" ? fallback : v);
    }
    case "translate":
      return compileTranslate(t, tables);
    default:
      throw new Error(`transform kind ${JSON.stringify((t as { kind?: unknown }).kind)} is unknown`);
  }
}
