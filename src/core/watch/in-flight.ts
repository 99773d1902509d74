// Emails handed to the flow and not settled yet, for the single-gateway watchers of every
// transport: at most one copy of each in flight, an email whose flow never settles it is offered
// again (never dropped), and the parsed copies' spooled attachments are removed only once the
// flow is done with the email: a copy offered before a redelivery may still be read by the flow.

import { discardSpool, type ParsedEmail } from "../mail/parse-email";
import type { EmailRef } from "./watcher";

export interface InFlightEmail<R extends EmailRef = EmailRef> {
  ref: R;
  /** Date.now() when it was emitted. */
  emittedAt: number;
  email: ParsedEmail;
  /** Its size on the server, for the memory bound of what is in flight. */
  size: number;
}

export interface RedeliveryOptions {
  redeliverAfterMs: number;
  /** The uids released: they are to be offered again. */
  onReleased(uids: number[]): void;
  log(level: "warn", message: string): void;
}

export class InFlightEmails<R extends EmailRef = EmailRef> {
  private readonly entries = new Map<number, InFlightEmail<R>>();
  /** Copies emitted before a redelivery, kept until the email is settled or the watcher stops. */
  private readonly released = new Map<number, ParsedEmail[]>();
  private timer: NodeJS.Timeout | undefined;

  get size(): number {
    return this.entries.size;
  }

  /** Server bytes of the emails in flight. */
  get bytes(): number {
    let n = 0;
    for (const f of this.entries.values()) n += f.size;
    return n;
  }

  has(uid: number): boolean {
    return this.entries.has(uid);
  }

  get(uid: number): InFlightEmail<R> | undefined {
    return this.entries.get(uid);
  }

  uids(): number[] {
    return [...this.entries.keys()];
  }

  add(ref: R, email: ParsedEmail, size: number): void {
    this.entries.set(ref.uid, { ref, emittedAt: Date.now(), email, size });
  }

  /** Out of flight at once, so that a concurrent second settlement of the same email is ignored. */
  take(uid: number): InFlightEmail<R> | undefined {
    const entry = this.entries.get(uid);
    this.entries.delete(uid);
    return entry;
  }

  /** Back in flight: its settlement could not be recorded. */
  restore(entry: InFlightEmail<R>): void {
    this.entries.set(entry.ref.uid, entry);
  }

  /** The flow is done with every copy of this email: their spooled files go. */
  async discard(uid: number, entry?: InFlightEmail<R>): Promise<void> {
    if (entry) await discardSpool(entry.email);
    const copies = this.released.get(uid) ?? [];
    this.released.delete(uid);
    for (const email of copies) await discardSpool(email);
  }

  /** Forgets every email (the watcher stops, or the uids mean nothing any more). */
  async clear(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const f of entries) await this.discard(f.ref.uid, f);
    for (const uid of [...this.released.keys()]) await this.discard(uid);
  }

  /** Checks now and then for emails emitted but neither settled nor released in time. */
  watchOverdue(opts: RedeliveryOptions): void {
    clearInterval(this.timer);
    const every = Math.max(1000, Math.min(opts.redeliverAfterMs / 4, 30_000));
    this.timer = setInterval(() => this.releaseOverdue(opts), every);
  }

  stopWatching(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Emails emitted but not settled in time are offered again, never dropped. */
  releaseOverdue(opts: RedeliveryOptions): number[] {
    const now = Date.now();
    const uids: number[] = [];
    for (const [uid, f] of this.entries) {
      if (now - f.emittedAt < opts.redeliverAfterMs) continue;
      this.entries.delete(uid);
      this.released.set(uid, [...(this.released.get(uid) ?? []), f.email]);
      uids.push(uid);
    }
    if (uids.length > 0) {
      opts.log("warn", `${uids.length} email(s) not settled within ${opts.redeliverAfterMs / 1000} s: offering again`);
      opts.onReleased(uids);
    }
    return uids;
  }
}
