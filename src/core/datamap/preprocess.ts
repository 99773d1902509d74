// Cleans an email's text before the rules read it: HTML -> text, forwarded messages unwrapped, quoted
// replies and signatures removed, whitespace normalised. Each step is switchable and conservative: an
// alarm line must never be eaten, so a block is removed only when it is unmistakably a reply or signature.
// Every step is linear in the text length (hostile emails reach this code).

import { compile as compileHtmlToText } from "html-to-text";
import { stripHtml } from "../strip-html";
import type { PreprocessOptions } from "./types";

export const DEFAULT_PREPROCESS: Readonly<PreprocessOptions> = {
  htmlToText: true,
  preferHtml: false,
  unwrapForwarded: true,
  stripQuotedReplies: true,
  stripSignature: true,
  normaliseWhitespace: true,
};

/** html-to-text is superlinear on deeply nested HTML; beyond this the rest of the HTML is not converted. */
const MAX_HTML_CHARS = 128 * 1024;

// ---------------------------------------------------------------------------------------------
// HTML

let htmlConverter: ((html: string) => string) | undefined;

function converter(): (html: string) => string {
  htmlConverter ??= compileHtmlToText({
    // one table row or paragraph stays one line, so label and line rules see what the camera wrote
    wordwrap: false,
    selectors: [
      { selector: "img", format: "skip" },
      { selector: "a", options: { ignoreHref: true } },
      {
        selector: "table",
        format: "dataTable",
        options: { colSpacing: 1, maxColumnWidth: 1000, uppercaseHeaderCells: false },
      },
      ...["h1", "h2", "h3", "h4", "h5", "h6"].map((selector) => ({ selector, options: { uppercase: false } })),
    ],
    limits: { maxDepth: 64, maxChildNodes: 5000, ellipsis: "…" },
  });
  return htmlConverter;
}

/** HTML -> plain text, one table row per line with its cells side by side; never throws. */
export function htmlToPlainText(html: string): string {
  const input = html.length > MAX_HTML_CHARS ? html.slice(0, MAX_HTML_CHARS) : html;
  try {
    return converter()(input);
  } catch {
    return stripHtml(input);
  }
}

// ---------------------------------------------------------------------------------------------
// Whitespace

const ODD_SPACES = /[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\f\v]/g;
const INVISIBLE = /[\ufeff\u200b-\u200d\u2060\u00ad]/g;
const TRAILING_SPACE_BEFORE_NEWLINE = /[ \t]\n/;
const BLANK_LINE_RUN = /\n{3,}/g;

/** Any CR or CRLF becomes LF. Always applied: line rules depend on it. */
export function normaliseLineEndings(text: string): string {
  return text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
}

/**
 * Unusual spaces -> space, invisible characters removed, trailing spaces of each line removed, runs of blank
 * lines -> one, no blank lines at the start or end. Spacing inside a line is kept (fixed-position rules).
 */
export function normaliseWhitespace(text: string): string {
  let t = text;
  ODD_SPACES.lastIndex = 0;
  if (ODD_SPACES.test(t)) t = t.replace(ODD_SPACES, " ");
  INVISIBLE.lastIndex = 0;
  if (INVISIBLE.test(t)) t = t.replace(INVISIBLE, "");
  // per line rather than /[ \t]+$/gm, which backtracks quadratically on long runs of inner spaces
  if (TRAILING_SPACE_BEFORE_NEWLINE.test(t)) t = t.split("\n").map(trimLineEnd).join("\n");
  if (t.includes("\n\n\n")) t = t.replace(BLANK_LINE_RUN, "\n\n");
  let start = 0;
  while (start < t.length && t.charCodeAt(start) === 10) start++;
  return (start > 0 ? t.slice(start) : t).trimEnd();
}

function trimLineEnd(line: string): string {
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c !== 32 && c !== 9) break;
    end--;
  }
  return end === line.length ? line : line.slice(0, end);
}

