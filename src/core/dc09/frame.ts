// DC-09 frames (dc09.md "Frame", "Encryption", "Responses and timing"): pure encode/decode, no I/O.
//   <LF> <crc:4 hex> <0LLL> <"id"> <seq:4> [R<rcvr>] L<pref> #<acct> [<data>] [<x-data>]... [_<timestamp>] <CR>
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { crc16ArcHex } from "./crc16";
import { checkDc09Account, Dc09DataError } from "./event-data";
import { formatDc09Timestamp, parseDc09Timestamp } from "./timestamp";

export type Dc09Id = "SIA-DCS" | "ADM-CID" | "NULL";

export interface ExtendedBlock {
  /** One uppercase letter: X longitude, Y latitude, H time of occurrence, I alarm text, M MAC, V video URL... */
  kind: string;
  value: string;
}

export interface Dc09Message {
  id: Dc09Id;
  /** 1..9999; a retransmission of the same event keeps its seq (see nextDc09Seq). */
  seq: number;
  /** Receiver number in hex, without the R; always send it (some receivers echo "None" otherwise). */
  receiver?: string;
  /** Line prefix in hex, without the L. */
  prefix: string;
  /** 3-16 hex digits. */
  account: string;
  /** Content inside the first [ ], e.g. "#1234|Nri1/BA01"; "" or undefined for NULL. */
  data?: string;
  extended?: ExtendedBlock[];
  /** Required on encrypted frames: the encoder adds the current time when it is missing. */
  timestamp?: Date;
}

export interface Dc09EncodeOptions {
  key?: Buffer;
  /** n pad bytes, none of them `|`, `[` or `]` (tests use it to reproduce vectors). Default: random alphanumerics. */
  randomPad?: (n: number) => Buffer;
}

export interface Dc09DecodeOptions {
  key?: Buffer;
}

export type Dc09ResponseKind = "ACK" | "NAK" | "DUH" | "RSP";

export interface Dc09Response {
  kind: Dc09ResponseKind;
  /** Echo of the message's seq; 0 in a NAK. */
  seq: number;
  receiver?: string;
  prefix?: string;
  account?: string;
  /** Receiver time: a NAK carries it so the transmitter can correct its clock. */
  timestamp?: Date;
  encrypted: boolean;
  /** The frame's text without the LF and CR. */
  raw: string;
  /** Decrypted text (pad included) of an encrypted response. */
  decrypted?: string;
}

export interface DecodedDc09Frame extends Dc09Message {
  encrypted: boolean;
  /** The frame's text without the LF and CR. */
  raw: string;
  /** Decrypted text (pad included) of an encrypted frame. */
  decrypted?: string;
}

export interface Dc09ResponseFields {
  kind: Dc09ResponseKind;
  seq: number;
  receiver?: string;
  prefix?: string;
  account?: string;
  timestamp?: Date;
}

export class Dc09DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Dc09DecodeError";
  }
}

const LF = 0x0a;
const CR = 0x0d;
/** The length field has 3 hex digits, so the CRC-covered region is at most 0xFFF bytes. */
export const DC09_MAX_REGION_BYTES = 0xfff;
/** LF + CRC + length + region + CR. */
export const DC09_MAX_FRAME_BYTES = 1 + 4 + 4 + DC09_MAX_REGION_BYTES + 1;

const MESSAGE_IDS: ReadonlySet<string> = new Set<Dc09Id>(["SIA-DCS", "ADM-CID", "NULL"]);
const RESPONSE_KINDS: ReadonlySet<string> = new Set<Dc09ResponseKind>(["ACK", "NAK", "DUH", "RSP"]);
const ZERO_IV = Buffer.alloc(16);
const PAD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PAD_FORBIDDEN = new Set([0x7c, 0x5b, 0x5d]); // | [ ]

/** The seq after `seq`: 9999 wraps to 0001 (0000 is what a NAK carries). */
export function nextDc09Seq(seq: number): number {
  return seq >= 9999 || seq < 1 ? 1 : seq + 1;
}

// ---------------------------------------------------------------------------------------------- encoding

