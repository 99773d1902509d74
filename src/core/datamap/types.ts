// The data-map's shapes: what the editor stores (DataMapConfig, FieldRule), what goes in (MapInput)
// and what comes out (MapResult with an AlarmEvent, or the rule that rejected the email). All plain
// JSON, so that a config survives the Node-RED editor and a result survives message cloning.

export type EventFormat = "SIA" | "CID";

/** Contact ID qualifier: 1 = new event / opening, 3 = restore / closing. SIA encodes it in the code. */
export type Qualifier = "new" | "restore";

/** The fields a rule can fill. Any other identifier-like name lands in `AlarmEvent.extra`. */
export const ALARM_FIELDS = [
  "account",
  "eventCode",
  "eventFormat",
  "qualifier",
  "zone",
  "area",
  "user",
  "text",
  "occurredAt",
] as const;
export type AlarmField = (typeof ALARM_FIELDS)[number];

// ---------------------------------------------------------------------------------------------
// Rules

/** Where a rule's text comes from. Line numbers are 1-based, negative counts from the end; blank lines do not count. */
export type FieldSource =
  | { kind: "subject" }
  | { kind: "body" }
  | { kind: "bodyLine"; line: number }
  /** The first From address. */
  | { kind: "sender"; part?: "address" | "name" }
  /** All To (and optionally Cc) recipients, one per line. */
  | { kind: "recipient"; part?: "address" | "name"; includeCc?: boolean }
  /** A header by name (case-insensitive); repeated headers one per line. */
  | { kind: "header"; name: string }
  /** All attachment file names, one per line. */
  | { kind: "attachmentName" }
  /** A property of the Node-RED message by dotted path, e.g. "payload.account". */
  | { kind: "msg"; path: string }
  | { kind: "constant"; value: string };

export type FieldSourceKind = FieldSource["kind"];

/** How the value is cut out of the source text. Positions are 1-based; negative line/part counts from the end. */
export type FieldExtractor =
  | { kind: "whole" }
  | { kind: "line"; line: number }
  | { kind: "split"; delimiter: string; part: number }
  | { kind: "fixed"; start: number; length: number }
  /** The value after `label` + `separator` (default ":") on the first line that starts with the label. */
  | { kind: "label"; label: string; separator?: string }
  /**
   * `group`: a group name or number. Without it: the named group called like the field, else group 1, else
   * the whole match. Flags allowed: i, m, s, u. Written as in JavaScript, run by RE2 in linear time
   * (linear-regex.ts): no backreferences, no lookahead, no groups inside a lookbehind.
   */
  | { kind: "regex"; pattern: string; flags?: string; group?: string | number }
  /**
   * The escape hatch. Input: { source, subject, body, email, msg, fields }; the result must be text, a number
   * or a boolean. Makes map() asynchronous.
   */
  | { kind: "jsonata"; expression: string };

export type FieldExtractorKind = FieldExtractor["kind"];

/** What a translation produces: "code" is the SIA or Contact ID code as eventFormat decides. */
export type TranslateOutput = "code" | "sia" | "cid" | "qualifier" | "description" | "value";

export type FieldTransform =
  | { kind: "trim" }
  | { kind: "upper" }
  | { kind: "lower" }
  | { kind: "pad"; length: number; char?: string; side?: "left" | "right" }
  /** Used when the value is empty (also when extraction found nothing). */
  | { kind: "default"; value: string }
  /** onMiss: keep the value (default), make it empty, or reject the email. */
  | { kind: "translate"; table: string; output?: TranslateOutput; onMiss?: "keep" | "empty" | "fail" };

export type FieldTransformKind = FieldTransform["kind"];

/**
 * One rule of the editable list. Several rules may name the same field: a later one runs only while the
 * field is still empty (a fallback). `required` makes an empty field reject the email.
 */
export interface FieldRule {
  field: string;
  source: FieldSource;
  extractor: FieldExtractor;
  transforms?: FieldTransform[];
  required?: boolean;
  /** Free text for the editor, e.g. "account is the first body line". */
  note?: string;
}

// ---------------------------------------------------------------------------------------------
// Translation tables