/** Cuts every line longer than maxLineChars: bounds the work of any per-line regex. */
export function capLineLength(text: string, maxLineChars: number): string {
  if (text.length <= maxLineChars) return text;
  let start = 0;
  let long = false;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    if (end - start > maxLineChars) {
      long = true;
      break;
    }
    start = end + 1;
  }
  if (!long) return text;
  return text
    .split("\n")
    .map((line) => (line.length > maxLineChars ? line.slice(0, maxLineChars) : line))
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// Subject

const SUBJECT_PREFIX = /^(?:re|fw|fwd|aw|wg|tr|sv|vs|antw|doorst|rv|enc)(?:\[\d{1,4}\])?\s{0,4}:\s{0,4}/i;
const REPLY_SUBJECT = /^(?:re|aw|sv|antw|rv)(?:\[\d{1,4}\])?\s{0,4}:/i;
const FORWARD_SUBJECT = /^(?:fw|fwd|wg|tr|vs|doorst|enc)(?:\[\d{1,4}\])?\s{0,4}:/i;

/** "RE: FW: Alarm" -> "Alarm". */
export function stripSubjectPrefixes(subject: string): string {
  let s = subject.trim();
  for (let i = 0; i < 10; i++) {
    const m = SUBJECT_PREFIX.exec(s);
    if (m === null) break;
    s = s.slice(m[0].length);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Forwarded messages and quoted replies

/** A regex of alternatives, case-insensitive; word lists read better than one long literal. */
function anyOf(before: string, words: string[], after: string, flags = "i"): RegExp {
  return new RegExp(`${before}(?:${words.join("|")})${after}`, flags);
}

// Gmail, Apple Mail, Thunderbird in English, German, French, Dutch
const FORWARD_MARKER = anyOf(
  "^",
  [
    "-{3,}\\s?(?:forwarded message|weitergeleitete nachricht|message transféré|doorgestuurd bericht)\\s?-{3,}",
    "begin forwarded message:",
    "anfang der weitergeleiteten nachricht:",
  ],
  "$",
);
const ORIGINAL_MARKER = anyOf(
  "^-{3,}\\s?",
  ["original message", "ursprüngliche nachricht", "message d'origine", "oorspronkelijk bericht", "mensaje original"],
  "\\s?-{3,}$",
);
const UNDERSCORE_RULE = /^_{10,}$/;
const HEADER_FROM = /^(?:from|von|de|van|da)\s?:\s?\S/i;
const HEADER_SENT = /^(?:sent|date|gesendet|datum|envoyé|verzonden|enviado|inviato)\s?:/i;
const HEADER_TO_OR_SUBJECT = /^(?:to|an|à|aan|para|a|subject|betreff|objet|onderwerp|asunto|oggetto)\s?:/i;
const HEADER_SUBJECT = /^(?:subject|betreff|objet|onderwerp|asunto|oggetto)\s?:\s?(.*)$/i;
const HEADER_LINE = /^[\p{L}][\p{L} -]{0,20}\s?:/u;
const REPLY_HEADER = anyOf(
  "^",
  [
    "on\\s.{1,200}\\swrote",
    "am\\s.{1,200}\\sschrieb\\s.{1,200}",
    "le\\s.{1,200}\\sa écrit",
    "op\\s.{1,200}\\sschreef\\s.{1,200}",
    "el\\s.{1,200}\\sescribió",
  ],
  "\\s?:$",
);
const REPLY_HEADER_START = /^(?:on|am|le|op|el)\s/i;

// quick rejects, so a plain alarm email pays for one search per step
const MAY_HAVE_FORWARD = /-{3,}|forwarded|weitergeleitet|^_{10,}|^(?:from|von|de|van|da)\s?:/im;
const MAY_HAVE_REPLY =
  /-{3,}|^_{10,}|^[ \t]*>|^(?:from|von|de|van|da)\s?:|\s(?:wrote|schrieb|écrit|schreef|escribió)/im;

/** Is line i the start of an Outlook-style "From: / Sent: / To: / Subject:" header block? */
function isHeaderBlock(lines: string[], i: number): boolean {
  let at = i;
  if (UNDERSCORE_RULE.test(lines[at].trim())) at++;
  if (at >= lines.length || !HEADER_FROM.test(lines[at].trim())) return false;
  let sent = false;
  let toOrSubject = false;
  for (let j = at + 1; j < Math.min(lines.length, at + 6); j++) {
    const l = lines[j].trim();
    if (HEADER_SENT.test(l)) sent = true;
    else if (HEADER_TO_OR_SUBJECT.test(l)) toOrSubject = true;
  }
  return sent && toOrSubject;
}

function isReplyHeader(lines: string[], i: number): boolean {
  const line = lines[i].trim();
  if (!REPLY_HEADER_START.test(line)) return false;
  if (REPLY_HEADER.test(line)) return true;
  // mail clients wrap a long "On …, Name <address> wrote:" over two lines
  return i + 1 < lines.length && REPLY_HEADER.test(`${line} ${lines[i + 1].trim()}`);
}

function hasContent(lines: string[], from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (lines[i].trim() !== "") return true;
  return false;
}

export interface Unwrapped {
  body: string;
  /** The forwarded message's Subject line, when its header block had one. */
  subject: string | null;
}

/**
 * A forwarded email: the forwarded message below the marker and its header block, with its Subject. Counts as
 * a forward: an explicit "Forwarded message" marker, or an "Original Message" / "From: … Sent: …" block when the
 * subject says FW:/Fwd: (Outlook's forwards). null when the text is not a forward.
 */
export function unwrapForwarded(text: string, subject: string): Unwrapped | null {
  if (!MAY_HAVE_FORWARD.test(text)) return null;
  const lines = text.split("\n");
  const forwardSubject = FORWARD_SUBJECT.test(subject.trim());
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    let headerStart: number;
    if (FORWARD_MARKER.test(line) || (forwardSubject && ORIGINAL_MARKER.test(line))) {
      headerStart = i + 1;
    } else if (forwardSubject && isHeaderBlock(lines, i)) {
      headerStart = UNDERSCORE_RULE.test(line) ? i + 1 : i;
    } else {
      continue;
    }
    // the forwarded header block: "Name: value" lines up to the first blank line
    let innerSubject: string | null = null;
    let j = headerStart;
    while (j < lines.length && lines[j].trim() === "") j++;
    while (j < lines.length && lines[j].trim() !== "" && HEADER_LINE.test(lines[j].trim())) {
      const s = HEADER_SUBJECT.exec(lines[j].trim());
      if (s !== null) innerSubject = s[1].trim();
      j++;
    }
    const body = lines.slice(j).join("\n").replace(/^\n+/, "");
    if (body.trim() === "") return null;
    return { body, subject: innerSubject };
  }
  return null;
}

export interface Stripped {
  text: string;
  /** 1-based line where something was cut, for the Try-it notes. */
  cutAtLine: number | null;
  quotedLinesRemoved: number;
}

/**
 * Removes what a reply quotes, only when new text is above it: everything from an "On … wrote:" line on and, in a
 * reply (RE: subject or In-Reply-To/References), from an "-----Original Message-----" line or a "From: … Sent: …"
 * block on, and lines starting with ">".
 */
export function stripQuotedReply(text: string, isReply: boolean): Stripped {
  if (!MAY_HAVE_REPLY.test(text)) return { text, cutAtLine: null, quotedLinesRemoved: 0 };
  let lines = text.split("\n");
  let cutAtLine: number | null = null;
  for (let i = 0; i < lines.length; i++) {
    const header =
      isReplyHeader(lines, i) || (isReply && (ORIGINAL_MARKER.test(lines[i].trim()) || isHeaderBlock(lines, i)));
    if (!header) continue;
    if (!hasContent(lines, 0, i)) break; // nothing new above: not a reply to cut, maybe a forward
    lines = lines.slice(0, i);
    cutAtLine = i + 1;
    isReply = true;
    break;
  }
  let quotedLinesRemoved = 0;
  if (isReply) {
    const kept = lines.filter((line) => !isQuotedLine(line));
    quotedLinesRemoved = lines.length - kept.length;
    lines = kept;
  }
  if (cutAtLine === null && quotedLinesRemoved === 0) return { text, cutAtLine: null, quotedLinesRemoved: 0 };
  return { text: lines.join("\n"), cutAtLine, quotedLinesRemoved };
}

/** "> text", ">> text" or ">" alone; not ">>> ALARM <<<"-style banners, which a device may write. */
function isQuotedLine(line: string): boolean {
  const t = line.trimStart();
  if (t.charCodeAt(0) !== 62) return false;
  if (t.includes("<<")) return false;
  return t.length === 1 || t[1] === " " || t[1] === ">" || t[1] === "\t";
}

const SIG_DASHES = /^-- ?$/;
const SENT_FROM = anyOf(
  "^",
  [
    "sent from (?:my |mail for |yahoo |outlook |samsung |aol )",
    "get outlook for ",
    "von meinem .{1,40} gesendet",
    "envoyé de mon ",
    "verzonden (?:vanaf|met) mijn ",
    "enviado desde mi ",
    "inviato da ",
  ],
  "",
);
/** A line that is only a closing greeting. */
const VALEDICTION = anyOf(
  "^",
  [
    "(?:(?:best|kind|warm|many|with best|with kind)\\s)?(?:regards|greetings|wishes)",
    "thanks",
    "thank you",
    "cheers",
    "sincerely",
    "yours sincerely",
    "yours faithfully",
    "best",
    "mit freundlichen grüßen",
    "mfg",
    "viele grüße",
    "met vriendelijke groet",
    "cordialement",
    "saludos",
  ],
  "[,.!]?$",
);
const MAY_HAVE_SIGNATURE = anyOf(
  "",
  [
    "^--",
    "sent from",
    "get outlook",
    "gesendet",
    "envoyé de",
    "verzonden",
    "enviado",
    "inviato",
    "regards",
    "greetings",
    "wishes",
    "thank",
    "cheers",
    "sincerely",
    "yours",
    "best",
    "grüße",
    "mfg",
    "groet",
    "cordialement",
    "saludos",
  ],
  "",
  "im",
);

/** Lines a valediction may be followed by (name, company, phone) to still count as a signature. */
const MAX_SIGNATURE_LINES_AFTER_VALEDICTION = 6;
/** Lines a bare "--" (no trailing space) may be followed by to count as a signature delimiter. */
const MAX_SIGNATURE_LINES_AFTER_BARE_DASHES = 10;

function contentLinesFrom(lines: string[], from: number): number {
  let n = 0;
  for (let i = from; i < lines.length; i++) if (lines[i].trim() !== "") n++;
  return n;
}

/**
 * Removes a trailing signature: from a "-- " line on; "Sent from my …" lines; a valediction ("Regards,") with at
 * most a few lines after it at the end of the text. Never removes the first line with content.
 */
export function stripSignature(text: string): { text: string; cutAtLine: number | null } {
  if (!MAY_HAVE_SIGNATURE.test(text)) return { text, cutAtLine: null };
  const lines = text.split("\n");
  let firstContent = 0;
  while (firstContent < lines.length && lines[firstContent].trim() === "") firstContent++;
  let cut = lines.length;
  let removedSentFrom = false;
  for (let i = firstContent + 1; i < lines.length; i++) {
    const raw = lines[i];
    const line = raw.trim();
    if (SIG_DASHES.test(raw) || SIG_DASHES.test(line)) {
      const strict = raw === "-- " || raw === "--\u00a0";
      if (strict || contentLinesFrom(lines, i + 1) <= MAX_SIGNATURE_LINES_AFTER_BARE_DASHES) {
        cut = i;
        break;
      }
    } else if (SENT_FROM.test(line)) {
      lines[i] = "";
      removedSentFrom = true;
    } else if (VALEDICTION.test(line) && contentLinesFrom(lines, i + 1) <= MAX_SIGNATURE_LINES_AFTER_VALEDICTION) {
      cut = i;
      break;
    }
  }
  if (cut === lines.length && !removedSentFrom) return { text, cutAtLine: null };
  return { text: lines.slice(0, cut).join("\n"), cutAtLine: cut < lines.length ? cut + 1 : null };
}

// ---------------------------------------------------------------------------------------------
// All steps

export interface PrepareSource {
  subject: string;
  text: string;
  html: string | null;
  contentType: string;
  /** The email has In-Reply-To or References: a reply, whose ">" lines are quotes. */
  replyHeaders: boolean;
}

export interface PreparedEmail {
  subject: string;
  body: string;
  /** What preprocessing did, for the Try-it panel. */
  notes: string[];
}

export interface PrepareLimits {
  maxSourceChars: number;
  maxLineChars: number;
}

const HAS_NON_SPACE = /\S/;

/** Runs the switched-on steps in order: HTML, limits, forward, quotes, signature, whitespace. Never throws. */
export function prepareEmail(src: PrepareSource, options: PreprocessOptions, limits: PrepareLimits): PreparedEmail {
  const notes: string[] = [];
  let subject = src.subject;
  let body = src.text;
  if (src.html !== null && src.html !== "") {
    const noTextOfItsOwn = !HAS_NON_SPACE.test(body) || src.contentType.startsWith("text/html");
    if (options.preferHtml || (options.htmlToText && noTextOfItsOwn)) {
      body = htmlToPlainText(src.html);
      notes.push("HTML part converted to text");
    }
  }
  if (body.length > limits.maxSourceChars) {
    notes.push(`body cut to its first ${limits.maxSourceChars} of ${body.length} characters`);
    body = body.slice(0, limits.maxSourceChars);
  }
  body = capLineLength(normaliseLineEndings(body), limits.maxLineChars);
  if (subject.length > limits.maxLineChars) subject = subject.slice(0, limits.maxLineChars);
  // a folded or odd subject is one line
  if (subject.includes("\n") || subject.includes("\r")) subject = subject.replace(/[\r\n]+/g, " ");

  const isReply = src.replyHeaders || REPLY_SUBJECT.test(subject.trim());
  if (options.unwrapForwarded) {
    for (let depth = 0; depth < 3; depth++) {
      const inner = unwrapForwarded(body, subject);
      if (inner === null) break;
      body = inner.body;
      if (inner.subject !== null && inner.subject !== "") subject = inner.subject;
      notes.push(`forwarded message unwrapped${inner.subject !== null ? ` (subject "${inner.subject}")` : ""}`);
    }
  }
  if (options.stripQuotedReplies) {
    const stripped = stripQuotedReply(body, isReply);
    if (stripped.cutAtLine !== null) notes.push(`quoted reply removed from line ${stripped.cutAtLine}`);
    if (stripped.quotedLinesRemoved > 0) notes.push(`${stripped.quotedLinesRemoved} quoted ">" lines removed`);
    body = stripped.text;
  }
  if (options.stripSignature) {
    const before = body;
    const stripped = stripSignature(body);
    if (stripped.cutAtLine !== null) notes.push(`signature removed from line ${stripped.cutAtLine}`);
    else if (stripped.text !== before) notes.push(`"Sent from my …" line removed`);
    body = stripped.text;
  }
  if (options.unwrapForwarded || options.stripQuotedReplies) subject = stripSubjectPrefixes(subject);
  if (options.normaliseWhitespace) {
    body = normaliseWhitespace(body);
    subject = normaliseWhitespace(subject).trim();
  }
  return { subject, body, notes };
}
