// Mapping one email with a compiled config: sender checks, preprocessing, the rules in order (a JSONata rule
// awaits), then validation into an AlarmEvent. Never throws: anything unexpected becomes a rejection.
// The synchronous path allocates little: per map a Run, a line split and a trace entry per rule.
import { type EmailView, headerValue, viewEmail } from "./email-view";
import { type CompiledExtractor, LineCache, Miss } from "./extract";
import { evaluateJsonata, type JsonataExpression } from "./jsonata-rule";
import { type PreparedEmail, prepareEmail } from "./preprocess";
import { type AllowList, fromHeaderProblem, type SpoofCheck, senderProblem } from "./sender-check";
import type { SourceContext, SourceReader } from "./sources";
import type { TranslatedEvent } from "./tables";
import { type CompiledTransform, TransformScratch } from "./transforms";
import {
  ALARM_FIELDS,
  type AlarmAttachmentRef,
  type AlarmEvent,
  type EventFormat,
  type FieldTrace,
  type MapInput,
  type MapRejection,
  type MapResult,
  type PreprocessOptions,
  type Qualifier,
  type ValidationRanges,
} from "./types";
import {
  checkAccount,
  checkDate,
  checkEventCode,
  checkEventFormat,
  checkNumber,
  checkQualifier,
  Invalid,
  rangesFor,
} from "./validate";

export const KNOWN_FIELDS: ReadonlySet<string> = new Set<string>(ALARM_FIELDS);
const TRACE_EXCERPT = 200;
const MAX_TEXT = 1_024;

export interface MapLimits {
  maxSourceChars: number;
  maxLineChars: number;
  jsonataTimeoutMs: number;
}

/** The limits of a config that sets none (DataMapLimits' documented defaults). */
export const DEFAULT_LIMITS: Readonly<MapLimits> = {
  maxSourceChars: 16_384,
  maxLineChars: 2_000,
  jsonataTimeoutMs: 200,
};

/** One rule, ready to run. */
export interface CompiledRule {
  number: number;
  label: string;
  field: string;
  /** Index of the field in a run's value arrays. */
  slot: number;
  /** Any rule of this field is required; checked at the field's last rule. */
  required: boolean;
  lastOfField: boolean;
  read: SourceReader;
  extract: CompiledExtractor | null;
  jsonata: JsonataExpression | null;
  transforms: CompiledTransform[];
}

/** A compiled config: everything map() needs, checked. */
export interface MapSettings {
  /** In evaluation order: eventFormat rules first (translations depend on the format), then as listed. */
  rules: CompiledRule[];
  fields: string[];
  /** Last rule of each field, by slot, to name in validation reasons. */
  lastRuleOfSlot: CompiledRule[];
  preprocess: PreprocessOptions;
  eventFormat: EventFormat;
  ranges: ValidationRanges | undefined;
  allowList: AllowList | null;
  spoof: SpoofCheck | null;
  limits: MapLimits;
  async: boolean;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The state of one map() call. */
class Run {
  readonly values: (string | null)[];
  readonly setBy: (CompiledRule | undefined)[];
  readonly missNotes: (string | undefined)[];
  readonly trace: FieldTrace[] = [];
  readonly scratch = new TransformScratch();
  format: EventFormat;
  event: TranslatedEvent | null = null;
  failure: { rule: string; reason: string; field: string } | null = null;

