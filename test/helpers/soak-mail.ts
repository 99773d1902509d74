// Mail side of the soak harness: alarm emails that can be counted one by one at the receiver (each
// has its own account), bursts appended over several IMAP sessions, and what Dovecot still holds unread.
import { ImapFlow } from "imapflow";
import type { MailStack } from "./mail-stack";
import { MAILBOX } from "./tenant";

/** The password user the mail stack creates for the mailbox owner (see mail-stack.ts). */
const OWNER_PASSWORD = "password-for-the-anchor";

/**
 * A unique DC-09 account (3-16 hex digits): a short tag (hex) for the burst and the email's number.
 * The receiver reports the account of each frame, so every email can be counted.
 */
export function soakAccount(tag: string, n: number): string {
  return `${tag}${String(n).padStart(6, "0")}`.toUpperCase();
}

/** The classic four-line alarm email (the example flow's data-map preset) for one account. */
export function soakAlarmEmail(account: string, opts: { zone?: number; subject?: string } = {}): string {
  const zone = opts.zone ?? 1;
  return (
    `From: Panel ${account} <panel-${account.toLowerCase()}@site.contoso.test>\r\nTo: ${MAILBOX}\r\n` +
    `Subject: ${opts.subject ?? "Alarm"}\r\nMessage-ID: <soak-${account.toLowerCase()}@site.contoso.test>\r\n` +
    `Date: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    `${account}\r\nBA\r\n${zone}\r\n1\r\n`
  );
}

/** The same alarm from a camera: the four lines, then a clip of `bytes` (base64 in 76-char lines). */
export function soakAlarmWithClip(account: string, bytes: number): string {
  const clip = Buffer.alloc(bytes, account.charCodeAt(account.length - 1))
    .toString("base64")
    .replace(/.{76}/g, "$&\r\n");
  return (
    `From: Camera <cam-${account.toLowerCase()}@site.contoso.test>\r\nTo: ${MAILBOX}\r\nSubject: Alarm\r\n` +
    `Message-ID: <soak-${account.toLowerCase()}@site.contoso.test>\r\nDate: ${new Date().toUTCString()}\r\n` +
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=clip\r\n\r\n--clip\r\n" +
    `Content-Type: text/plain; charset=utf-8\r\n\r\n${account}\r\nBA\r\n1\r\n1\r\n--clip\r\n` +
    "Content-Type: video/mp4; name=clip.mp4\r\nContent-Disposition: attachment; filename=clip.mp4\r\n" +
    `Content-Transfer-Encoding: base64\r\n\r\n${clip}\r\n--clip--\r\n`
  );
}

function ownerSession(stack: MailStack): ImapFlow {
  const client = new ImapFlow({
    host: "127.0.0.1",
    port: stack.dovecot.imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: MAILBOX, pass: OWNER_PASSWORD },
    disableAutoIdle: true,
    logger: false,
  } as ConstructorParameters<typeof ImapFlow>[0]);
  client.on("error", () => undefined); // surfaced by the failing command
  return client;
}

export interface AppendReport {
  /** UIDs in the order of `emails`; null where the server refused the email. */
  uids: (number | null)[];
  refused: { index: number; reason: string }[];
  ms: number;
}

/**
 * Appends emails over `sessions` parallel sessions of the mailbox owner (one session answers one
 * APPEND at a time). With one session the UIDs follow the order given. A refused APPEND is
 * reported, not thrown: hostile emails may be refused by the server itself.
 */
export async function appendEmails(
  stack: MailStack,
  emails: (i: number) => string | Buffer,
  count: number,
  opts: { sessions?: number; folder?: string; spacingMs?: number } = {},
): Promise<AppendReport> {
  const started = performance.now();
  const uids: (number | null)[] = new Array(count).fill(null);
  const refused: AppendReport["refused"] = [];
  const clients = Array.from({ length: Math.max(1, Math.min(opts.sessions ?? 4, count)) }, () => ownerSession(stack));
  await Promise.all(clients.map((c) => c.connect()));
  let next = 0;
  try {
    await Promise.all(
      clients.map(async (client) => {
        for (let i = next++; i < count; i = next++) {
          try {
            const result = await client.append(opts.folder ?? "INBOX", emails(i), []);
            uids[i] = result && typeof result.uid === "number" ? result.uid : null;
            if (uids[i] === null) refused.push({ index: i, reason: "no APPENDUID" });
          } catch (err) {
            const e = err as { responseText?: string; message?: string };
            refused.push({ index: i, reason: e.responseText || e.message || String(err) });
            if (!client.usable) throw err; // the session is gone: not the email's fault
          }
          if (opts.spacingMs) await new Promise((r) => setTimeout(r, opts.spacingMs));
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.logout().catch(() => c.close())));
  }
  return { uids, refused, ms: performance.now() - started };
}

export interface FolderState {
  total: number;
  unseen: number[];
  seen: number[];
  /** Message-ID (without brackets) of each UID, where the email has one. */
  messageIds: Map<number, string>;
}

/** Flags of every email in a folder, read by the mailbox owner (not by the gateway's session). */
export async function folderState(stack: MailStack, folder = "INBOX"): Promise<FolderState> {
  const client = ownerSession(stack);
  await client.connect();
  try {
    const lock = await client.getMailboxLock(folder, { readOnly: true });
    const state: FolderState = { total: 0, unseen: [], seen: [], messageIds: new Map() };
    try {
      if (client.mailbox === false || client.mailbox.exists === 0) return state;
      for await (const m of client.fetch("1:*", { uid: true, flags: true, envelope: true })) {
        state.total++;
        (m.flags?.has("\\Seen") ? state.seen : state.unseen).push(m.uid);
        const id = m.envelope?.messageId?.replace(/^<|>$/g, "");
        if (id) state.messageIds.set(m.uid, id);
      }
    } finally {
      lock.release();
    }
    return state;
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Polls until `check` returns a value (not undefined), or throws after timeoutMs with `what()`. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: () => string,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
