// Translation tables: the default SIA <-> Contact ID event table with English wording, and the lookup
// both kinds of table share: an exact value (or code) first, then the longest phrase found in the text.
import type { EventFormat, EventTable, EventTableEntry, Qualifier, TranslationTable, ValueTable } from "./types";

/** One entry of an events table. */
export function event(
  sia: string,
  siaRestore: string | undefined,
  cid: string,
  description: string,
  match: string[],
  qualifier?: Qualifier,
): EventTableEntry {
  const entry: EventTableEntry = { sia, cid, match, description };
  if (siaRestore !== undefined) entry.siaRestore = siaRestore;
  if (qualifier !== undefined) entry.qualifier = qualifier;
  return entry;
}

/**
 * Common events. Order matters only for exact codes shared by two entries (the first wins, e.g. "HA" is
 * duress) and for phrases of equal length.
 */
function defaultEventEntries(): EventTableEntry[] {
  return [
    event("BA", "BR", "130", "Burglary alarm", [
      "burglary",
      "burglar",
      "burglar alarm",
      "intrusion",
      "intruder",
      "intrusion detected",
      "break-in",
      "break in",
      "motion",
      "motion detected",
      "motion detection",
      "motion alarm",
      "pir",
      "line crossing",
      "person detected",
      "human detected",
    ]),
    event("FA", "FR", "110", "Fire alarm", ["fire", "fire alarm", "smoke", "smoke detected", "smoke alarm"]),
    event("PA", "PR", "120", "Panic alarm", ["panic", "panic alarm", "panic button", "sos"]),
    event("HA", "HR", "121", "Duress", ["duress", "duress alarm"]),
    event("HA", "HR", "122", "Hold-up alarm", ["hold-up", "holdup", "hold up", "robbery"]),
    event("MA", "MR", "100", "Medical alarm", ["medical", "medical alarm", "medical emergency", "fall detected"]),
    event("TA", "TR", "137", "Tamper", ["tamper", "tampered", "tampering", "tamper alarm", "cover open"]),
    event("AT", "AR", "301", "AC power loss", [
      "ac loss",
      "ac fail",
      "ac failure",
      "mains fail",
      "mains failure",
      "power fail",
      "power failure",
      "power loss",
      "power outage",
    ]),
    event("YT", "YR", "302", "Low system battery", ["low battery", "battery low", "battery fault", "battery failure"]),
    event("KH", "KR", "158", "High temperature", [
      "high temperature",
      "high temp",
      "temperature high",
      "temperature too high",
      "over temperature",
      "overtemperature",
      "too warm",
      "temperature",
      "temperature alarm",
    ]),
    event("ZH", "ZR", "159", "Low temperature", [
      "low temperature",
      "low temp",
      "temperature low",
      "temperature too low",
      "under temperature",
      "too cold",
      "freeze",
      "freezing",
      "frost",
    ]),
    event("WA", "WR", "154", "Water leakage", [
      "water leak",
      "water leakage",
      "leak",
      "leakage",
      "flood",
      "flooding",
      "water detected",
      "water alarm",
    ]),
    event("GA", "GR", "151", "Gas detected", ["gas", "gas leak", "gas detected", "gas alarm"]),
    event("GA", "GR", "162", "Carbon monoxide", ["carbon monoxide", "co alarm", "co detected"]),
    event("OP", "CL", "401", "Opening (disarmed)", ["opening", "disarm", "disarmed", "unset"]),
    event("CL", undefined, "401", "Closing (armed)", ["closing", "armed", "arming"], "restore"),
    event("BT", "BJ", "380", "Sensor trouble", ["trouble", "fault", "sensor trouble", "sensor fault"]),
    event("FT", "FJ", "373", "Fire trouble", ["fire trouble", "fire fault", "smoke detector fault"]),
    event("YC", "YK", "350", "Communication trouble", [
      "communication trouble",
      "communication failure",
      "communication fail",
      "comm fail",
      "connection lost",
    ]),
    event("RP", undefined, "602", "Periodic test", ["periodic test", "automatic test", "test report"]),
    event("RX", undefined, "601", "Manual test", ["test", "manual test", "test alarm"]),
  ];
}

const DEFAULT_RESTORE_WORDS = [
  "restore",
  "restored",
  "restoral",
  "restoration",
  "normal",
  "back to normal",
  "returned to normal",
  "cleared",
  "all clear",
  "ok",
  "recovered",
  "resolved",
];

