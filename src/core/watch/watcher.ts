// The mailbox interface: what every watcher offers the email-connector, whatever the transport
// (IMAP, Graph) and whatever the mode (one gateway, or several sharing the mailbox). An email is
// emitted with a ref, travels through the flow as plain data, and is settled by that ref once
// its alarm is safe downstream; until then it stays where the next process would find it again.

import type { ParsedEmail } from "../mail/parse-email";

/** Which emails of the watched folder are alarms: the unread ones, or those arriving from now on. */
export type TakeMode = "unseen" | "new";

/**
 * The flow is done with an email. accepted: its alarm is safe downstream; rejected: it cannot
 * become an alarm (review folder); retry: offer it again now.
 */
export type Outcome = "accepted" | "rejected" | "retry";

/** Identity of an email as it travels through a flow; plain data so Node-RED can clone it. */
export interface EmailRef {
  uidValidity: string;
  uid: number;
  messageId: string | null;
}

export interface WatchedEmail {
  ref: EmailRef;
  email: ParsedEmail;
  size: number;
  /** When the server received it (IMAP INTERNALDATE, Graph receivedDateTime), ISO 8601. */
  receivedAt: string | null;
}

export type WatcherState =
  | { kind: "connecting" }
  | { kind: "watching"; inFlight: number }
  | { kind: "reconnecting"; inMs: number; reason: string }
  | { kind: "error"; reason: string; inMs: number };

/** Whether an alarm whose email a shared watcher holds may go on the wire now. */
export type DeliveryClearance =
  /** This gateway's claim on the email is current (its lease is fresh). */
  | "yes"
  /** Not sure now (lease not renewed lately, connector not running): keep the alarm, ask again. */
  | "wait"
  /** Another gateway took the email over (or won it in a tie-break): it raises the alarm, not us. */
  | "lost";

export interface Watcher {
  start(): void;
  /** Stops watching; settlements already made are carried out first where the transport allows. */
  stop(): Promise<void>;
  readonly inFlightCount: number;
  /** False when the ref is not in flight (already settled, or of another watcher). */
  settle(ref: EmailRef, outcome: Outcome): Promise<boolean>;
  /** Shared mode: the alarm is durable downstream; keep the email claimed until it is settled on the ACK. */
  hold?(ref: EmailRef): Promise<boolean>;
  /** Shared mode: asked before each transmission of a held email's alarm. */
  mayDeliver?(ref: EmailRef): DeliveryClearance;
}

/** The watcher cannot work as configured (missing folder, ...): retried slowly, shown in red. */
export class ConfigurationError extends Error {
  override readonly name = "ConfigurationError";
}
