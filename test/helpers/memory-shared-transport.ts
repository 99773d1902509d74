// An in-memory mailbox for the shared watcher: one MemoryMailbox, one MemorySharedTransport per
// gateway. Its clock is the "server" clock (offset from the local one at will), and it has knobs
// for what a real server and real people do: two MOVEs of one email that both succeed (Dovecot
// answered both racing sessions with a COPYUID for some UIDs), a gateway cut off, a claim folder
// deleted, an email moved away by hand.
import type {
  Candidate,
  ClaimedItem,
  FetchedEmail,
  LeaseRecord,
  SharedAction,
  SharedTransport,
} from "../../src/core/shared/transport";

export interface StoredEmail {
  id: string;
  messageId: string | null;
  raw: Buffer;
  seen: boolean;
}

export interface SettlementRecord {
  instance: string;
  messageId: string | null;
  action: SharedAction["kind"];
  found: boolean;
}

export class MemoryMailbox {
  /** Added to Date.now() for the server's time stamps. */
  clockOffsetMs = 0;
  /** Delay of every call, ms (a real server answers later than at once). */
  latencyMs = 1;
  /** Two overlapping claim() calls of the same email both get a copy of it. */
  doubleClaims = false;
  readonly watched = new Map<string, StoredEmail>();
  readonly folders = new Map<string, Map<string, StoredEmail>>();
  readonly leases = new Map<string, LeaseRecord>();
  readonly settlements: SettlementRecord[] = [];
  readonly discards: { instance: string; messageId: string | null }[] = [];
  readonly releases: { by: string; instance: string; moved: number }[] = [];
  readonly cut = new Set<string>();
  /** The next calls of a method (by name) that fail, of any transport: e.g. failNext.set("settle", 1). */
  readonly failNext = new Map<string, number>();
  private readonly transports = new Set<MemorySharedTransport>();
  /** Emails that left the watched folder by a claim, by their watched id: for double claims. */
  private readonly claimedFrom = new Map<string, StoredEmail>();
  private nextId = 1;

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  transport(): MemorySharedTransport {
    const t = new MemorySharedTransport(this);
    this.transports.add(t);
    return t;
  }

  newId(): string {
    return String(this.nextId++);
  }

  /** Delivers emails into the watched folder, with the Message-IDs given (null: none). */
  deliver(messageIds: (string | null)[]): void {
    for (const messageId of messageIds) {
      const id = this.newId();
      this.watched.set(id, { id, messageId, raw: rawEmail(messageId), seen: false });
    }
    this.changed();
  }

  changed(): void {
    for (const t of this.transports) t.notifyChange();
  }

  /** Deletes a claim folder with what is in it, as a person in Outlook might. */
  deleteFolder(instance: string): number {
    const folder = this.folders.get(instance);
    this.folders.delete(instance);
    return folder?.size ?? 0;
  }

  /** Moves an email out of a claim folder by hand (into no folder the gateways know). */
  moveAway(instance: string, messageId: string): boolean {
    const folder = this.folders.get(instance);
    for (const [id, email] of folder ?? []) {
      if (email.messageId === messageId) {
        folder?.delete(id);
        return true;
      }
    }
    return false;
  }

  /** Message-IDs in a claim folder. */
  claimedIds(instance: string): (string | null)[] {
    return [...(this.folders.get(instance)?.values() ?? [])].map((e) => e.messageId);
  }

  unreadCount(): number {
    return [...this.watched.values()].filter((e) => !e.seen).length;
  }

  // ---- used by the transports ----

  claim(instance: string, ids: string[], listedBefore: Set<string>): Map<string, string> {
    const folder = this.folderOf(instance);
    const result = new Map<string, string>();
    for (const id of ids) {
      let email = this.watched.get(id);
      if (email && !email.seen) {
        this.watched.delete(id);
        this.claimedFrom.set(id, email);
      } else if (this.doubleClaims && listedBefore.has(id) && this.claimedFrom.has(id)) {
        // The MOVE that lost the race was answered as if it had won: a second copy.
        email = { ...(this.claimedFrom.get(id) as StoredEmail) };
      } else continue;
      const newId = this.newId();
      folder.set(newId, { ...email, id: newId });
      result.set(id, newId);
    }
    return result;
  }

  folderOf(instance: string): Map<string, StoredEmail> {
    const folder = this.folders.get(instance);
    if (!folder) throw new Error(`NO [NONEXISTENT] mailbox "${instance}" does not exist`);
    return folder;
  }

  release(by: string, instance: string): number {
    const folder = this.folders.get(instance);
    let moved = 0;
    for (const email of folder?.values() ?? []) {
      const id = this.newId();
      this.watched.set(id, { ...email, id, seen: false });
      moved++;
    }
    this.folders.delete(instance);
    for (const [key, lease] of this.leases) if (lease.instance === instance) this.leases.delete(key);
    this.releases.push({ by, instance, moved });
    if (moved > 0) this.changed();
    return moved;
  }
}