function checkSeq(seq: number, min: number): void {
  if (!Number.isInteger(seq) || seq < min || seq > 9999) {
    throw new Dc09DataError(`Sequence number ${seq} is not a whole number from ${min} to 9999`);
  }
}

function checkHexField(name: string, value: string): void {
  if (!/^[0-9A-Fa-f]{1,6}$/.test(value)) throw new Dc09DataError(`${name} "${value}" is not 1 to 6 hex digits`);
}

// Inside [ ] only printable ASCII fits: a [ or ] would end the block, and CR/LF would end the frame.
function checkBlockText(name: string, text: string): void {
  const bad = [...text].find((c) => c < " " || c > "~" || c === "[" || c === "]");
  if (bad !== undefined) {
    const code = bad.codePointAt(0)!.toString(16).toUpperCase().padStart(2, "0");
    throw new Dc09DataError(`${name} contains "${bad}" (0x${code}): only printable ASCII without [ or ] is allowed`);
  }
}

function extendedText(blocks: readonly ExtendedBlock[]): string {
  return blocks
    .map((b) => {
      if (!/^[A-Z]$/.test(b.kind)) throw new Dc09DataError(`Extended data kind "${b.kind}" is not one capital letter`);
      checkBlockText(`Extended data [${b.kind}]`, b.value);
      return `[${b.kind}${b.value}]`;
    })
    .join("");
}

function aes(key: Buffer): string {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new RangeError(`A DC-09 key has 16, 24 or 32 bytes, not ${key.length}`);
  }
  return `aes-${key.length * 8}-cbc`;
}

function defaultPad(n: number): Buffer {
  return Buffer.from(Array.from(randomBytes(n), (b) => PAD_ALPHABET.charCodeAt(b % PAD_ALPHABET.length)));
}

// dc09.md "Encryption": <pad>|<content>, pad makes it a multiple of 16 (16 when already aligned), no PKCS#7.
function sealContent(content: string, key: Buffer, randomPad: (n: number) => Buffer = defaultPad): string {
  const tail = Buffer.from(`|${content}`, "latin1");
  const padLength = 16 - (tail.length % 16);
  const pad = randomPad(padLength);
  if (pad.length !== padLength || pad.some((b) => PAD_FORBIDDEN.has(b))) {
    throw new RangeError(`randomPad must return ${padLength} bytes, none of them |, [ or ]`);
  }
  const cipher = createCipheriv(aes(key), key, ZERO_IV);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.concat([pad, tail])), cipher.final()])
    .toString("hex")
    .toUpperCase();
}

function frameOf(region: string): Buffer {
  const bytes = Buffer.from(region, "latin1");
  if (bytes.length > DC09_MAX_REGION_BYTES) {
    throw new Dc09DataError(`The message is ${bytes.length} bytes; DC-09 allows at most ${DC09_MAX_REGION_BYTES}`);
  }
  const head = `${crc16ArcHex(bytes)}0${bytes.length.toString(16).toUpperCase().padStart(3, "0")}`;
  return Buffer.concat([Buffer.of(LF), Buffer.from(head, "latin1"), bytes, Buffer.of(CR)]);
}