/** The tables every config has unless it defines a table of the same name. */
export function defaultTranslationTables(): Record<string, TranslationTable> {
  const events: EventTable = {
    kind: "events",
    entries: defaultEventEntries(),
    restoreWords: [...DEFAULT_RESTORE_WORDS],
  };
  return { events };
}

// ---------------------------------------------------------------------------------------------
// Matching

function isWordCode(code: number): boolean {
  if (code < 128) {
    return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95;
  }
  return WORD_CHAR.test(String.fromCharCode(code));
}
const WORD_CHAR = /[\p{L}\p{N}]/u;

const SPACE_RUN = /\s+/g;

/** Lower case, whitespace runs as one space, trimmed: the form phrases are compared in. */
export function matchForm(text: string): string {
  return text.toLowerCase().replace(SPACE_RUN, " ").trim();
}

interface Phrase<T> {
  text: string;
  checkStart: boolean;
  checkEnd: boolean;
  payload: T;
}

/** Finds the longest of many phrases in a text, as whole words (ties: the first listed). */
export class PhraseMatcher<T> {
  private readonly phrases: Phrase<T>[] = [];

  constructor(list: [string, T][]) {
    for (const [raw, payload] of list) {
      const text = matchForm(raw);
      if (text === "") continue;
      this.phrases.push({
        text,
        checkStart: isWordCode(text.charCodeAt(0)),
        checkEnd: isWordCode(text.charCodeAt(text.length - 1)),
        payload,
      });
    }
    // stable sort: equal lengths keep table order
    this.phrases.sort((a, b) => b.text.length - a.text.length);
  }

  get size(): number {
    return this.phrases.length;
  }

  /** `form` must come from matchForm(). */
  find(form: string): { phrase: string; payload: T } | null {
    for (const p of this.phrases) {
      if (p.text.length > form.length) continue;
      let from = 0;
      for (;;) {
        const at = form.indexOf(p.text, from);
        if (at < 0) break;
        const end = at + p.text.length;
        const startOk = !p.checkStart || at === 0 || !isWordCode(form.charCodeAt(at - 1));
        const endOk = !p.checkEnd || end === form.length || !isWordCode(form.charCodeAt(end));
        if (startOk && endOk) return { phrase: p.text, payload: p.payload };
        from = at + 1;
      }
    }
    return null;
  }
}

export interface EventMatch {
  entry: EventTableEntry;
  restore: boolean;
  /** What matched: the code or phrase. */
  matched: string;
}

export interface TranslatedEvent {
  sia: string;
  cid: string;
  qualifier: Qualifier;
  description: string;
}

export function translatedEvent(match: EventMatch): TranslatedEvent {
  const { entry } = match;
  const qualifier: Qualifier = entry.qualifier ?? (match.restore ? "restore" : "new");
  return {
    sia: qualifier === "restore" ? (entry.siaRestore ?? entry.sia) : entry.sia,
    cid: entry.cid,
    qualifier,
    description: entry.description,
  };
}

export function eventCodeFor(event: TranslatedEvent, format: EventFormat): string {
  return format === "CID" ? event.cid : event.sia;
}

// Contact ID written with its qualifier: E130 / R130 or 1130 / 3130 / 6130
const CID_WITH_QUALIFIER = /^([ER136])(\d{3})$/;

export class CompiledEventTable {
  readonly kind = "events";
  private readonly exact = new Map<string, EventMatch>();
  private readonly phrases: PhraseMatcher<EventTableEntry>;
  private readonly restoreWords: PhraseMatcher<true>;

  constructor(table: EventTable) {
    const add = (key: string, entry: EventTableEntry, restore: boolean): void => {
      const k = matchForm(key);
      if (k !== "" && !this.exact.has(k)) this.exact.set(k, { entry, restore, matched: key });
    };
    const phraseList: [string, EventTableEntry][] = [];
    for (const entry of table.entries) {
      add(entry.sia, entry, false);
      if (entry.siaRestore !== undefined && entry.siaRestore !== entry.sia) add(entry.siaRestore, entry, true);
      add(entry.cid, entry, false);
      for (const m of entry.match) {
        add(m, entry, false);
        phraseList.push([m, entry]);
      }
    }
    this.phrases = new PhraseMatcher(phraseList);
    this.restoreWords = new PhraseMatcher(table.restoreWords.map((w): [string, true] => [w, true]));
  }

