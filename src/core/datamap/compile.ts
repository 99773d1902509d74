// compileDataMap: checks a whole DataMapConfig on deploy (every problem names its rule: regexes, named groups,
// JSONata, tables, indices) and turns it into a CompiledDataMap whose map() never throws (map-email.ts).
// Without JSONata rules map() is synchronous; with one, it returns a Promise.
import { viewEmail } from "./email-view";
import { type CompiledExtractor, compileExtractor } from "./extract";
import { compileJsonata, type JsonataExpression } from "./jsonata-rule";
import {
  type CompiledRule,
  DEFAULT_LIMITS,
  KNOWN_FIELDS,
  type MapLimits,
  type MapSettings,
  mapAsync,
  mapSync,
  prepareFor,
} from "./map-email";
import { DEFAULT_PREPROCESS, type PreparedEmail } from "./preprocess";
import { compileAllowList, compileSpoofCheck, spoofOptionProblems } from "./sender-check";
import { compileSource, type SourceReader } from "./sources";
import { type CompiledTable, compileTable, defaultTranslationTables, tableProblems } from "./tables";
import { type CompiledTransform, compileTransform } from "./transforms";
import {
  ALARM_FIELDS,
  type DataMapConfig,
  type EventFormat,
  type FieldRule,
  type MapInput,
  type MapResult,
  type PreprocessOptions,
  type SpoofCheckOptions,
} from "./types";
import { rangeProblems } from "./validate";

/** A config that cannot be deployed; `problems` lists every problem, each naming its rule or setting. */
export class DataMapConfigError extends Error {
  override readonly name = "DataMapConfigError";
  readonly problems: string[];

  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.problems = problems;
  }
}

export interface CompiledDataMap {
  /** True when a rule uses JSONata: then map() returns a Promise. */
  readonly async: boolean;
  readonly ruleCount: number;
  /** Never throws and never rejects: every email ends ok or rejected with the rule and reason. */
  map(input: MapInput): MapResult | Promise<MapResult>;
  /** The subject and body the rules see, for the Try-it panel. */
  prepare(email: unknown): PreparedEmail;
}

const MAX_RULES = 200;
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function limitValue(problems: string[], raw: unknown, name: string, min: number, max: number, fallback: number) {
  if (raw === undefined) return fallback;
  if (typeof raw === "number" && Number.isInteger(raw) && raw >= min && raw <= max) return raw;
  problems.push(`limits.${name}: ${JSON.stringify(raw)} is not a whole number ${min}-${max}`);
  return fallback;
}

function compileRule(
  raw: unknown,
  index: number,
  tables: ReadonlyMap<string, CompiledTable>,
  limits: MapLimits,
  problems: string[],
): Omit<CompiledRule, "slot" | "lastOfField"> | null {
  const number = index + 1;
  if (!isObject(raw)) {
    problems.push(`rule ${number}: is not an object`);
    return null;
  }
  const r = raw as Partial<FieldRule> & Record<string, unknown>;
  const field = typeof r.field === "string" ? r.field.trim() : "";
  if (!KNOWN_FIELDS.has(field) && !FIELD_NAME.test(field)) {
    problems.push(
      `rule ${number}: field ${JSON.stringify(r.field)} is not ${ALARM_FIELDS.join(", ")} or a name of letters ` +
        "and digits (an extra field)",
    );
    return null;
  }
  const label = `rule ${number} (${field})`;
  const before = problems.length;
  const attempt = <T>(what: () => T): T | null => {
    try {
      return what();
    } catch (err) {
      problems.push(`${label}: ${message(err)}`);
      return null;
    }
  };

  let read: SourceReader | null = null;
  if (isObject(r.source)) read = attempt(() => compileSource(r.source as FieldRule["source"]));
  else problems.push(`${label}: source is missing`);
  let extract: CompiledExtractor | null = null;
  let expression: JsonataExpression | null = null;
  if (!isObject(r.extractor)) {
    problems.push(`${label}: extractor is missing`);
  } else if (r.extractor.kind === "jsonata") {
    const ex = r.extractor;
    expression = attempt(() => compileJsonata(ex.expression, { timeoutMs: limits.jsonataTimeoutMs }));
  } else {
    const ex = r.extractor as FieldRule["extractor"];
    extract = attempt(() => compileExtractor(ex, field, limits.maxSourceChars));
  }
  const transforms: CompiledTransform[] = [];
  if (r.transforms !== undefined && !Array.isArray(r.transforms)) {
    problems.push(`${label}: transforms is not a list`);
  } else {
    (r.transforms ?? []).forEach((t: unknown, j: number) => {
      if (!isObject(t)) {
        problems.push(`${label}: transform ${j + 1} is not an object`);
        return;
      }
      const compiled = attempt(() => {
        try {
          return compileTransform(t as unknown as NonNullable<FieldRule["transforms"]>[number], tables);
        } catch (err) {
          throw new Error(`transform ${j + 1} (${String(t.kind)}): ${message(err)}`);
        }
      });
      if (compiled !== null) transforms.push(compiled);
    });
  }
  if (r.required !== undefined && typeof r.required !== "boolean") {
    problems.push(`${label}: required is not true/false`);
  }
  if (problems.length > before || read === null) return null;
  return {
    number,
    label,
    field,
    required: r.required === true,
    read,
    extract,
    jsonata: expression,
    transforms,
  };
}

