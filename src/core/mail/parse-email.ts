// Turns one raw RFC 5322 email into a plain object, streaming attachments so that a camera clip of
// hundreds of megabytes never sits in memory. Pure: no Node-RED, no network.

import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, readFile, rm, rmdir } from "node:fs/promises";
import { resolve } from "node:path";
import { getDefaultHighWaterMark, type Readable, setDefaultHighWaterMark } from "node:stream";
import {
  type AddressObject,
  type AttachmentStream,
  type HeaderLines,
  type Headers,
  MailParser,
  type MessageText,
} from "mailparser";
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from "../private-files";
import { stripHtml } from "../strip-html";

/** The bytes arrived but are not an email mailparser can read (as opposed to a failed source). */
export class UnreadableEmailError extends Error {
  override readonly name = "UnreadableEmailError";
}

export interface EmailAddress {
  address: string;
  name: string;
}

export interface EmailAttachment {
  filename: string; // "" when none; sanitised (no path separators, no control chars)
  contentType: string; // lower-case, e.g. "image/jpeg"
  size: number; // decoded bytes
  /** The bytes, when size <= maxInMemoryBytes; otherwise null and `path` names a file holding them. */
  content: Buffer | null;
  path?: string; // absolute path of the spooled file (only when content is null)
  contentId?: string; // without angle brackets, as used in cid: links
  inline: boolean; // contentDisposition inline / related images
}

export interface ParsedEmail {
  messageId: string | null; // as in the header, with angle brackets stripped
  from: EmailAddress[];
  to: EmailAddress[];
  cc: EmailAddress[];
  date: string | null; // ISO 8601, null when missing/invalid
  subject: string; // "" when missing
  text: string; // plain text body, or text derived from the HTML; "" when none
  html: string | null;
  headers: Record<string, string>; // lower-case name -> unfolded value; repeated headers joined with "\n"
  attachments: EmailAttachment[];
  /** Non-fatal oddities found while parsing, for logs. */
  problems: string[];
  /** Set when the bytes were not an email that could be read: it goes on empty, and this says why. */
  unreadable?: string;
}

export interface ParseEmailOptions {
  /** Attachments larger than this are written to files under spoolDir instead of memory. Default 10 MiB. */
  maxInMemoryBytes?: number;
  /** Directory for spooled attachments of THIS email (created lazily only if needed). */
  spoolDir?: string;
}

const DEFAULT_MAX_IN_MEMORY = 10 * 1024 * 1024;
const MAX_HEADER_VALUE = 64 * 1024;
// html-to-text needs about 0.3 s per MB and blocks the event loop; larger HTML gets the simple stripper
const MAX_HTML_TO_TEXT = 2 * 1024 * 1024;
// Spooled bytes are collected into writes of this size: mailparser hands out small decoder chunks
const SPOOL_WRITE_BATCH = 256 * 1024;
const MAX_PROBLEMS = 50;
// Chunks mailparser may queue ahead of its line splitter (object-mode streams; Node's default is 16)
const PARSER_QUEUE = 2;

// Directories parseEmail created, so that discardSpool removes those and never a directory of the caller
const createdSpoolDirs = new WeakMap<ParsedEmail, string>();

class Problems {
  readonly list: string[] = [];
  private dropped = 0;

  add(line: string): void {
    // a hostile message could otherwise produce one line per header or part
    if (this.list.length < MAX_PROBLEMS) this.list.push(line);
    else this.dropped++;
  }

