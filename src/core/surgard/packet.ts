// Sur-Gard automation output packets (surgard.md "Packet"; DSC form 7-3005 Rev 161): pure encode/decode, no I/O.
//   <protocol id><RR><L or LLL><data><DC4>, answered with one byte: ACK 0x06 or NAK 0x15. No checksum.
import { type AlarmForDc09, admCidData, Dc09DataError, siaDcsData } from "../dc09/event-data";

export const DC4 = 0x14;
export const ACK = 0x06;
export const NAK = 0x15;

/** 1: MLR2 `RRL`; 3: System I/II/III/5 `RRLLL`. */
export type SurgardLineDigits = 1 | 3;

export interface SurgardLine {
  /** 0-99, sent as two digits. */
  receiver: number;
  /** 0-9 with 1 digit, 0-999 with 3. */
  line: number;
  lineDigits: SurgardLineDigits;
}

/**
 * Contact ID account width: 4 is the `18` form, 10 the `58` form, both zero-padded on the left; "auto" picks 4
 * for accounts of up to 4 characters, else 10.
 */
export type ContactIdAccountDigits = "auto" | 4 | 10;

/** The same alarm fields as DC-09 carries. */
export type AlarmForSurgard = AlarmForDc09;

/** The alarm cannot be expressed in Sur-Gard: the message names the field and why (nothing is ever truncated). */
export class SurgardDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SurgardDataError";
  }
}

export type DecodedSurgardPacket =
  | { kind: "heartbeat"; receiver: number; line: number; raw: string }
  | {
      kind: "cid";
      receiver: number;
      line: number;
      account: string;
      qualifier: "E" | "R" | "P";
      eventCode: string;
      group: string;
      zone: string;
      raw: string;
    }
  | { kind: "sia"; receiver: number; line: number; data: string; account: string; raw: string };

/** Rev 161 4.7: the SIA data block (inside the brackets) is at most 66 bytes; MLR2 allows 63. */
export const SURGARD_SIA_MAX_DATA_BYTES: Readonly<Record<SurgardLineDigits, number>> = { 1: 63, 3: 66 };
/** The longest packet this codec writes, DC4 included: `SRRLLL[` + 66 bytes + `]` + DC4. */
export const SURGARD_MAX_PACKET_BYTES = 1 + 2 + 3 + 1 + SURGARD_SIA_MAX_DATA_BYTES[3] + 1 + 1;

const HEARTBEAT_TAIL = `${" ".repeat(11)}@${" ".repeat(4)}`;
const CID_QUALIFIER = { new: "E", restore: "R", previous: "P" } as const;

// ---------------------------------------------------------------------------------------------- encoding

function checkWhole(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new SurgardDataError(`${name} ${value} is not a whole number from 0 to ${max}`);
  }
}

/** Throws SurgardDataError when the receiver or line number does not fit its digits. */
export function checkSurgardLine(line: SurgardLine): void {
  if (line.lineDigits !== 1 && line.lineDigits !== 3) {
    throw new SurgardDataError(`Line digits ${line.lineDigits} is not 1 (MLR2, RRL) or 3 (System I/II/III/5, RRLLL)`);
  }
  checkWhole("Receiver number", line.receiver, 99);
  checkWhole(
    `Line number (${line.lineDigits} digit${line.lineDigits === 1 ? "" : "s"})`,
    line.line,
    10 ** line.lineDigits - 1,
  );
}