  constructor(
    readonly settings: MapSettings,
    readonly view: EmailView,
    readonly ctx: SourceContext,
    readonly input: MapInput,
  ) {
    const n = settings.fields.length;
    this.values = new Array<string | null>(n).fill(null);
    this.setBy = new Array<CompiledRule | undefined>(n);
    this.missNotes = new Array<string | undefined>(n);
    this.format = settings.eventFormat;
  }
}

function excerpt(text: string | null): string {
  if (text === null) return "";
  return text.length > TRACE_EXCERPT ? `${text.slice(0, TRACE_EXCERPT)}…` : text;
}

function sourceOf(rule: CompiledRule, run: Run): string | Miss {
  const src = rule.read(run.ctx);
  if (src instanceof Miss) return src;
  const max = run.settings.limits.maxSourceChars;
  return src.length > max ? src.slice(0, max) : src;
}

function skipped(rule: CompiledRule, run: Run): boolean {
  if (run.values[rule.slot] === null) return false;
  const by = run.setBy[rule.slot];
  run.trace.push({
    rule: rule.number,
    field: rule.field,
    source: "",
    extracted: null,
    value: null,
    note: `skipped: ${rule.field} already set by ${by ? by.label : "an earlier rule"}`,
  });
  return true;
}

function finishRule(rule: CompiledRule, run: Run, source: string | null, raw: string | Miss, error: string | null) {
  const scratch = run.scratch;
  scratch.reset(run.format);
  let note = raw instanceof Miss ? raw.reason : null;
  const extracted = raw instanceof Miss ? null : raw;
  let value: string | null = extracted === "" ? null : extracted;
  if (error === null) for (const t of rule.transforms) value = t(value, scratch);
  if (value === "") value = null;
  if (scratch.note !== null) note = note === null ? scratch.note : `${note}; ${scratch.note}`;

  const trace: FieldTrace = { rule: rule.number, field: rule.field, source: excerpt(source), extracted, value };
  if (note !== null) trace.note = note;
  let failure = error ?? scratch.fail;
  if (failure === null && value !== null && rule.field === "eventFormat") {
    const format = checkEventFormat(value);
    if (format instanceof Invalid) failure = format.reason;
    else run.format = format;
  }
  if (failure === null && value === null && rule.required && rule.lastOfField) {
    failure = `${rule.field} is required but empty: ${note ?? "nothing was extracted"}`;
  }
  if (failure !== null) {
    trace.error = failure;
    run.failure ??= { rule: rule.label, reason: failure, field: rule.field };
  }
  if (value !== null) {
    run.values[rule.slot] = value;
    run.setBy[rule.slot] = rule;
    if (rule.field === "eventCode") run.event = scratch.event;
  } else if (note !== null) {
    run.missNotes[rule.slot] = note;
  }
  run.trace.push(trace);
}

function runSyncRule(rule: CompiledRule, run: Run): void {
  if (skipped(rule, run)) return;
  const src = sourceOf(rule, run);
  if (src instanceof Miss) finishRule(rule, run, null, src, null);
  else finishRule(rule, run, src, (rule.extract as CompiledExtractor)(src, run.ctx.lines), null);
}

function attachmentsForJsonata(view: EmailView): Record<string, unknown>[] {
  return view.attachments.map((a) => ({
    filename: a.filename,
    contentType: a.contentType,
    size: a.size,
    inline: a.inline === true,
    contentId: a.contentId,
  }));
}

function fieldValues(run: Run): Record<string, string> {
  const out: Record<string, string> = {};
  run.settings.fields.forEach((f, i) => {
    const v = run.values[i];
    if (v !== null) out[f] = v;
  });
  return out;
}

async function runJsonataRule(rule: CompiledRule, run: Run, email: Record<string, unknown>): Promise<void> {
  if (skipped(rule, run)) return;
  const src = sourceOf(rule, run);
  const source = src instanceof Miss ? null : src;
  const input = {
    source,
    subject: run.ctx.subject,
    body: run.ctx.body,
    email,
    msg: run.input.msg ?? {},
    fields: fieldValues(run),
  };
  const { value, error } = await evaluateJsonata(rule.jsonata as JsonataExpression, input);
  finishRule(rule, run, source, value, error);
}

function reject(rule: string, reason: string, trace: FieldTrace[], field?: string): MapRejection {
  return field === undefined ? { ok: false, rule, reason, trace } : { ok: false, rule, reason, field, trace };
}

function fieldValue(run: Run, field: string): string | null {
  const slot = run.settings.fields.indexOf(field);
  return slot < 0 ? null : run.values[slot];
}

/** The rule to name when a field's value is wrong or missing. */
function ruleNameOf(run: Run, field: string): string {
  const slot = run.settings.fields.indexOf(field);
  if (slot < 0) return `${field} (no rule)`;
  return (run.setBy[slot] ?? run.settings.lastRuleOfSlot[slot]).label;
}

function invalidField(run: Run, field: string, reason: string): MapRejection {
  return reject(ruleNameOf(run, field), reason, run.trace, field);
}

function emptyField(run: Run, field: string): MapRejection {
  const slot = run.settings.fields.indexOf(field);
  const why = slot < 0 ? "no rule sets it" : (run.missNotes[slot] ?? "nothing was extracted");
  return invalidField(run, field, `${field} is required but empty: ${why}`);
}

const NUMBER_FIELDS = ["zone", "area", "user"] as const;

/** Turns the rules' values into an AlarmEvent, or the first value that is missing or invalid. */
function assemble(run: Run): MapResult {
  const { settings, trace } = run;
  if (run.failure !== null) return reject(run.failure.rule, run.failure.reason, trace, run.failure.field);
  const format = run.format;
  const accountText = fieldValue(run, "account");
  if (accountText === null) return emptyField(run, "account");
  const account = checkAccount(accountText);
  if (account instanceof Invalid) return invalidField(run, "account", account.reason);

  const codeText = fieldValue(run, "eventCode");
  if (codeText === null) return emptyField(run, "eventCode");
  const eventCode = checkEventCode(codeText, format);
  if (eventCode instanceof Invalid) return invalidField(run, "eventCode", eventCode.reason);
  const event = run.event;

  let qualifier: Qualifier = event?.qualifier ?? "new";
  const qualifierText = fieldValue(run, "qualifier");
  if (qualifierText !== null) {
    const q = checkQualifier(qualifierText);
    if (q instanceof Invalid) return invalidField(run, "qualifier", q.reason);
    qualifier = q;
  }

  const ranges = rangesFor(format, settings.ranges);
  const numbers: Record<"zone" | "area" | "user", number | null> = { zone: null, area: null, user: null };
  for (const name of NUMBER_FIELDS) {
    const text = fieldValue(run, name);
    if (text === null) continue;
    const n = checkNumber(name, text, ranges[name]);
    if (n instanceof Invalid) return invalidField(run, name, n.reason);
    numbers[name] = n;
  }

  let occurredAt: string;
  const occurredText = fieldValue(run, "occurredAt");
  if (occurredText !== null) {
    const d = checkDate("occurredAt", occurredText);
    if (d instanceof Invalid) return invalidField(run, "occurredAt", d.reason);
    occurredAt = d;
  } else {
    occurredAt = fallbackTime(run.view.date, run.input.receivedAt);
  }

  let text = fieldValue(run, "text") ?? (run.ctx.subject !== "" ? run.ctx.subject : (event?.description ?? ""));
  if (text.length > MAX_TEXT) text = `${text.slice(0, MAX_TEXT)}…`;

  const extra: Record<string, string> = {};
  for (let i = 0; i < settings.fields.length; i++) {
    const v = run.values[i];
    if (v !== null && !KNOWN_FIELDS.has(settings.fields[i])) extra[settings.fields[i]] = v;
  }

  const alarm: AlarmEvent = {
    account,
    eventCode,
    eventFormat: format,
    qualifier,
    siaCode: event !== null ? event.sia : format === "SIA" ? eventCode : null,
    cidEvent: event !== null ? event.cid : format === "CID" ? eventCode : null,
    zone: numbers.zone,
    area: numbers.area,
    user: numbers.user,
    text,
    occurredAt,
    attachments: attachmentRefs(run.view),
    source: {
      messageId: run.view.messageId,
      from: run.view.from[0]?.address ?? "",
      subject: run.view.subject,
      receivedAt: typeof run.input.receivedAt === "string" ? run.input.receivedAt : null,
    },
    extra,
  };
  return { ok: true, alarm, trace };
}

// what toISOString() writes, as parseEmail does for the Date header: used as it is
const CANONICAL_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** occurredAt without a rule: the email's Date, else when it was received, else now. */
function fallbackTime(date: string | null, receivedAt: unknown): string {
  for (const candidate of [date, receivedAt]) {
    if (typeof candidate !== "string") continue;
    if (CANONICAL_ISO.test(candidate) && !Number.isNaN(Date.parse(candidate))) return candidate;
    const d = checkDate("date", candidate);
    if (!(d instanceof Invalid)) return d;
  }
  return new Date().toISOString();
}

function attachmentRefs(view: EmailView): AlarmAttachmentRef[] {
  if (view.attachments.length === 0) return [];
  return view.attachments.map((a, index) => {
    const ref: AlarmAttachmentRef = {
      index,
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
      inline: a.inline === true,
    };
    if (a.contentId !== undefined) ref.contentId = a.contentId;
    if (a.path !== undefined) ref.path = a.path;
    return ref;
  });
}

export function prepareFor(settings: Pick<MapSettings, "preprocess" | "limits">, view: EmailView): PreparedEmail {
  const contentType = view.html !== null ? (headerValue(view, "content-type") ?? "").trim().toLowerCase() : "";
  const replyHeaders = headerValue(view, "in-reply-to") !== null || headerValue(view, "references") !== null;
  return prepareEmail(
    { subject: view.subject, text: view.text, html: view.html, contentType, replyHeaders },
    settings.preprocess,
    settings.limits,
  );
}

/** Sender checks and preprocessing: a rejection, or the run the rules fill in. */
function start(settings: MapSettings, input: MapInput): Run | MapRejection {
  const safeInput: MapInput = isObject(input) ? input : { email: {} };
  const view = viewEmail(safeInput.email);
  // Said as it is: every rule would only report its own field as empty, hiding why.
  if (view.unreadable !== null) return reject("email", `${view.unreadable}; nothing to map`, []);
  if (settings.allowList !== null || settings.spoof !== null) {
    const problem = fromHeaderProblem(headerValue(view, "from"));
    if (problem !== null) return reject(settings.spoof !== null ? "spoof check" : "sender allow-list", problem, []);
  }
  if (settings.allowList !== null) {
    const problem = senderProblem(settings.allowList, view.from);
    if (problem !== null) return reject("sender allow-list", problem, []);
  }
  if (settings.spoof !== null) {
    const problem = settings.spoof(headerValue(view, "authentication-results"), view.from);
    if (problem !== null) return reject("spoof check", problem, []);
  }
  const prepared = prepareFor(settings, view);
  const msg = isObject(safeInput.msg) ? safeInput.msg : undefined;
  const ctx: SourceContext = { view, subject: prepared.subject, body: prepared.body, lines: new LineCache(), msg };
  return new Run(settings, view, ctx, safeInput);
}

function internalError(err: unknown): MapRejection {
  return reject("data-map", `internal error: ${message(err)}`, []);
}

export function mapSync(settings: MapSettings, input: MapInput): MapResult {
  try {
    const run = start(settings, input);
    if (!(run instanceof Run)) return run;
    for (const rule of settings.rules) runSyncRule(rule, run);
    return assemble(run);
  } catch (err) {
    return internalError(err);
  }
}

export async function mapAsync(settings: MapSettings, input: MapInput): Promise<MapResult> {
  try {
    const run = start(settings, input);
    if (!(run instanceof Run)) return run;
    let email: Record<string, unknown> | null = null;
    for (const rule of settings.rules) {
      if (rule.jsonata === null) {
        runSyncRule(rule, run);
        continue;
      }
      email ??= {
        ...run.view,
        attachments: attachmentsForJsonata(run.view),
      };
      await runJsonataRule(rule, run, email);
    }
    return assemble(run);
  } catch (err) {
    return internalError(err);
  }
}
