// Shared mode: several active gateways watch one mailbox and the mailbox itself is the queue.
// This file is the one interface a mailbox transport implements (IMAP, Graph, a third one);
// the claim, lease, takeover, tie-break and settle-on-ACK logic lives once, in
// shared-watcher.ts, and knows nothing of either protocol.
//
// Layout in the mailbox (names relative to the coordination folder, default "Alarm gateways",
// at the top level of the mailbox):
//   <base>/Leases        one small item per live gateway, renewed every few seconds; its age is
//                        read from the server's own time stamps (IMAP INTERNALDATE of an APPEND,
//                        Graph lastModifiedDateTime of a PATCH), never from a local clock
//   <base>/<instance>    the claim folder of one gateway: the emails it holds until their alarms
//                        are ACKed by the receiver
//
// What the design relies on, per transport (see ../../../README.md "Two gateways for high
// availability" and ../../../../shared/o365.md): IMAP MOVE + UIDPLUS (COPYUID, APPENDUID,
// UID EXPUNGE), no keywords, no CONDSTORE; Graph `POST /messages/{id}/move` with the default
// (not immutable) ids, so that a late mover gets 404 ErrorItemNotFound.
import type { Readable } from "node:stream";
import type { ServerAction } from "../mail/progress-store";

/** An unread email in the watched folder, not yet claimed by anybody. */
export interface Candidate {
  /** Transport id in the watched folder (IMAP: the UID as text; Graph: the message id). */
  id: string;
  /**
   * What the instances split the work by: the same text for every instance that lists this email
   * (IMAP: the UID in the watched folder; Graph: the message id).
   */
  key: string;
}

/** An email in a claim folder. */
export interface ClaimedItem {
  /** Transport id in that claim folder (IMAP: UID as text; Graph: message id). */
  id: string;
  /** Bare Message-ID (no angle brackets), null when the email has none. */
  messageId: string | null;
}

export interface FetchedEmail {
  /** Claimed id, as given to fetch(). */
  id: string;
  source: Buffer | Readable;
  /** Size on the server in bytes. */
  size: number;
  /** When the server received it, ISO 8601. */
  receivedAt: string | null;
}

/** One gateway's lease as the mailbox shows it. */
export interface LeaseRecord {
  instance: string;
  /** Random per process start: a second process with the same instance id has another one. */
  nonce: string;
  /** The server's time stamp of the lease's last renewal, ms since the epoch, server clock. */
  renewedAt: number;
}

/** What settling an email in shared mode does; "seen" means: mark read and put it back in the watched folder. */
export type SharedAction = ServerAction;

export interface SharedTransport {
  /**
   * Connects, and creates the coordination folder, the Leases folder and this instance's claim
   * folder when missing. Throws ConfigurationError (../mail/mailbox-watcher) when that is not
   * possible (no permission, a folder name the server refuses).
   */
  open(instance: string): Promise<void>;
  close(): Promise<void>;
  /** New mail may be waiting in the watched folder (IMAP EXISTS / IDLE, Graph poll or delta). */
  onChange(listener: () => void): void;
  /** The connection broke; the watcher reopens it with backoff. */
  onClosed(listener: (err: unknown) => void): void;

  /** Unread emails in the watched folder, oldest first, at most `limit`. */
  listWatched(limit: number): Promise<Candidate[]>;
  /**
   * Moves emails of the watched folder into this instance's claim folder. The result maps each
   * candidate id that this call moved to its id in the claim folder; ids absent from the result
   * were not moved (another gateway took them first, or they are gone). The ids come from this
   * transport's own latest listWatched (IMAP claims on the session that listed them, without
   * asking the server for news first).
   */
  claim(ids: string[]): Promise<Map<string, string>>;
  /** Emails in the claim folder of `instance` (this one or a peer): ids and Message-IDs. */
  listClaimed(instance: string): Promise<ClaimedItem[]>;
  /** Emails of this instance's claim folder, whole, in the order given; missing ones are skipped. */
  fetch(ids: string[]): AsyncIterable<FetchedEmail>;
  /**
   * Carries out a settlement on an email of this instance's claim folder: "seen" marks it read
   * and moves it back to the watched folder, "move" moves it to that folder, "delete" deletes it,
   * "none" marks it read and moves it back (rejected without a review folder). Resolves false
   * when the email is no longer in the claim folder (moved away by hand, taken over).
   */
  settle(id: string, action: SharedAction): Promise<boolean>;
  /** Deletes this instance's copy of an email another gateway also claimed (tie-break lost). */
  discard(id: string): Promise<void>;
  /**
   * A peer's lease expired: moves every email of its claim folder back into the watched folder
   * (unread), then deletes its lease items. The folder stays: a gateway wrongly taken for dead may
   * have a claim into it in flight, and deleting a folder deletes (IMAP) or hides (Graph: Deleted
   * Items) what it holds. Returns how many emails were moved.
   */
  release(instance: string): Promise<number>;

  /** Renews (or first writes) this instance's lease; resolves the server's time stamp of it. */
  renewLease(instance: string, nonce: string): Promise<number>;
  /** Every lease in the Leases folder (at most the newest per instance and nonce). */
  readLeases(): Promise<LeaseRecord[]>;
  /**
   * Instances that have a claim folder under the coordination folder (Leases excluded), whether
   * or not they hold a lease: a folder without a lease is released like an expired one.
   */
  listInstances(): Promise<string[]>;
}

export const DEFAULT_COORDINATION_FOLDER = "Alarm gateways";
export const LEASES_FOLDER = "Leases";