function digits(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

function header(protocolId: string, line: SurgardLine): string {
  checkSurgardLine(line);
  return `${protocolId}${digits(line.receiver, 2)}${digits(line.line, line.lineDigits)}`;
}

function packetOf(text: string): Buffer {
  const bad = [...text].find((c) => c < " " || c > "~");
  if (bad !== undefined) {
    const code = bad.codePointAt(0)!.toString(16).toUpperCase().padStart(2, "0");
    throw new SurgardDataError(`The packet would contain "${bad}" (0x${code}): only printable ASCII is allowed`);
  }
  return Buffer.concat([Buffer.from(text, "latin1"), Buffer.of(DC4)]);
}

function asSurgardError(err: unknown): unknown {
  return err instanceof Dc09DataError ? new SurgardDataError(err.message) : err;
}

/**
 * Supervisory heartbeat (Rev 161 4.2; MLR2). 1-digit lines: `1RRL` + 11 spaces + `@` + 4 spaces, e.g. `1011...`
 * for receiver 1 line 1. 3-digit lines: `1RR000...`: the receiver itself sends it, so the line field is 000.
 */
export function heartbeatPacket(line: SurgardLine): Buffer {
  checkSurgardLine(line);
  const where = line.lineDigits === 1 ? digits(line.line, 1) : "000";
  return packetOf(`1${digits(line.receiver, 2)}${where}${HEARTBEAT_TAIL}`);
}

// Contact ID account digits are 0-9 and B-F: a dialler sends the digit 0 as the DTMF tone A, so a receiver never
// outputs A in an account, and panels that accept A in their account setting send it as 0 (Risco LightSYS).
function contactIdAccount(account: string, accountDigits: ContactIdAccountDigits): { id: "18" | "58"; text: string } {
  const upper = account.toUpperCase();
  if (upper === "") throw new SurgardDataError("account is empty: Contact ID needs 1 to 10 digits (0-9, B-F)");
  if (upper.includes("A")) {
    throw new SurgardDataError(
      `account ${account} contains A: Contact ID accounts use 0-9 and B-F only (A is how a dialler sends the ` +
        "digit 0); map the account with 0 instead",
    );
  }
  if (!/^[0-9B-F]+$/.test(upper)) {
    throw new SurgardDataError(`account ${account} is not made of Contact ID digits (0-9, B-F)`);
  }
  if (upper.length > 10) {
    throw new SurgardDataError(
      `account ${account} has ${upper.length} characters; Contact ID carries at most 10 (58 form): ` +
        "shorten the account in the data-map",
    );
  }
  const width = accountDigits === "auto" ? (upper.length <= 4 ? 4 : 10) : accountDigits;
  if (width !== 4 && width !== 10) {
    throw new SurgardDataError(`Contact ID account digits ${String(accountDigits)} is not "auto", 4 or 10`);
  }
  if (upper.length > width) {
    throw new SurgardDataError(
      `account ${account} has ${upper.length} characters; Contact ID with 4-digit accounts cannot carry it: ` +
        "choose 10-digit (58) accounts or shorten the account in the data-map",
    );
  }
  return { id: width === 4 ? "18" : "58", text: upper.padStart(width, "0") };
}

// XYZ, GG and CCC are the fields of the DC-09 ADM-CID block: reuse its checks and its table of user events (CCC
// is the user number for those) instead of a second copy. Its account check does not apply here: give it a valid one.
function contactIdFields(alarm: AlarmForSurgard): { event: string; group: string; number: string } {
  let data: string;
  try {
    data = admCidData({ ...alarm, account: "0000" });
  } catch (err) {
    throw asSurgardError(err);
  }
  const match = /\|\d(\d{3}) (\d{2}) (\d{3})$/.exec(data);
  if (!match) throw new SurgardDataError(`Cannot read event, group and zone in Contact ID data "${data}"`);
  return { event: match[1], group: match[2], number: match[3] };
}

/**
 * Contact ID (MLR2 manual; Rev 161): `5RRLs18AAAAQXYZGGCCC` (or `5RRLLLs18...`), e.g. `5011 181234E13001015`;
 * 10-digit accounts use the `58` form `5RRL(LL)s58AAAAAAAAAAQXYZGGCCC`. Q: E new, R restore, P previous;
 * GG: the area, 00 when unknown; CCC: the zone, or the user for user events, 000 when unknown.
 */
export function contactIdPacket(
  alarm: AlarmForSurgard,
  line: SurgardLine,
  accountDigits: ContactIdAccountDigits = "auto",
): Buffer {
  const head = header("5", line);
  const qualifier = CID_QUALIFIER[alarm.qualifier ?? "new"];
  if (qualifier === undefined) {
    throw new SurgardDataError(`Qualifier "${alarm.qualifier}" is not new, restore or previous`);
  }
  const { event, group, number } = contactIdFields(alarm);
  const account = contactIdAccount(alarm.account, accountDigits);
  return packetOf(`${head} ${account.id}${account.text}${qualifier}${event}${group}${number}`);
}

/**
 * SIA (Rev 161 4.7): `SRRL[#acct|Nri1/BA01]` (or `SRRLLL[...]`); the data is the SIA-DCS block of DC-09, at most
 * 63 bytes on 1-digit lines and 66 on 3-digit lines.
 */
export function siaPacket(alarm: AlarmForSurgard, line: SurgardLine): Buffer {
  const head = header("S", line);
  let data: string;
  try {
    data = siaDcsData(alarm);
  } catch (err) {
    throw asSurgardError(err);
  }
  const max = SURGARD_SIA_MAX_DATA_BYTES[line.lineDigits];
  if (data.length > max) {
    throw new SurgardDataError(
      `SIA data "${data}" has ${data.length} bytes; Sur-Gard carries at most ${max} with ${line.lineDigits}-digit lines`,
    );
  }
  return packetOf(`${head}[${data}]`);
}

/** The packet for the alarm's format: Contact ID or SIA. */
export function surgardPacket(
  alarm: AlarmForSurgard,
  line: SurgardLine,
  accountDigits: ContactIdAccountDigits = "auto",
): Buffer {
  switch (alarm.eventFormat) {
    case "CID":
      return contactIdPacket(alarm, line, accountDigits);
    case "SIA":
      return siaPacket(alarm, line);
    default:
      throw new SurgardDataError(`Event format "${String(alarm.eventFormat)}" is not SIA or CID`);
  }
}

// ---------------------------------------------------------------------------------------------- stream

/**
 * Splits a TCP byte stream at DC4: each packet keeps its DC4 (as the encoders return it). Returns the unconsumed
 * rest (prepend it to the next chunk); a rest longer than any packet can be is dropped, so the bytes up to the next
 * DC4 then form a packet the decoder refuses.
 */
export function splitSurgardPackets(buffer: Buffer): { packets: Buffer[]; rest: Buffer } {
  const packets: Buffer[] = [];
  let start = 0;
  for (let end = buffer.indexOf(DC4); end >= 0; end = buffer.indexOf(DC4, start)) {
    packets.push(buffer.subarray(start, end + 1));
    start = end + 1;
  }
  const rest = buffer.length - start >= SURGARD_MAX_PACKET_BYTES ? Buffer.alloc(0) : buffer.subarray(start);
  return { packets, rest };
}

// ---------------------------------------------------------------------------------------------- decoding

interface Patterns {
  heartbeat: RegExp;
  cid: RegExp;
  sia: RegExp;
}

function patternsFor(lineDigits: SurgardLineDigits): Patterns {
  const address = `(\\d{2})(\\d{${lineDigits}})`;
  return {
    heartbeat: new RegExp(`^1${address}${HEARTBEAT_TAIL}$`),
    cid: new RegExp(`^5${address} (18|58)([0-9B-F]+)([ERP])(\\d{3})(\\d{2})(\\d{3})$`),
    sia: new RegExp(`^S${address}\\[([^[\\]]*)\\]$`),
  };
}

const PATTERNS: Readonly<Record<SurgardLineDigits, Patterns>> = { 1: patternsFor(1), 3: patternsFor(3) };

/** Packet text for an error message: JSON-quoted so control bytes show as escapes, and cut short. */
function quote(text: string, max = 48): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

/**
 * One packet as the automation software reads it (for the test peer), with or without its DC4. Strict: a packet
 * that is not exactly one of the forms the encoders write throws SurgardDataError.
 */
export function decodeSurgardPacket(packet: Buffer, lineDigits: SurgardLineDigits): DecodedSurgardPacket {
  const patterns = PATTERNS[lineDigits];
  if (!patterns) throw new SurgardDataError(`Line digits ${lineDigits} is not 1 or 3`);
  const body = packet.length > 0 && packet[packet.length - 1] === DC4 ? packet.subarray(0, -1) : packet;
  const raw = body.toString("latin1");
  if (raw === "") throw new SurgardDataError("Empty packet");
  if (!/^[ -~]+$/.test(raw)) throw new SurgardDataError(`Packet ${quote(raw)} has bytes outside printable ASCII`);
  const where = `${lineDigits}-digit-line packet ${quote(raw)}`;
  switch (raw[0]) {
    case "1": {
      const m = patterns.heartbeat.exec(raw);
      if (!m)
        throw new SurgardDataError(
          `${where} is not a heartbeat (1RR${"L".repeat(lineDigits)}, 11 spaces, @, 4 spaces)`,
        );
      return { kind: "heartbeat", receiver: Number(m[1]), line: Number(m[2]), raw };
    }
    case "5": {
      const m = patterns.cid.exec(raw);
      if (!m) throw new SurgardDataError(`${where} is not Contact ID (5RR${"L".repeat(lineDigits)}s18AAAAQXYZGGCCC)`);
      const [, receiver, line, form, account, qualifier, eventCode, group, zone] = m;
      const width = form === "18" ? 4 : 10;
      if (account.length !== width) {
        throw new SurgardDataError(`${where}: the ${form} form has ${width}-digit accounts, not ${account.length}`);
      }
      return {
        kind: "cid",
        receiver: Number(receiver),
        line: Number(line),
        account,
        qualifier: qualifier as "E" | "R" | "P",
        eventCode,
        group,
        zone,
        raw,
      };
    }
    case "S": {
      const m = patterns.sia.exec(raw);
      if (!m) throw new SurgardDataError(`${where} is not SIA (SRR${"L".repeat(lineDigits)}[data])`);
      const [, receiver, line, data] = m;
      const max = SURGARD_SIA_MAX_DATA_BYTES[lineDigits];
      if (data.length > max)
        throw new SurgardDataError(`${where}: SIA data has ${data.length} bytes, more than ${max}`);
      const account = /^#([0-9A-Fa-f]+)\|/.exec(data);
      if (!account) throw new SurgardDataError(`${where}: SIA data does not start with #<account>|`);
      return { kind: "sia", receiver: Number(receiver), line: Number(line), data, account: account[1], raw };
    }
    default:
      throw new SurgardDataError(`${where}: protocol id "${raw[0]}" is not 1 (heartbeat), 5 (Contact ID) or S (SIA)`);
  }
}
