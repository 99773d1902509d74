// Reads msg.email defensively: it usually is a ParsedEmail, but a flow may hand over anything, and
// map() must end in ok or rejected whatever it gets. Well-formed parts are used as they are (no copy).
import type { EmailAddressLike, EmailAttachmentLike, MappableEmail } from "./types";

export interface EmailView {
  messageId: string | null;
  from: EmailAddressLike[];
  to: EmailAddressLike[];
  cc: EmailAddressLike[];
  date: string | null;
  subject: string;
  text: string;
  html: string | null;
  headers: Readonly<Record<string, unknown>>;
  attachments: EmailAttachmentLike[];
  unreadable: string | null;
}

const EMPTY_HEADERS: Readonly<Record<string, unknown>> = Object.freeze(Object.create(null));

function isAddress(a: unknown): a is EmailAddressLike {
  return (
    typeof a === "object" &&
    a !== null &&
    typeof (a as EmailAddressLike).address === "string" &&
    typeof (a as EmailAddressLike).name === "string"
  );
}

function addresses(value: unknown): EmailAddressLike[] {
  if (!Array.isArray(value)) return [];
  if (value.every(isAddress)) return value;
  const out: EmailAddressLike[] = [];
  for (const a of value) {
    if (typeof a !== "object" || a === null) continue;
    const { address, name } = a as Record<string, unknown>;
    out.push({ address: typeof address === "string" ? address : "", name: typeof name === "string" ? name : "" });
  }
  return out;
}

function isAttachment(a: unknown): a is EmailAttachmentLike {
  if (typeof a !== "object" || a === null) return false;
  const att = a as Record<string, unknown>;
  return typeof att.filename === "string" && typeof att.contentType === "string" && typeof att.size === "number";
}

function attachments(value: unknown): EmailAttachmentLike[] {
  if (!Array.isArray(value)) return [];
  if (value.every(isAttachment)) return value;
  const out: EmailAttachmentLike[] = [];
  for (const a of value) {
    if (typeof a !== "object" || a === null) continue;
    const att = a as Record<string, unknown>;
    const ref: EmailAttachmentLike = {
      filename: typeof att.filename === "string" ? att.filename : "",
      contentType: typeof att.contentType === "string" ? att.contentType : "application/octet-stream",
      size: typeof att.size === "number" && Number.isFinite(att.size) ? att.size : 0,
      inline: att.inline === true,
    };
    if (typeof att.path === "string") ref.path = att.path;
    if (typeof att.contentId === "string") ref.contentId = att.contentId;
    out.push(ref);
  }
  return out;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

export function viewEmail(email: MappableEmail | unknown): EmailView {
  const e = (typeof email === "object" && email !== null ? email : {}) as Record<string, unknown>;
  const headers = typeof e.headers === "object" && e.headers !== null ? (e.headers as Record<string, unknown>) : null;
  return {
    messageId: typeof e.messageId === "string" ? e.messageId : null,
    from: addresses(e.from),
    to: addresses(e.to),
    cc: addresses(e.cc),
    date: typeof e.date === "string" ? e.date : null,
    subject: text(e.subject),
    text: text(e.text),
    html: typeof e.html === "string" ? e.html : null,
    headers: headers ?? EMPTY_HEADERS,
    attachments: attachments(e.attachments),
    unreadable: typeof e.unreadable === "string" && e.unreadable !== "" ? e.unreadable : null,
  };
}

/** A header's value by lower-case name; own properties only, so "__proto__" or "constructor" find nothing. */
export function headerValue(view: EmailView, lowerName: string): string | null {
  if (!Object.hasOwn(view.headers, lowerName)) return null;
  const value = view.headers[lowerName];
  return typeof value === "string" ? value : null;
}