export interface EventTableEntry {
  /** SIA event code for the alarm, e.g. "BA". */
  sia: string;
  /** SIA code for its restore, e.g. "BR"; the alarm code when absent. */
  siaRestore?: string;
  /** Contact ID event, three digits, e.g. "130". */
  cid: string;
  /** Forces the qualifier, e.g. closing = 401 restore. */
  qualifier?: Qualifier;
  /** Words or phrases found in text, case-insensitive, as whole words. */
  match: string[];
  description: string;
}

/** Text or codes -> SIA code + Contact ID event (+ restore qualifier from restoreWords). */
export interface EventTable {
  kind: "events";
  entries: EventTableEntry[];
  /** Whole words/phrases that make a matched event a restore, e.g. "restored", "cleared". */
  restoreWords: string[];
}

/** Text -> text, e.g. a sensor name -> zone number. */
export interface ValueTable {
  kind: "values";
  entries: { match: string[]; value: string }[];
  /** Also look for the phrases inside longer text (default true); false = whole value only. */
  phrases?: boolean;
}

export type TranslationTable = EventTable | ValueTable;

// ---------------------------------------------------------------------------------------------
// Config

export interface PreprocessOptions {
  /** Convert the HTML part with html-to-text when the email has no text of its own. */
  htmlToText: boolean;
  /** Always use the HTML part converted by html-to-text when there is one (camera emails whose text is poor). */
  preferHtml: boolean;
  /** A forwarded email: use the forwarded message (and its Subject) instead of the forwarder's note. */
  unwrapForwarded: boolean;
  /** Drop `>` lines and everything from an "On … wrote:" / "-----Original Message-----" / "From: … Sent:" block. */
  stripQuotedReplies: boolean;
  /** Drop a trailing signature: "-- ", "Sent from my …", a short "Regards," block at the end. */
  stripSignature: boolean;
  /** CRLF -> LF, odd spaces -> space, trailing spaces and repeated blank lines removed. Inner spacing is kept. */
  normaliseWhitespace: boolean;
}

export interface NumberRange {
  min: number;
  max: number;
}

export interface ValidationRanges {
  zone?: NumberRange;
  area?: NumberRange;
  user?: NumberRange;
}

/** Authentication-Results values. */
export type AuthResultValue =
  | "pass"
  | "fail"
  | "softfail"
  | "neutral"
  | "none"
  | "temperror"
  | "permerror"
  | "policy"
  | "hardfail"
  | "bestguesspass";

export interface SpoofCheckOptions {
  enabled: boolean;
  /** Results that reject; default ["fail", "permerror", "hardfail"]. softfail is accepted by default. */
  reject?: AuthResultValue[];
  /** Methods checked; default all three. */
  methods?: ("dmarc" | "spf" | "dkim")[];
  /**
   * Reject emails without our server's Authentication-Results header, or (with dmarc checked) without a DMARC
   * verdict in it. New nodes save true (the editor's default); absent = false, as flows saved before had it:
   * those emails are accepted unchecked. Turn it off only for a receiving server that writes no such header.
   */
  requireHeader?: boolean;
  /**
   * authserv-ids of our own receiving servers (RFC 8601 §2.5): the topmost header one of them wrote is read.
   * Without it the topmost header is read: Exchange Online adds its own (without an authserv-id) above any
   * the sender wrote.
   */
  trustedAuthServIds?: string[];
}

export interface DataMapLimits {
  /** Source text longer than this is cut before extraction: bounds the time of any user regex. Default 16384. */
  maxSourceChars?: number;
  /** Lines longer than this are cut. Default 2000. */
  maxLineChars?: number;
  /** Time limit of one JSONata evaluation, ms. Default 200. */
  jsonataTimeoutMs?: number;
}