  done(): string[] {
    if (this.dropped > 0) this.list.push(`${this.dropped} more problems not listed`);
    return this.list;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const windows1252 = new TextDecoder("windows-1252");

/** mailsplit hands header lines over as "binary" strings: one char per byte. */
function decodeHeaderBytes(binary: string): { value: string; notUtf8: boolean } {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for 8-bit bytes, not control chars
  if (!/[^\x00-\x7f]/.test(binary)) return { value: binary, notUtf8: false };
  const bytes = Buffer.from(binary, "latin1");
  try {
    return { value: utf8Strict.decode(bytes), notUtf8: false };
  } catch {
    // cheap devices write their local code page without declaring it; this keeps "Kühlraum" readable
    return { value: windows1252.decode(bytes), notUtf8: true };
  }
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

function buildHeaders(
  lines: HeaderLines | false,
  parsed: Headers | false,
  problems: Problems,
): { headers: Record<string, string>; notUtf8: Set<string> } {
  const grouped = new Map<string, string[]>();
  const notUtf8 = new Set<string>();
  let malformed = 0;
  for (const { key, line } of lines || []) {
    if (!FIELD_NAME.test(key)) {
      // an empty key is a line without a colon, e.g. body text with no blank line before it
      if (line.trim() !== "") malformed++;
      continue;
    }
    const raw = line.slice(line.indexOf(":") + 1);
    if (raw.length > MAX_HEADER_VALUE) {
      problems.add(`header ${key} skipped: value of ${raw.length} bytes is over ${MAX_HEADER_VALUE}`);
      continue;
    }
    // unfolded the way mailparser (libmime) does it, so both sources of values look the same
    const decoded = decodeHeaderBytes(raw.replace(/(?:\r?\n|\r)[ \t]*/g, " ").trim());
    if (decoded.notUtf8) notUtf8.add(key);
    const list = grouped.get(key);
    if (list) list.push(decoded.value);
    else grouped.set(key, [decoded.value]);
  }
  if (malformed > 0) {
    problems.add(`${malformed} header lines without a "name:" skipped (missing blank line before the body?)`);
  }
  for (const key of notUtf8) problems.add(`header ${key} has 8-bit bytes that are not UTF-8, decoded as windows-1252`);

  const entries: [string, string][] = [];
  for (const [key, values] of grouped) {
    // mailparser's value has RFC 2047 words decoded where it decodes them (Subject and a few more);
    // structured headers (addresses, dates, Content-Type) keep the raw text
    const p = parsed ? parsed.get(key) : undefined;
    let value = values.join("\n");
    if (!notUtf8.has(key)) {
      if (values.length === 1 && typeof p === "string") value = p;
      else if (Array.isArray(p) && p.length === values.length && p.every((v) => typeof v === "string")) {
        value = p.join("\n");
      }
    }
    entries.push([key, value]);
  }
  // fromEntries defines own properties, so a header named __proto__ cannot reach the prototype
  return { headers: Object.fromEntries(entries), notUtf8 };
}

function addressList(value: AddressObject | AddressObject[] | undefined): EmailAddress[] {
  const out: EmailAddress[] = [];
  const visit = (entries: { name?: string; address?: string; group?: unknown[] }[]): void => {
    for (const e of entries) {
      if (Array.isArray(e.group)) visit(e.group as { name?: string; address?: string }[]);
      else if (e.address || e.name) out.push({ address: e.address ?? "", name: e.name ?? "" });
    }
  };
  for (const obj of value === undefined ? [] : Array.isArray(value) ? value : [value]) {
    if (obj && Array.isArray(obj.value)) visit(obj.value);
  }
  return out;
}

function sanitiseFilename(name: string | undefined): string {
  if (!name) return "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  const base = (name.split(/[/\\]/).pop() ?? "").replace(/[\x00-\x1f\x7f-\x9f]/g, "").trim();
  if (base === "." || base === "..") return "";
  return base.length > 255 ? base.slice(base.length - 255) : base;
}

function spoolName(index: number, filename: string): string {
  const ext = /\.([A-Za-z0-9]{1,10})$/.exec(filename)?.[1] ?? "bin";
  return `${String(index).padStart(3, "0")}-${randomBytes(6).toString("hex")}.${ext.toLowerCase()}`;
}

async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
  const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await fh.write(buf, offset);
    if (bytesWritten <= 0) throw new Error("write made no progress");
    offset += bytesWritten;
  }
}

interface SpoolState {
  dir?: string; // absolute
  ready: boolean; // mkdir done
  created?: string; // set when parseEmail made the directory
  files: string[];
}

async function openSpoolFile(spool: SpoolState, name: string): Promise<{ fh: FileHandle; path: string }> {
  const dir = spool.dir as string;
  const path = resolve(dir, name);
  for (let attempt = 0; ; attempt++) {
    if (!spool.ready) {
      const made = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      if (made !== undefined) spool.created = dir;
      spool.ready = true;
    }
    try {
      // exclusive and private: attachments may be pictures of someone's home
      const fh = await open(path, "wx", PRIVATE_FILE_MODE);
      spool.files.push(path);
      return { fh, path };
    } catch (err) {
      // the directory may have been removed under us (a shared spool dir being tidied up)
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt > 0) throw err;
      spool.ready = false;
    }
  }
}