export class MemorySharedTransport implements SharedTransport {
  private instance = "";
  private readonly changeListeners: (() => void)[] = [];
  private readonly closedListeners: ((err: unknown) => void)[] = [];
  /** How many calls this transport made, by method. */
  readonly calls = new Map<string, number>();

  constructor(private readonly box: MemoryMailbox) {}

  notifyChange(): void {
    if (!this.instance || this.box.cut.has(this.instance)) return;
    setImmediate(() => {
      for (const l of this.changeListeners) l();
    });
  }

  private async call<T>(name: string, work: () => T): Promise<T> {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
    const cutBefore = this.box.cut.has(this.instance);
    await new Promise((r) => setTimeout(r, this.box.latencyMs));
    if (cutBefore || this.box.cut.has(this.instance)) throw new Error(`${name}: connection cut off`);
    const failing = this.box.failNext.get(name) ?? 0;
    if (failing > 0) {
      this.box.failNext.set(name, failing - 1);
      throw new Error(`${name}: server said NO`);
    }
    return work();
  }

  async open(instance: string): Promise<void> {
    this.instance = instance;
    await this.call("open", () => {
      if (!this.box.folders.has(instance)) this.box.folders.set(instance, new Map());
    });
  }

  async close(): Promise<void> {}

  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  onClosed(listener: (err: unknown) => void): void {
    this.closedListeners.push(listener);
  }

  listWatched(limit: number): Promise<Candidate[]> {
    return this.call("listWatched", () =>
      [...this.box.watched.values()]
        .filter((e) => !e.seen)
        .slice(0, limit)
        .map((e) => ({ id: e.id, key: e.id })),
    );
  }

  async claim(ids: string[]): Promise<Map<string, string>> {
    // What was there when the command started: a racing MOVE of those may "win" too.
    const listedBefore = new Set(ids.filter((id) => this.box.watched.has(id)));
    return this.call("claim", () => this.box.claim(this.instance, ids, listedBefore));
  }

  listClaimed(instance: string): Promise<ClaimedItem[]> {
    return this.call("listClaimed", () => {
      const folder = this.box.folders.get(instance);
      // A peer's folder may be gone (released); our own missing is an error, as on a server.
      if (!folder && instance === this.instance) throw new Error(`mailbox "${instance}" does not exist`);
      return [...(folder?.values() ?? [])].map((e) => ({ id: e.id, messageId: e.messageId }));
    });
  }

  async *fetch(ids: string[]): AsyncIterable<FetchedEmail> {
    const found = await this.call("fetch", () => {
      const folder = this.box.folderOf(this.instance);
      return ids.flatMap((id) => {
        const e = folder.get(id);
        return e ? [e] : [];
      });
    });
    for (const e of found) yield { id: e.id, source: e.raw, size: e.raw.length, receivedAt: null };
  }

  settle(id: string, action: SharedAction): Promise<boolean> {
    return this.call("settle", () => {
      const folder = this.box.folderOf(this.instance);
      const email = folder.get(id);
      this.box.settlements.push({
        instance: this.instance,
        messageId: email?.messageId ?? null,
        action: action.kind,
        found: !!email,
      });
      if (!email) return false;
      folder.delete(id);
      if (action.kind === "seen" || action.kind === "none") {
        const newId = this.box.newId();
        this.box.watched.set(newId, { ...email, id: newId, seen: true });
      } else if (action.kind === "move") {
        const target = this.box.folders.get(action.folder) ?? new Map<string, StoredEmail>();
        this.box.folders.set(action.folder, target);
        target.set(id, email);
      }
      return true;
    });
  }

  discard(id: string): Promise<void> {
    return this.call("discard", () => {
      const folder = this.box.folderOf(this.instance);
      this.box.discards.push({ instance: this.instance, messageId: folder.get(id)?.messageId ?? null });
      folder.delete(id);
    });
  }

  release(instance: string): Promise<number> {
    return this.call("release", () => this.box.release(this.instance, instance));
  }

  renewLease(instance: string, nonce: string): Promise<number> {
    return this.call("renewLease", () => {
      const renewedAt = this.box.now();
      this.box.leases.set(`${instance}\n${nonce}`, { instance, nonce, renewedAt });
      return renewedAt;
    });
  }

  readLeases(): Promise<LeaseRecord[]> {
    return this.call("readLeases", () => [...this.box.leases.values()].map((l) => ({ ...l })));
  }

  listInstances(): Promise<string[]> {
    return this.call("listInstances", () =>
      [...this.box.folders.keys()].filter((name) => !name.startsWith("Review") && name !== "Done"),
    );
  }
}

export function rawEmail(messageId: string | null): Buffer {
  const header = messageId ? `Message-ID: <${messageId}>\r\n` : "";
  return Buffer.from(
    `From: camera@example.com\r\nTo: alarms@example.com\r\nSubject: alarm ${messageId ?? "?"}\r\n${header}` +
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nmotion detected\r\n",
  );
}