  lookup(value: string): EventMatch | null {
    const form = matchForm(value);
    const exact = this.exact.get(form);
    if (exact !== undefined) return exact;
    const withQualifier = CID_WITH_QUALIFIER.exec(form.toUpperCase());
    if (withQualifier !== null) {
      const byCid = this.exact.get(withQualifier[2]);
      if (byCid !== undefined) {
        const restore = withQualifier[1] === "R" || withQualifier[1] === "3";
        return { entry: byCid.entry, restore, matched: value };
      }
    }
    const found = this.phrases.find(form);
    if (found === null) return null;
    return { entry: found.payload, restore: this.restoreWords.find(form) !== null, matched: found.phrase };
  }
}

export class CompiledValueTable {
  readonly kind = "values";
  private readonly exact = new Map<string, string>();
  private readonly phrases: PhraseMatcher<string> | null;

  constructor(table: ValueTable) {
    const list: [string, string][] = [];
    for (const entry of table.entries) {
      for (const m of entry.match) {
        const k = matchForm(m);
        if (k !== "" && !this.exact.has(k)) this.exact.set(k, entry.value);
        list.push([m, entry.value]);
      }
    }
    this.phrases = table.phrases === false ? null : new PhraseMatcher(list);
  }

  lookup(value: string): string | null {
    const form = matchForm(value);
    const exact = this.exact.get(form);
    if (exact !== undefined) return exact;
    return this.phrases?.find(form)?.payload ?? null;
  }
}

export type CompiledTable = CompiledEventTable | CompiledValueTable;

// ---------------------------------------------------------------------------------------------
// Checking a table the editor stored

const SIA_CODE = /^[A-Z]{2}$/;
const CID_EVENT = /^\d{3}$/;

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

/** Problems of one table, each naming the entry; empty when the table is usable. */
export function tableProblems(name: string, table: unknown): string[] {
  const where = `table "${name}"`;
  if (typeof table !== "object" || table === null) return [`${where}: is not an object`];
  const t = table as Record<string, unknown>;
  if (!Array.isArray(t.entries)) return [`${where}: entries is not a list`];
  const problems: string[] = [];
  if (t.kind === "events") {
    if (!isStringList(t.restoreWords)) problems.push(`${where}: restoreWords is not a list of words`);
    t.entries.forEach((raw: unknown, i: number) => {
      const e = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
      const label = `${where} entry ${i + 1}${typeof e.sia === "string" ? ` (${e.sia})` : ""}`;
      if (typeof e.sia !== "string" || !SIA_CODE.test(e.sia)) {
        problems.push(`${label}: SIA code ${JSON.stringify(e.sia)} is not two capital letters`);
      }
      if (e.siaRestore !== undefined && (typeof e.siaRestore !== "string" || !SIA_CODE.test(e.siaRestore))) {
        problems.push(`${label}: SIA restore code ${JSON.stringify(e.siaRestore)} is not two capital letters`);
      }
      if (typeof e.cid !== "string" || !CID_EVENT.test(e.cid)) {
        problems.push(`${label}: Contact ID event ${JSON.stringify(e.cid)} is not three digits`);
      }
      if (e.qualifier !== undefined && e.qualifier !== "new" && e.qualifier !== "restore") {
        problems.push(`${label}: qualifier ${JSON.stringify(e.qualifier)} is not "new" or "restore"`);
      }
      if (!isStringList(e.match)) problems.push(`${label}: match is not a list of words`);
      if (typeof e.description !== "string") problems.push(`${label}: description is not text`);
    });
  } else if (t.kind === "values") {
    t.entries.forEach((raw: unknown, i: number) => {
      const e = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
      if (!isStringList(e.match)) problems.push(`${where} entry ${i + 1}: match is not a list of words`);
      if (typeof e.value !== "string") problems.push(`${where} entry ${i + 1}: value is not text`);
    });
    if (t.phrases !== undefined && typeof t.phrases !== "boolean") problems.push(`${where}: phrases is not true/false`);
  } else {
    problems.push(`${where}: kind ${JSON.stringify(t.kind)} is not "events" or "values"`);
  }
  return problems;
}

/** Call only on a table tableProblems() found no problem with. */
export function compileTable(table: TranslationTable): CompiledTable {
  return table.kind === "events" ? new CompiledEventTable(table) : new CompiledValueTable(table);
}