/** Reads one attachment stream to its end, in memory or into a spool file, and always releases it. */
async function collectAttachment(
  att: AttachmentStream,
  index: number,
  limit: number,
  spool: SpoolState,
  problems: Problems,
): Promise<EmailAttachment> {
  const filename = sanitiseFilename(att.filename);
  const contentType = (att.contentType || "application/octet-stream").toLowerCase();
  const label = `attachment ${filename ? quote(filename) : `#${index + 1}`} (${contentType})`;
  const result: EmailAttachment = {
    filename,
    contentType,
    size: 0,
    content: null,
    inline: att.contentDisposition === "inline" || att.related === true,
  };
  if (att.cid) result.contentId = att.cid;

  let memory: Buffer[] = [];
  let memoryBytes = 0;
  let spillFailed = false;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let file: { fh: FileHandle; path: string } | undefined;
  let dropped = false; // bytes past the limit are counted but not kept
  let failure: string | undefined;

  const dropFile = async (): Promise<void> => {
    if (!file) return;
    const { fh, path } = file;
    file = undefined;
    await fh.close().catch(() => {});
    await rm(path, { force: true }).catch(() => {});
    spool.files = spool.files.filter((p) => p !== path);
  };

  try {
    for await (const raw of att.content) {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as string);
      result.size += chunk.length;
      if (dropped) continue;
      if (file) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= SPOOL_WRITE_BATCH) {
          const batch = pending;
          pending = [];
          pendingBytes = 0;
          try {
            await writeAll(file.fh, batch);
          } catch (err) {
            failure = `could not be written to ${spool.dir}: ${errorText(err)}`;
            dropped = true;
            await dropFile();
          }
        }
        continue;
      }
      memory.push(chunk);
      memoryBytes += chunk.length;
      if (result.size <= limit) {
        // Past a few hundred KiB the bytes wait on disk, not in many small chunks on the heap: read
        // back as one Buffer at the end if the attachment stays under the limit.
        if (memoryBytes >= SPOOL_WRITE_BATCH && spool.dir !== undefined && !spillFailed) {
          try {
            file = await openSpoolFile(spool, spoolName(index, filename));
            await writeAll(file.fh, memory);
            memory = [];
            memoryBytes = 0;
          } catch {
            spillFailed = true; // keep it in memory, as below the limit it may be
            await dropFile();
          }
        }
        continue;
      }
      if (spool.dir === undefined) {
        dropped = true;
        memory = [];
        continue;
      }
      try {
        file = await openSpoolFile(spool, spoolName(index, filename));
        const buffered = memory;
        memory = [];
        await writeAll(file.fh, buffered);
      } catch (err) {
        // a full disk must not lose the alarm: the message goes on without this attachment's bytes
        failure = `could not be spooled to ${spool.dir}: ${errorText(err)}`;
        dropped = true;
        memory = [];
        await dropFile();
      }
    }
    if (file && pending.length > 0) await writeAll(file.fh, pending);
    if (file && result.size <= limit) {
      const { fh, path } = file;
      await fh.close();
      file = undefined;
      memory = [await readFile(path)];
      await rm(path, { force: true });
      spool.files = spool.files.filter((p) => p !== path);
    } else if (file) {
      await file.fh.close();
      result.path = file.path;
      file = undefined;
      problems.add(`${label} of ${result.size} bytes spooled to disk: ${result.path}`);
    }
  } catch (err) {
    failure = `could not be read completely: ${errorText(err)}`;
    dropped = true;
    memory = [];
    await dropFile();
  } finally {
    if (typeof att.release === "function") att.release();
  }

  if (failure !== undefined) {
    problems.add(`${label} ${failure}; ${result.size} bytes not kept`);
  } else if (dropped) {
    problems.add(`${label} of ${result.size} bytes is too large (limit ${limit}) and no spoolDir was given: not kept`);
  } else if (result.path === undefined) {
    result.content = memory.length === 1 ? memory[0] : Buffer.concat(memory, result.size);
  }
  return result;
}

/** mailparser's part tree is internal; read it defensively, only to say which part was mis-decoded. */
interface PartNode {
  contentType?: unknown;
  charset?: unknown;
  textContent?: unknown;
  children?: unknown;
}