export interface DataMapConfig {
  rules: FieldRule[];
  preprocess?: Partial<PreprocessOptions>;
  /** By name; merged over the default tables (a table called "events" replaces the default one). */
  tables?: Record<string, TranslationTable>;
  validation?: ValidationRanges;
  /**
   * Addresses ("alarm@site.example"), exact domains ("@site.example" or "site.example") or any subdomain
   * ("@*.site.example"); empty or absent = no check. See sender-check.ts.
   */
  allowSenders?: string[];
  spoofCheck?: SpoofCheckOptions;
  /** Used when no rule sets eventFormat. Default "SIA". */
  eventFormat?: EventFormat;
  limits?: DataMapLimits;
}

// ---------------------------------------------------------------------------------------------
// Input and output

export interface EmailAddressLike {
  address: string;
  name: string;
}

export interface EmailAttachmentLike {
  filename: string;
  contentType: string;
  size: number;
  path?: string;
  contentId?: string;
  inline?: boolean;
}

/** What the data-map reads of a ParsedEmail (src/core/mail/parse-email.ts); any of it may be missing. */
export interface MappableEmail {
  messageId?: string | null;
  from?: EmailAddressLike[];
  to?: EmailAddressLike[];
  cc?: EmailAddressLike[];
  date?: string | null;
  subject?: string;
  text?: string;
  html?: string | null;
  headers?: Record<string, string>;
  attachments?: EmailAttachmentLike[];
  /** The connector could not read the email (e.g. malformed MIME past the parser's limits): why. */
  unreadable?: string | null;
}

export interface MapInput {
  email: MappableEmail;
  /** The Node-RED message, for msg-property sources and JSONata. */
  msg?: Record<string, unknown>;
  /** ISO 8601; when the email arrived. occurredAt falls back to it when the email has no Date. */
  receivedAt?: string;
}

/** A reference to an attachment of msg.email (same index); the bytes stay there. */
export interface AlarmAttachmentRef {
  index: number;
  filename: string;
  contentType: string;
  size: number;
  inline: boolean;
  contentId?: string;
  path?: string;
}

export interface AlarmEvent {
  /** 3-16 hexadecimal characters, upper case. */
  account: string;
  /** SIA code (two letters) or Contact ID event (three digits), as eventFormat says. */
  eventCode: string;
  eventFormat: EventFormat;
  qualifier: Qualifier;
  /** Both codes when a translation table knew them, so a receiver can use either. */
  siaCode: string | null;
  cidEvent: string | null;
  zone: number | null;
  /** Area / partition. */
  area: number | null;
  user: number | null;
  text: string;
  /** ISO 8601. */
  occurredAt: string;
  attachments: AlarmAttachmentRef[];
  source: { messageId: string | null; from: string; subject: string; receivedAt: string | null };
  /** Values of rules whose field is not one of ALARM_FIELDS. */
  extra: Record<string, string>;
  /** Set by a line-driver with alarm media: the signed links to the pictures and clips it kept. */
  media?: AlarmMediaLink[];
  /** The link a DC-09 frame carries in `[V...]`: the first of `media`. */
  verificationUrl?: string;
}

/** A kept picture or clip of an alarm, at a link that works until `expiresAt`. */
export interface AlarmMediaLink {
  url: string;
  contentType: string;
  size: number;
  filename: string;
  /** ISO 8601: the link answers 403 from then on (the file stays until retention removes it). */
  expiresAt: string;
}

/** What one rule did, for the editor's Try-it panel and for msg.error. */
export interface FieldTrace {
  /** 1-based position in the rule list. */
  rule: number;
  field: string;
  /** The start of the source text (bounded). */
  source: string;
  /** What the extractor cut out; null when it found nothing. */
  extracted: string | null;
  /** After transforms; null when empty. */
  value: string | null;
  /** Why nothing was extracted, a table miss, or why the rule was skipped. */
  note?: string;
  /** Set when this rule rejected the email. */
  error?: string;
}

export type MapResult =
  | { ok: true; alarm: AlarmEvent; trace: FieldTrace[] }
  | {
      ok: false;
      /** E.g. "rule 3 (zone)", "sender allow-list", "spoof check", "account (no rule)". */
      rule: string;
      reason: string;
      /** The alarm field concerned, when there is one. */
      field?: string;
      trace: FieldTrace[];
    };

export type MapRejection = Extract<MapResult, { ok: false }>;
