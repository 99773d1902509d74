// Sends an email from a mailbox through Graph (POST /users/{mailbox}/sendMail), with the same
// throttling, token renewal and error explanations as every other Graph request.
import { type CallOptions, type GraphApi, userPath } from "./graph-api";

export interface MailAddress {
  address: string;
  name?: string;
}

export interface MailAttachment {
  name: string;
  contentType: string;
  /** The bytes, or their base64 text. */
  content: Buffer | string;
}

export interface MailToSend {
  subject: string;
  body: { contentType: "Text" | "HTML"; content: string };
  toRecipients: (MailAddress | string)[];
  ccRecipients?: (MailAddress | string)[];
  attachments?: MailAttachment[];
  /** Keep a copy in Sent Items (Graph's default). */
  saveToSentItems?: boolean;
}

/** sendMail takes one JSON request of at most 4 MB; attachments grow by a third in base64. */
export const MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024;

/** Graph accepts the message with 202 and delivers it on its own; it has no id to return. */
export async function sendMail(
  api: GraphApi,
  mailbox: string,
  mail: MailToSend,
  opts: CallOptions = {},
): Promise<void> {
  await api.post(`${userPath(mailbox)}/sendMail`, sendMailRequest(mail), { mailbox, ...opts });
}

/** The JSON body of sendMail; throws on what Graph would refuse, before sending anything. */
export function sendMailRequest(mail: MailToSend): object {
  const to = recipients(mail.toRecipients);
  const cc = recipients(mail.ccRecipients ?? []);
  if (to.length + cc.length === 0) throw new Error("sendMail: no recipient");
  const attachments = (mail.attachments ?? []).map((a) => {
    const bytes = typeof a.content === "string" ? Buffer.from(a.content, "base64") : a.content;
    return {
      "@odata.type": "#microsoft.graph.fileAttachment",
      name: a.name,
      contentType: a.contentType || "application/octet-stream",
      contentBytes: bytes.toString("base64"),
      size: bytes.length,
    };
  });
  const total = attachments.reduce((n, a) => n + a.size, 0);
  if (total > MAX_ATTACHMENT_BYTES) {
    throw new Error(
      `sendMail: attachments of ${total} bytes exceed ${MAX_ATTACHMENT_BYTES} (Graph takes at most 4 MB per request)`,
    );
  }
  const message: Record<string, unknown> = {
    subject: mail.subject,
    body: { contentType: mail.body.contentType, content: mail.body.content },
    toRecipients: to,
  };
  if (cc.length > 0) message.ccRecipients = cc;
  if (attachments.length > 0) message.attachments = attachments.map(({ size: _size, ...a }) => a);
  return { message, saveToSentItems: mail.saveToSentItems ?? true };
}

function recipients(list: (MailAddress | string)[]): { emailAddress: MailAddress }[] {
  return list.map((r) => {
    const { address, name } = typeof r === "string" ? { address: r, name: undefined } : r;
    const trimmed = address.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(trimmed)) throw new Error(`sendMail: "${address}" is not an email address`);
    return { emailAddress: name ? { address: trimmed, name } : { address: trimmed } };
  });
}