function reportUndecodable(tree: unknown, problems: Problems): void {
  let visited = 0;
  const visit = (node: unknown): void => {
    if (typeof node !== "object" || node === null || ++visited > 2000) return;
    const n = node as PartNode;
    if (typeof n.textContent === "string" && n.textContent.includes("\uFFFD")) {
      const charset = typeof n.charset === "string" ? n.charset : "none declared (UTF-8 assumed)";
      problems.add(
        `${String(n.contentType)} part has bytes that are not valid in charset ${charset}; replaced with U+FFFD`,
      );
    }
    if (Array.isArray(n.children)) for (const child of n.children) visit(child);
  };
  visit(tree);
}

/** Lets mailparser's own html-to-text conversion (with its nesting limits) run on HTML it left unconverted. */
async function htmlToText(html: string): Promise<{ text: string; error?: Error }> {
  const b64 = Buffer.from(html, "utf8").toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  const parser = new MailParser({ checksumAlgo: false, skipTextToHtml: true, maxHtmlLengthToParse: MAX_HTML_TO_TEXT });
  return await new Promise((resolveText, rejectText) => {
    let text = "";
    let error: Error | undefined;
    parser.on("data", (data) => {
      if (data.type === "text") {
        text = data.text ?? "";
        error = data.textConversionError;
      } else if (typeof data.release === "function") {
        data.content.resume();
        data.release();
      }
    });
    parser.on("error", rejectText);
    parser.on("end", () => resolveText({ text, error }));
    parser.end(
      `Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${lines.join("\r\n")}\r\n`,
    );
  });
}

async function textFromHtml(html: string, problems: Problems, knownError?: Error): Promise<string> {
  let reason = knownError?.message;
  if (reason === undefined && html.length > MAX_HTML_TO_TEXT) reason = `HTML of ${html.length} chars is too long`;
  if (reason === undefined) {
    try {
      const converted = await htmlToText(html);
      if (converted.error === undefined && converted.text.trim() !== "") return converted.text;
      reason = converted.error?.message;
    } catch (err) {
      reason = errorText(err);
    }
  }
  const stripped = stripHtml(html);
  if (reason !== undefined)
    problems.add(`HTML not converted to text by html-to-text (${reason}); tags stripped instead`);
  return stripped;
}

/**
 * A MailParser whose internal queues hold PARSER_QUEUE chunks, not 16: a fast source (a nearby IMAP
 * server, Graph over HTTP) otherwise keeps about 1 MB of 64 KiB chunks waiting in front of the line
 * splitter. Waiting that long, they outlive two young-generation GCs and are promoted, and their
 * bytes stay allocated until the next full GC: tens of MB of RSS while a large email streams through.
 */
function newParser(): MailParser {
  const before = getDefaultHighWaterMark(true);
  setDefaultHighWaterMark(true, PARSER_QUEUE); // MailParser creates its streams in its constructor
  try {
    // md5 of every attachment and text-to-HTML linkification are work nobody here reads
    return new MailParser({ checksumAlgo: false, skipTextToHtml: true, maxHtmlLengthToParse: MAX_HTML_TO_TEXT });
  } finally {
    setDefaultHighWaterMark(true, before);
  }
}

function validLimit(value: number | undefined): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.floor(value) : DEFAULT_MAX_IN_MEMORY;
}