function buildSettings(config: unknown): { settings: MapSettings | null; problems: string[] } {
  const problems: string[] = [];
  if (!isObject(config)) return { settings: null, problems: ["the data-map config is not an object"] };
  const c = config as Partial<DataMapConfig> & Record<string, unknown>;

  const limitsRaw = isObject(c.limits) ? c.limits : {};
  if (c.limits !== undefined && !isObject(c.limits)) problems.push("limits: is not an object");
  const limits: MapLimits = {
    maxSourceChars: limitValue(
      problems,
      limitsRaw.maxSourceChars,
      "maxSourceChars",
      256,
      1 << 20,
      DEFAULT_LIMITS.maxSourceChars,
    ),
    maxLineChars: limitValue(
      problems,
      limitsRaw.maxLineChars,
      "maxLineChars",
      80,
      1 << 20,
      DEFAULT_LIMITS.maxLineChars,
    ),
    jsonataTimeoutMs: limitValue(
      problems,
      limitsRaw.jsonataTimeoutMs,
      "jsonataTimeoutMs",
      1,
      10_000,
      DEFAULT_LIMITS.jsonataTimeoutMs,
    ),
  };

  const tables = new Map<string, CompiledTable>();
  if (c.tables !== undefined && !isObject(c.tables)) problems.push("tables: is not an object of tables by name");
  const tableDefs: Record<string, unknown> = { ...defaultTranslationTables(), ...(isObject(c.tables) ? c.tables : {}) };
  for (const [name, table] of Object.entries(tableDefs)) {
    const p = tableProblems(name, table);
    if (p.length > 0) problems.push(...p);
    else tables.set(name, compileTable(table as Parameters<typeof compileTable>[0]));
  }

  const preprocess: PreprocessOptions = { ...DEFAULT_PREPROCESS };
  if (c.preprocess !== undefined && !isObject(c.preprocess)) problems.push("preprocess: is not an object");
  for (const [key, value] of Object.entries(isObject(c.preprocess) ? c.preprocess : {})) {
    if (!Object.hasOwn(DEFAULT_PREPROCESS, key)) problems.push(`preprocess.${key}: is not a preprocessing step`);
    else if (typeof value !== "boolean") problems.push(`preprocess.${key}: is not true/false`);
    else preprocess[key as keyof PreprocessOptions] = value;
  }

  let eventFormat: EventFormat = "SIA";
  if (c.eventFormat !== undefined) {
    if (c.eventFormat === "SIA" || c.eventFormat === "CID") eventFormat = c.eventFormat;
    else problems.push(`eventFormat: ${JSON.stringify(c.eventFormat)} is not "SIA" or "CID"`);
  }
  problems.push(...rangeProblems(c.validation));
  const allow = compileAllowList(c.allowSenders);
  problems.push(...allow.problems);
  problems.push(...spoofOptionProblems(c.spoofCheck));

  const compiled: Omit<CompiledRule, "slot" | "lastOfField">[] = [];
  if (!Array.isArray(c.rules)) {
    problems.push("rules: is not a list");
  } else if (c.rules.length > MAX_RULES) {
    problems.push(`rules: ${c.rules.length} rules, at most ${MAX_RULES}`);
  } else {
    c.rules.forEach((raw: unknown, i: number) => {
      const rule = compileRule(raw, i, tables, limits, problems);
      if (rule !== null) compiled.push(rule);
    });
  }
  if (problems.length > 0) return { settings: null, problems };

  // rules of one field share a slot; `required` on any of them makes the field required
  const fields: string[] = [];
  const requiredFields = new Set(compiled.filter((r) => r.required).map((r) => r.field));
  const rules: CompiledRule[] = compiled.map((r) => {
    let slot = fields.indexOf(r.field);
    if (slot < 0) slot = fields.push(r.field) - 1;
    return { ...r, slot, required: requiredFields.has(r.field), lastOfField: false };
  });
  const lastRuleOfSlot: CompiledRule[] = [];
  for (const rule of rules) lastRuleOfSlot[rule.slot] = rule;
  for (const rule of lastRuleOfSlot) rule.lastOfField = true;
  const ordered = [
    ...rules.filter((r) => r.field === "eventFormat"),
    ...rules.filter((r) => r.field !== "eventFormat"),
  ];
  const spoofOn = isObject(c.spoofCheck) && c.spoofCheck.enabled === true;
  const spoof = spoofOn ? compileSpoofCheck(c.spoofCheck as SpoofCheckOptions) : null;
  return {
    settings: {
      rules: ordered,
      fields,
      lastRuleOfSlot,
      preprocess,
      eventFormat,
      ranges: c.validation,
      allowList: allow.list,
      spoof,
      limits,
      async: rules.some((r) => r.jsonata !== null),
    },
    problems,
  };
}

/** Every problem of a config, each naming its rule or setting; empty when compileDataMap would succeed. */
export function dataMapConfigProblems(config: unknown): string[] {
  return buildSettings(config).problems;
}

/** Checks the whole config and compiles it; throws DataMapConfigError listing every problem. */
export function compileDataMap(config: DataMapConfig): CompiledDataMap {
  const { settings, problems } = buildSettings(config);
  if (settings === null) throw new DataMapConfigError(problems);
  return {
    async: settings.async,
    ruleCount: settings.rules.length,
    map: settings.async ? (input) => mapAsync(settings, input) : (input) => mapSync(settings, input),
    prepare: (email) => prepareFor(settings, viewEmail(email)),
  };
}