function addressOf(receiver: string | undefined, prefix: string | undefined, account: string | undefined): string {
  if (receiver !== undefined) checkHexField("Receiver", receiver);
  if (prefix !== undefined) checkHexField("Line prefix", prefix);
  if (account !== undefined) checkDc09Account(account);
  return `${receiver === undefined ? "" : `R${receiver}`}${prefix === undefined ? "" : `L${prefix}`}${
    account === undefined ? "" : `#${account}`
  }`;
}

function seq4(seq: number): string {
  return String(seq).padStart(4, "0");
}

/** One transmitter frame, LF ... CR. Throws Dc09DataError when a field cannot be sent. */
export function encodeDc09(msg: Dc09Message, opts: Dc09EncodeOptions = {}): Buffer {
  if (!MESSAGE_IDS.has(msg.id)) throw new Dc09DataError(`Message id "${msg.id}" is not SIA-DCS, ADM-CID or NULL`);
  checkSeq(msg.seq, 1);
  const address = addressOf(msg.receiver, msg.prefix, msg.account);
  const data = msg.data ?? "";
  if (msg.id === "NULL" && data !== "") throw new Dc09DataError("A NULL (link test) message carries no data");
  checkBlockText("Data", data);
  const timestamp = msg.timestamp ?? (opts.key ? new Date() : undefined);
  const content = `${data}]${extendedText(msg.extended ?? [])}${timestamp ? formatDc09Timestamp(timestamp) : ""}`;
  const body = opts.key ? sealContent(content, opts.key, opts.randomPad) : content;
  return frameOf(`"${opts.key ? "*" : ""}${msg.id}"${seq4(msg.seq)}${address}[${body}`);
}

/**
 * A receiver's answer (for the test receiver). ACK and RSP are encrypted when a key is given (`"*ACK"`, with
 * the timestamp encryption requires). NAK is always plain and has the fixed form `"NAK"0000R0L0A0[]_<time>`
 * (seq, R and L as given; the time defaults to now). DUH is always plain.
 */
export function encodeDc09Response(r: Dc09ResponseFields, opts: Dc09EncodeOptions = {}): Buffer {
  if (!RESPONSE_KINDS.has(r.kind)) throw new Dc09DataError(`Response kind "${r.kind}" is not ACK, NAK, DUH or RSP`);
  checkSeq(r.seq, 0);
  if (r.kind === "NAK") {
    const address = addressOf(r.receiver ?? "0", r.prefix ?? "0", undefined);
    return frameOf(`"NAK"${seq4(r.seq)}${address}A0[]${formatDc09Timestamp(r.timestamp ?? new Date())}`);
  }
  const address = addressOf(r.receiver, r.prefix, r.account);
  const encrypt = opts.key !== undefined && r.kind !== "DUH";
  const timestamp = r.timestamp ?? (encrypt ? new Date() : undefined);
  const content = `]${timestamp ? formatDc09Timestamp(timestamp) : ""}`;
  const body = encrypt ? sealContent(content, opts.key!, opts.randomPad) : content;
  return frameOf(`"${encrypt ? "*" : ""}${r.kind}"${seq4(r.seq)}${address}[${body}`);
}

// ---------------------------------------------------------------------------------------------- decoding

interface Envelope {
  encrypted: boolean;
  id: string;
  seq: number;
  receiver?: string;
  prefix?: string;
  account?: string;
  /** Everything after the [ that opens the data. */
  body: string;
  raw: string;
}

const HEADER = /^"(\*?)([A-Z][A-Z-]*)"(\d{4})(?:R([\dA-Fa-f]{1,6}))?(?:L([\dA-Fa-f]{1,6}))?(?:#([\dA-Fa-f]{3,16}))?\[/;
// A NAK ends its address with "A0" (not an account): read R and L lazily so "L0A0" is prefix 0, not 0A0.
// R and L in either order: pysiaalarm writes `"NAK"0000L0R0A0[]` (src/pysiaalarm/event.py, NAKEvent).
const NAK_HEADER =
  /^"(\*?)(NAK)"(\d{4})(?:R([\dA-Fa-f]{1,6}?))?(?:L([\dA-Fa-f]{1,6}?))?(?:#([\dA-Fa-f]{3,16})|A[\dA-Fa-f]*)?\[/;
const NAK_HEADER_L_FIRST =
  /^"(\*?)(NAK)"(\d{4})L([\dA-Fa-f]{1,6}?)R([\dA-Fa-f]{1,6}?)(?:#([\dA-Fa-f]{3,16})|A[\dA-Fa-f]*)?\[/;

function hexByte(b: number): string {
  return `0x${b.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** Wire text for an error message: JSON-quoted so control bytes show as escapes, and cut short. */
function quote(text: string, max = 24): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

// Strict on framing, length and CRC: a corrupted frame must never be taken for an ACK or an event.
function openEnvelope(frame: Buffer): Envelope {
  if (frame.length === 0) throw new Dc09DecodeError("Empty frame");
  if (frame[0] !== LF) throw new Dc09DecodeError(`Frame starts with ${hexByte(frame[0])}, not LF (0x0A)`);
  if (frame[frame.length - 1] !== CR) throw new Dc09DecodeError("Frame is truncated: it does not end with CR (0x0D)");
  if (frame.length < 11) {
    throw new Dc09DecodeError(`Frame of ${frame.length} bytes is too short for CRC, length and id`);
  }
  const crcText = frame.subarray(1, 5).toString("latin1");
  if (!/^[0-9A-Fa-f]{4}$/.test(crcText)) throw new Dc09DecodeError(`CRC field ${quote(crcText)} is not 4 hex digits`);
  const lengthText = frame.subarray(5, 9).toString("latin1");
  if (!/^0[0-9A-Fa-f]{3}$/.test(lengthText)) {
    throw new Dc09DecodeError(`Length field ${quote(lengthText)} is not 0 followed by 3 hex digits`);
  }
  const region = frame.subarray(9, frame.length - 1);
  const declared = Number.parseInt(lengthText, 16);
  if (declared !== region.length) {
    throw new Dc09DecodeError(
      `Length mismatch: the length field says ${declared} bytes, the frame has ${region.length}`,
    );
  }
  const computed = crc16ArcHex(region);
  if (computed !== crcText.toUpperCase()) {
    throw new Dc09DecodeError(`CRC mismatch: the frame says ${crcText.toUpperCase()}, computed ${computed}`);
  }
  const text = region.toString("latin1");
  const isNak = text.startsWith('"NAK"') || text.startsWith('"*NAK"');
  const lFirst = isNak ? NAK_HEADER_L_FIRST.exec(text) : null;
  const match = lFirst ?? (isNak ? NAK_HEADER : HEADER).exec(text);
  const bareRefusal = /^"(NAK|DUH)"/.exec(text);
  if (!match && bareRefusal) {
    // A refusal without sequence or address (some receivers write a bare `"NAK"`): still a refusal, seq 0.
    const raw = frame.subarray(1, frame.length - 1).toString("latin1");
    return { encrypted: false, id: bareRefusal[1]!, seq: 0, body: "]", raw };
  }
  if (!match) {
    throw new Dc09DecodeError(`Cannot read id, sequence, receiver, prefix and account in ${quote(text, 48)}`);
  }
  const [head, star, id, seq] = match;
  const [receiver, prefix] = lFirst ? [match[5], match[4]] : [match[4], match[5]];
  const account = match[6];
  return {
    encrypted: star === "*",
    id,
    seq: Number(seq),
    receiver,
    prefix,
    account,
    body: text.slice(head.length),
    raw: frame.subarray(1, frame.length - 1).toString("latin1"),
  };
}

function decrypt(body: string, key: Buffer | undefined, what: string): string {
  if (!key) throw new Dc09DecodeError(`${what} is encrypted but no key is configured`);
  if (!/^(?:[0-9A-Fa-f]{32})+$/.test(body)) {
    throw new Dc09DecodeError(`${what}: encrypted part is not hex in blocks of 32 digits (${body.length} characters)`);
  }
  const decipher = createDecipheriv(aes(key), key, ZERO_IV);
  decipher.setAutoPadding(false);
  return Buffer.concat([decipher.update(Buffer.from(body, "hex")), decipher.final()]).toString("latin1");
}

// dc09.md "Encryption": the pad (1-16 bytes) ends at the first `|`. Lenient for real receivers that pad with
// `0` or NUL and omit the `|`: then the content starts at the `#` of the account or the `]` closing the data.
function stripPad(plain: string, what: string): string {
  const bar = plain.indexOf("|");
  const beforeBar = bar < 0 ? "" : plain.slice(0, bar);
  const hasSeparator = bar >= 0 && !beforeBar.includes("]") && !/#[\dA-Fa-f]{3,16}$/.test(beforeBar);
  const start = hasSeparator ? bar + 1 : plain.search(/[#\]]/);
  // A wrong key decrypts to noise: no content right after a pad, or content that is not ASCII, is the tell.
  const content = start < 0 || start > 17 ? undefined : plain.slice(start);
  if (content === undefined || !/^[ -~]*$/.test(trimFiller(content))) {
    throw new Dc09DecodeError(`${what}: decrypted text is not a pad followed by ASCII content (wrong key?)`);
  }
  return content;
}

function isFiller(code: number): boolean {
  return code <= 0x20; // NUL, PKCS#7 bytes 01-10 (ioBroker.sia pads *ACK that way), spaces
}

// Some receivers put a space before the timestamp or leave NUL/PKCS#7 filler after it.
function trimFiller(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isFiller(text.charCodeAt(start))) start++;
  while (end > start && isFiller(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

interface Content {
  data: string;
  extended: ExtendedBlock[];
  timestampText?: string;
}

function readContent(content: string, what: string): Content {
  const close = content.indexOf("]");
  if (close < 0) throw new Dc09DecodeError(`${what}: the data block is not closed with ]`);
  const extended: ExtendedBlock[] = [];
  let rest = content.slice(close + 1);
  while (rest.startsWith("[")) {
    const end = rest.indexOf("]");
    if (end < 0) throw new Dc09DecodeError(`${what}: extended data block ${quote(rest)} is not closed`);
    if (end > 1) extended.push({ kind: rest[1], value: rest.slice(2, end) });
    rest = rest.slice(end + 1);
  }
  rest = trimFiller(rest);
  if (rest !== "" && !rest.startsWith("_")) {
    throw new Dc09DecodeError(`${what}: unexpected ${quote(rest)} after the data`);
  }
  return { data: content.slice(0, close), extended, timestampText: rest === "" ? undefined : rest };
}

/** Any transmitter frame (SIA-DCS, ADM-CID, NULL, plain or encrypted), for receivers and tests. */
export function decodeDc09Frame(frame: Buffer, opts: Dc09DecodeOptions = {}): DecodedDc09Frame {
  const env = openEnvelope(frame);
  if (!MESSAGE_IDS.has(env.id)) {
    throw new Dc09DecodeError(`"${env.id}" is not a transmitter message (SIA-DCS, ADM-CID or NULL)`);
  }
  if (env.prefix === undefined) throw new Dc09DecodeError(`${env.id} frame has no L<line prefix>`);
  if (env.account === undefined) throw new Dc09DecodeError(`${env.id} frame has no #<account>`);
  const what = `${env.encrypted ? "*" : ""}${env.id} ${seq4(env.seq)}`;
  const decrypted = env.encrypted ? decrypt(env.body, opts.key, what) : undefined;
  const content = readContent(decrypted === undefined ? env.body : stripPad(decrypted, what), what);
  let timestamp: Date | undefined;
  if (content.timestampText !== undefined) {
    timestamp = parseDc09Timestamp(content.timestampText);
    if (!timestamp) {
      throw new Dc09DecodeError(`${what}: timestamp ${quote(content.timestampText)} is not _HH:MM:SS,MM-DD-YYYY`);
    }
  }
  const message: DecodedDc09Frame = {
    id: env.id as Dc09Id,
    seq: env.seq,
    prefix: env.prefix,
    account: env.account,
    data: content.data,
    encrypted: env.encrypted,
    raw: env.raw,
  };
  if (env.receiver !== undefined) message.receiver = env.receiver;
  if (content.extended.length > 0) message.extended = content.extended;
  if (timestamp) message.timestamp = timestamp;
  if (decrypted !== undefined) message.decrypted = decrypted;
  return message;
}

/**
 * A receiver's answer. Strict on framing, length and CRC; lenient on what receivers do differently: hex case,
 * pad of `0`/NUL/random bytes with or without `|`, filler after the timestamp, missing or unreadable timestamp
 * on a plain response (then undefined). An encrypted response needs a readable timestamp (else: wrong key).
 */
export function decodeDc09Response(frame: Buffer, opts: Dc09DecodeOptions = {}): Dc09Response {
  const env = openEnvelope(frame);
  if (!RESPONSE_KINDS.has(env.id)) {
    throw new Dc09DecodeError(`"${env.id}" is not a receiver response (ACK, NAK, DUH or RSP)`);
  }
  const what = `${env.encrypted ? "*" : ""}${env.id} ${seq4(env.seq)}`;
  const decrypted = env.encrypted ? decrypt(env.body, opts.key, what) : undefined;
  const content = readContent(decrypted === undefined ? env.body : stripPad(decrypted, what), what);
  const response: Dc09Response = {
    kind: env.id as Dc09ResponseKind,
    seq: env.seq,
    encrypted: env.encrypted,
    raw: env.raw,
  };
  if (env.receiver !== undefined) response.receiver = env.receiver;
  if (env.prefix !== undefined) response.prefix = env.prefix;
  if (env.account !== undefined) response.account = env.account;
  const timestamp = content.timestampText === undefined ? undefined : parseDc09Timestamp(content.timestampText);
  // Encryption requires the timestamp; without one the decryption is suspect.
  if (env.encrypted && !timestamp) throw new Dc09DecodeError(`${what}: no readable timestamp in the decrypted text`);
  if (timestamp) response.timestamp = timestamp;
  if (decrypted !== undefined) response.decrypted = decrypted;
  return response;
}

// ---------------------------------------------------------------------------------------------- stream

/**
 * Splits a TCP byte stream into complete LF...CR frames; returns frames and the unconsumed rest (keep it and
 * prepend it to the next chunk). Bytes before an LF are noise and dropped; an LF inside an unfinished frame
 * starts a new one (the broken one is dropped); a rest longer than any frame can be is dropped.
 */
export function splitDc09Frames(buffer: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let start = buffer.indexOf(LF);
  while (start >= 0) {
    const end = buffer.indexOf(CR, start + 1);
    const nextStart = buffer.indexOf(LF, start + 1);
    if (nextStart >= 0 && (end < 0 || nextStart < end)) {
      start = nextStart;
      continue;
    }
    if (end < 0) break;
    frames.push(buffer.subarray(start, end + 1));
    start = nextStart;
  }
  const rest = start < 0 || buffer.length - start > DC09_MAX_FRAME_BYTES ? Buffer.alloc(0) : buffer.subarray(start);
  return { frames, rest };
}

/**
 * Splits what a receiver sent into response frames, leniently (dc09.md "Dialects observed in public receiver
 * implementations"): complete LF...CR frames as splitDc09Frames does; a frame whose CR never came but whose
 * length field says it is complete; and a bare `"NAK"` or `"DUH"` written without LF, CRC, length or CR, which
 * is wrapped into a proper frame so the strict decoder reads it. Only refusals are read without framing: an
 * ACK must arrive intact to count.
 */
export function splitDc09Answers(buffer: Buffer): { frames: Buffer[]; rest: Buffer } {
  const firstLf = buffer.indexOf(LF);
  const frames: Buffer[] = [];
  // Bytes before the first LF (all of them when there is none): a bare refusal, or noise.
  const bare = firstLf < 0 ? buffer : buffer.subarray(0, firstLf);
  for (const piece of bare.toString("latin1").split("\r")) {
    // A refusal is short: the bound keeps the wrapped frame within DC-09's length (frameOf would throw).
    const refusal = /^\s*(?:[0-9A-Fa-f]{4}0[0-9A-Fa-f]{3})?("(?:NAK|DUH)"[ -~]{0,200}?)\s*$/.exec(piece);
    if (refusal) frames.push(frameOf(refusal[1]!));
  }
  if (firstLf < 0) return { frames, rest: Buffer.alloc(0) };
  const split = splitDc09Frames(buffer.subarray(firstLf));
  frames.push(...split.frames);
  let rest = split.rest;
  // A frame without its CR: complete when the bytes after LF, CRC and length match the length field.
  if (rest.length >= 9 && /^[0-9A-Fa-f]{4}0[0-9A-Fa-f]{3}$/.test(rest.subarray(1, 9).toString("latin1"))) {
    const declared = Number.parseInt(rest.subarray(5, 9).toString("latin1"), 16);
    if (rest.length - 9 === declared) {
      frames.push(Buffer.concat([rest, Buffer.of(CR)]));
      rest = Buffer.alloc(0);
    }
  }
  return { frames, rest };
}