export async function parseEmail(source: Buffer | Readable, options: ParseEmailOptions = {}): Promise<ParsedEmail> {
  const limit = validLimit(options.maxInMemoryBytes);
  const spool: SpoolState = { files: [], ready: false, dir: options.spoolDir ? resolve(options.spoolDir) : undefined };
  const problems = new Problems();
  const parser = newParser();
  const tasks: Promise<EmailAttachment>[] = [];
  const streams: Readable[] = [];
  let text: Partial<MessageText> = {};

  const parsed = new Promise<void>((resolveParse, rejectParse) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      // unblock attachment readers that would otherwise wait forever for more bytes
      for (const s of streams) s.destroy();
      if (!Buffer.isBuffer(source)) {
        source.unpipe(parser);
        // the caller's stream (e.g. an IMAP fetch) is drained, not left stalled
        if (!source.destroyed) source.resume();
      }
      rejectParse(err);
    };
    parser.on("data", (data) => {
      if (data.type === "attachment") {
        streams.push(data.content);
        tasks.push(collectAttachment(data, tasks.length, limit, spool, problems));
      } else if (data.type === "text") {
        text = data;
      }
    });
    parser.on("error", (err: Error) => {
      fail(new UnreadableEmailError(`unreadable email: ${errorText(err)}`, { cause: err }));
    });
    parser.on("end", () => {
      if (settled) return;
      settled = true;
      resolveParse();
    });
    if (Buffer.isBuffer(source)) {
      parser.end(source);
    } else {
      source.on("error", (err: Error) => {
        // not the message's fault: the caller may retry the fetch
        fail(new Error(`email source failed: ${errorText(err)}`, { cause: err }));
      });
      source.on("close", () => {
        // a caller's timeout destroys the source without an error; that must not leave us waiting forever
        if (!source.readableEnded) fail(new Error("email source failed: closed before the end of the message"));
      });
      source.pipe(parser);
    }
  });

  try {
    await parsed;
  } catch (err) {
    await Promise.allSettled(tasks);
    await removeSpool(spool.files, spool.created);
    throw err;
  }
  const attachments = await Promise.all(tasks);

  const { headers, notUtf8 } = buildHeaders(parser.headerLines, parser.headers, problems);
  let subject = parser.subject ?? "";
  if (notUtf8.has("subject")) subject = headers.subject ?? subject;

  let date: string | null = null;
  const rawDate = headers.date?.split("\n")[0];
  if (rawDate !== undefined) {
    // mailparser substitutes "now" for a bad date, which would hide the problem
    const d = new Date(rawDate);
    if (Number.isNaN(d.getTime())) problems.add(`Date header ${quote(rawDate)} is not a valid date`);
    else date = d.toISOString();
  }

  const messageId = (parser.messageId ?? "").replace(/^<|>$/g, "").trim() || null;
  const html = text.html ?? null;
  let body = text.text ?? "";
  reportUndecodable((parser as unknown as { tree?: unknown }).tree, problems);
  if (html !== null && body.trim() === "") {
    // mailparser converts only a top-level HTML part; cameras often send HTML inside multipart/mixed or related
    body = await textFromHtml(html, problems, text.textConversionError);
  } else if (text.textConversionError) {
    problems.add(`an HTML part was not converted to text: ${text.textConversionError.message}`);
  }

  const email: ParsedEmail = {
    messageId,
    from: addressList(parser.from),
    to: addressList(parser.to),
    cc: addressList(parser.cc),
    date,
    subject,
    text: body,
    html,
    headers,
    attachments,
    problems: problems.done(),
  };
  if (spool.created !== undefined) createdSpoolDirs.set(email, spool.created);
  return email;
}

async function removeSpool(files: string[], createdDir: string | undefined): Promise<void> {
  await Promise.all(files.map((p) => rm(p, { force: true }).catch(() => {})));
  // rmdir removes only an empty directory, and only one parseEmail made is tried
  if (createdDir !== undefined) await rmdir(createdDir).catch(() => {});
}

/** Deletes spooled files of a parsed email (after it was settled). Never throws. */
export async function discardSpool(email: ParsedEmail): Promise<void> {
  try {
    const files = email.attachments.flatMap((a) => (a.path ? [a.path] : []));
    await removeSpool(files, createdSpoolDirs.get(email));
    createdSpoolDirs.delete(email);
  } catch {
    // by contract: cleanup problems are not the caller's to handle
  }
}

/** A Message-ID header value without its angle brackets; null when there is none. */
export function bareMessageId(id: string | null | undefined): string | null {
  if (!id) return null;
  return id.trim().replace(/^<|>$/g, "") || null;
}

/**
 * An email whose MIME could not be read: empty but for what the server told about it (`known`),
 * so the review shows which email it was, and marked unreadable so the data-map says so.
 */
export function unreadableEmail(problem: string, known: Partial<ParsedEmail> = {}): ParsedEmail {
  return {
    messageId: null,
    from: [],
    to: [],
    cc: [],
    date: null,
    subject: "",
    text: "",
    html: null,
    headers: {},
    attachments: [],
    ...known,
    problems: [problem],
    unreadable: problem,
  };
}
