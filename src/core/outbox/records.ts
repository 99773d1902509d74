// The outbox log's record format: one line per record, "<crc32 as 8 hex digits> <json>\n".
// The CRC covers the JSON bytes, so a torn tail, appended garbage or a flipped bit is detected
// record by record instead of poisoning everything after it.
import * as zlib from "node:zlib";

/**
 * "refused": the receiver answered but would not take it; the entry is kept (with the answer) and can be
 * queued again. "failed" is what logs written before "refused" existed hold: such an entry is done.
 */
export type OutboxOutcome =
  | { kind: "delivered"; at: number; detail?: string }
  | { kind: "failed"; at: number; reason: string }
  | { kind: "refused"; at: number; reason: string; answer?: string; detail?: string };

/** What the log holds. Short field names: the log is written at alarm rate. */
export type LogRecord =
  /** First record of every log file written by compaction; carries the id counter across compactions. */
  | { t: "hdr"; v: number; next: number }
  /** An accepted entry; `a` (attempts so far) only in compacted logs. */
  | { t: "acc"; id: number; k: string | null; at: number; a?: number; p: unknown }
  /** One more delivery attempt for an entry. */
  | { t: "att"; id: number }
  /** The entry is done: it leaves the pending list (its key stays for the dedupe window). */
  | { t: "fin"; id: number; o: OutboxOutcome }
  /** A refused entry is pending again (someone chose to resend it); it goes after those already pending. */
  | { t: "rq"; id: number; at: number }
  /** The key of a done entry, still inside the dedupe window (compacted logs only). */
  | { t: "key"; k: string; id: number; at: number }
  | { t: "meta"; n: string; v: string };

export const LOG_VERSION = 1;

// zlib.crc32 arrived in Node 20.15; the table version keeps older 20.x working.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
const TABLE = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

export function crc32(data: Uint8Array): number {
  if (nativeCrc32) return nativeCrc32(data) >>> 0;
  let crc = 0xffffffff;
  for (const byte of data) crc = (crc >>> 8) ^ TABLE[(crc ^ byte) & 0xff]!;
  return (crc ^ 0xffffffff) >>> 0;
}

/** One log line from the record's JSON text (which never contains a raw newline). */
export function encodeJson(json: string): Buffer {
  const body = Buffer.from(json, "utf8");
  const line = Buffer.allocUnsafe(body.length + 10);
  line.write(crc32(body).toString(16).padStart(8, "0"), 0, "latin1");
  line[8] = 0x20;
  body.copy(line, 9);
  line[line.length - 1] = 0x0a;
  return line;
}

export function encodeRecord(record: LogRecord): Buffer {
  return encodeJson(JSON.stringify(record));
}

export interface ParsedLog {
  records: LogRecord[];
  /** Bytes up to the end of the last complete line: everything after it is a torn tail. */
  completeLength: number;
  problems: string[];
  /** Some complete line was unusable (not just a torn tail): the file is damaged, not merely cut short. */
  damaged: boolean;
}

/** Reads a whole log, keeping every intact record and naming each one it has to ignore. */
export function parseLog(data: Buffer): ParsedLog {
  const records: LogRecord[] = [];
  const problems: string[] = [];
  let damaged = false;
  let start = 0;
  let lineNo = 0;
  for (;;) {
    const end = data.indexOf(0x0a, start);
    if (end < 0) break;
    lineNo++;
    const result = decodeLine(data.subarray(start, end));
    if (typeof result === "string") {
      problems.push(`record ${lineNo} ${result}, ignored`);
      damaged = true;
    } else records.push(result);
    start = end + 1;
  }
  // A crash mid-write leaves a partial last line; it was never acknowledged, so dropping it loses nothing.
  if (start < data.length) problems.push(`torn last record ignored (${data.length - start} bytes)`);
  return { records, completeLength: start, problems, damaged };
}

function decodeLine(line: Buffer): LogRecord | string {
  if (line.length < 11 || line[8] !== 0x20) return "malformed";
  const crcText = line.toString("latin1", 0, 8);
  if (!/^[0-9a-f]{8}$/.test(crcText)) return "malformed";
  const body = line.subarray(9);
  if (crc32(body) !== Number.parseInt(crcText, 16)) return "CRC mismatch";
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return "not JSON";
  }
  return validRecord(value) ?? "of an unknown shape";
}

function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}

function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function validOutcome(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (o.kind === "delivered" || o.kind === "failed" || o.kind === "refused") && isTime(o.at);
}

function validRecord(value: unknown): LogRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  switch (r.t) {
    case "hdr":
      return typeof r.v === "number" && isId(r.next) ? (r as LogRecord) : undefined;
    case "acc":
      return isId(r.id) && (r.k === null || typeof r.k === "string") && isTime(r.at) && "p" in r
        ? (r as LogRecord)
        : undefined;
    case "att":
      return isId(r.id) ? (r as LogRecord) : undefined;
    case "rq":
      return isId(r.id) && isTime(r.at) ? (r as LogRecord) : undefined;
    case "fin":
      return isId(r.id) && validOutcome(r.o) ? (r as LogRecord) : undefined;
    case "key":
      return typeof r.k === "string" && isId(r.id) && isTime(r.at) ? (r as LogRecord) : undefined;
    case "meta":
      return typeof r.n === "string" && typeof r.v === "string" ? (r as LogRecord) : undefined;
    default:
      return undefined;
  }
}
