// The line-driver's durable outbox: an alarm is accepted once its record is written to an
// append-only log and flushed, because accepting settles the source email upstream and from then
// on the log is the only copy. Concurrent writers share one write + fdatasync (group commit);
// the log is rewritten from the live state (atomically: temp file, fsync, rename, fsync dir)
// when it grows. Crash points are marked "crash:" with what a restart finds there.
import { constants } from "node:fs";
import { copyFile, type FileHandle, open, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { PRIVATE_FILE_MODE, privateDir, privateFile } from "../private-files";
import { syncDir } from "../sync-dir";
import { encodeJson, encodeRecord, LOG_VERSION, type LogRecord, type OutboxOutcome, parseLog } from "./records";

export type { OutboxOutcome } from "./records";

export interface OutboxEntry<T> {
  id: number;
  key: string | null;
  payload: T;
  acceptedAt: number;
  attempts: number;
}

/** An entry the receiver refused: out of the delivery order, kept until someone queues it again. */
export interface RefusedEntry<T> extends OutboxEntry<T> {
  refusedAt: number;
  reason: string;
  /** The receiver's answer as it arrived. */
  answer?: string;
  /** Which receiver, e.g. "primary 10.0.0.5:12345". */
  detail?: string;
}

export interface OutboxOptions {
  /** Created if missing; the outbox owns the files in it. */
  dir: string;
  /** Keys of entries accepted (pending or done) within this window are duplicates. Default 24 h. */
  dedupeWindowMs?: number;
  /** Compact when the log grows past this (and past twice its last compacted size). Default 8 MiB. */
  maxLogBytes?: number;
  /** Default true; false only for benches of the non-durable cost. */
  fsync?: boolean;
  /** Problems found while running that do not fail a caller (a compaction that could not be done). */
  onProblem?: (message: string) => void;
}

export interface OutboxStats {
  /** Records made durable since open. */
  records: number;
  /** Batches written (one write + one fdatasync each). */
  commits: number;
  /** fdatasync calls on the log (commits, repairs and compactions). */
  syncs: number;
  compactions: number;
  logBytes: number;
}

/** A change that could not be made durable; the in-memory state does not include it. */
export class OutboxWriteError extends Error {
  override readonly name = "OutboxWriteError";
}

const LOG = "outbox.log";
const TMP = "outbox.log.compacting";
const DAY_MS = 24 * 60 * 60 * 1000;
const BATCH_BYTES = 4 * 1024 * 1024;

interface QueuedWrite {
  bytes: Buffer;
  what: string;
  apply: () => void;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface KeyInfo {
  id: number;
  at: number;
}

export class Outbox<T> {
  // Two outboxes appending to one log would interleave records; Node-RED may deploy two nodes on one dir.
  private static readonly openDirs = new Set<string>();

  private readonly entries = new Map<number, OutboxEntry<T>>(); // pending, in id (= acceptance) order
  private readonly refused = new Map<number, RefusedEntry<T>>();
  private readonly keys = new Map<string, KeyInfo>(); // roughly in acceptance order, for pruning
  private readonly meta = new Map<string, string>();
  private readonly inflight = new Map<string, Promise<number>>(); // keys whose accept is being written
  private nextId = 1;
  private queue: QueuedWrite[] = [];
  private draining: Promise<void> | undefined;
  /** Bytes of the log known to be complete records; appends go here. */
  private logSize = 0;
  /** A failed write may have left bytes past logSize: cut them before the next append. */
  private tailSuspect = false;
  /** A rename into the directory is not yet known durable: no append is acknowledged until it is. */
  private dirSyncOwed = false;
  private compactAt: number;
  private closed = false;
  private acceptsSincePrune = 0;
  private readonly counters = { records: 0, commits: 0, syncs: 0, compactions: 0 };

  private constructor(
    private readonly dir: string,
    private fd: FileHandle | undefined,
    private readonly windowMs: number,
    private readonly maxLogBytes: number,
    private readonly fsync: boolean,
    private readonly onProblem: (message: string) => void,
  ) {
    this.compactAt = maxLogBytes;
  }

  static async open<T>(opts: OutboxOptions): Promise<{ outbox: Outbox<T>; problems: string[] }> {
    const dir = resolve(opts.dir);
    if (Outbox.openDirs.has(dir)) throw new Error(`outbox ${dir} is already open in this process`);
    Outbox.openDirs.add(dir);
    try {
      return await Outbox.load<T>(dir, opts);
    } catch (err) {
      Outbox.openDirs.delete(dir);
      throw new Error(`outbox ${dir} cannot be opened: ${describe(err)}`, { cause: err });
    }
  }

  private static async load<T>(dir: string, opts: OutboxOptions): Promise<{ outbox: Outbox<T>; problems: string[] }> {
    const fsync = opts.fsync ?? true;
    const created = await privateDir(dir);
    if (created && fsync) await syncDir(dirname(created)); // the new directory's own entry must survive too
    // crash: a leftover temp file is an unfinished compaction; the log beside it is complete.
    await rm(join(dir, TMP), { force: true });
    const outbox = new Outbox<T>(
      dir,
      undefined,
      opts.dedupeWindowMs ?? DAY_MS,
      opts.maxLogBytes ?? 8 * 1024 * 1024,
      fsync,
      opts.onProblem ?? (() => {}),
    );
    const problems: string[] = [];
    let fd: FileHandle;
    try {
      fd = await open(join(dir, LOG), constants.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await outbox.compact(); // a first start: writes an empty log the same crash-safe way
      return { outbox, problems };
    }
    outbox.fd = fd;
    try {
      await privateFile(fd);
      const parsed = parseLog(await fd.readFile());
      problems.push(...parsed.problems);
      outbox.replay(parsed.records);
      outbox.logSize = parsed.completeLength;
      if (parsed.damaged) {
        // Keep the evidence before anything is cut or rewritten.
        const kept = `${LOG}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}`;
        await copyFile(join(dir, LOG), join(dir, kept));
        problems.push(`damaged log kept as ${kept}`);
      }
      if ((await fd.stat()).size > parsed.completeLength) {
        // Cut the torn tail so the next append starts on a line of its own.
        // crash: before or after the truncate, the tail is torn or gone: both read the same.
        await fd.truncate(parsed.completeLength);
        if (fsync) await outbox.sync(fd);
      }
      // A damaged log is rewritten from its intact records so the same complaint does not recur at every start.
      if (parsed.damaged || outbox.logSize > outbox.maxLogBytes) {
        try {
          await outbox.compact();
        } catch (err) {
          // Appending to the old log still works: stay available, say so, try again as it grows.
          outbox.compactAt = outbox.logSize + outbox.maxLogBytes / 4;
          problems.push(`the log could not be rewritten (${describe(err)}); appending to it as it is`);
        }
      }
    } catch (err) {
      await outbox.fd?.close().catch(() => {});
      throw err;
    }
    return { outbox, problems };
  }

  /** Resolves once the entry is durable; a key seen within the window returns the original id instead. */
  async accept(payload: T, key: string | null): Promise<{ id: number; duplicate: boolean }> {
    this.assertOpen();
    if (key !== null) {
      for (;;) {
        const known = this.keys.get(key);
        if (known && Date.now() - known.at < this.windowMs) return { id: known.id, duplicate: true };
        const racing = this.inflight.get(key);
        if (!racing) break;
        try {
          return { id: await racing, duplicate: true };
        } catch {
          // The first copy was not accepted: this one tries on its own (after re-checking).
        }
      }
    }
    this.assertOpen(); // again: close() may have run while this waited for a racing copy
    const payloadJson = JSON.stringify(payload);
    if (payloadJson === undefined) throw new TypeError("outbox payload must be JSON-serialisable");
    // What pending() hands out is what a restart would read back, not the caller's live object.
    const stored = JSON.parse(payloadJson) as T;
    const id = this.nextId++;
    const at = Date.now();
    const line = encodeJson(`{"t":"acc","id":${id},"k":${JSON.stringify(key)},"at":${at},"p":${payloadJson}}`);
    const written = this.enqueue(line, "alarm NOT accepted", () => {
      this.entries.set(id, { id, key, payload: stored, acceptedAt: at, attempts: 0 });
      if (key !== null) this.rememberKey(key, id, at);
    }).then(() => id);
    if (key !== null) {
      this.inflight.set(key, written);
      const forget = () => {
        if (this.inflight.get(key) === written) this.inflight.delete(key);
      };
      written.then(forget, forget);
    }
    if (++this.acceptsSincePrune >= 1024) this.pruneKeys(Date.now());
    return { id: await written, duplicate: false };
  }

  /** Whether accept() would call an entry with this key a duplicate now (without waiting for a racing copy). */
  knows(key: string | null): boolean {
    if (key === null) return false;
    const known = this.keys.get(key);
    return (known !== undefined && Date.now() - known.at < this.windowMs) || this.inflight.has(key);
  }

  /** Entries not yet done, in acceptance order. */
  pending(): OutboxEntry<T>[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  /** The oldest entry not yet done, passing over `skip` (e.g. ids whose outcome is being written). */
  peek(skip?: ReadonlySet<number>): OutboxEntry<T> | undefined {
    for (const entry of this.entries.values()) if (!skip?.has(entry.id)) return { ...entry };
    return undefined;
  }

  async recordAttempt(id: number): Promise<void> {
    this.assertOpen();
    if (!this.entries.has(id)) return;
    await this.enqueue(encodeRecord({ t: "att", id }), "attempt not recorded", () => {
      const entry = this.entries.get(id);
      if (entry) entry.attempts++;
    });
  }

  /** Durable; the entry leaves pending() once the record is on disk. Unknown or done ids are ignored. */
  async finish(id: number, outcome: OutboxOutcome): Promise<void> {
    this.assertOpen();
    if (!this.entries.has(id)) return;
    await this.enqueue(encodeRecord({ t: "fin", id, o: outcome }), "outcome NOT recorded", () => {
      this.settle(id, outcome);
    });
  }

  /** Where an entry accept() returned is now: still to be delivered, refused, or done. */
  stateOf(id: number): "pending" | "refused" | "done" {
    if (this.entries.has(id)) return "pending";
    return this.refused.has(id) ? "refused" : "done";
  }

  /** Refused entries, oldest refusal first. */
  refusedEntries(): RefusedEntry<T>[] {
    return [...this.refused.values()].map((e) => ({ ...e }));
  }

  get refusedCount(): number {
    return this.refused.size;
  }

  /** Puts a refused entry back in the delivery order (after those pending); false when no such refused entry. */
  async requeue(id: number): Promise<boolean> {
    this.assertOpen();
    if (!this.refused.has(id)) return false;
    await this.enqueue(encodeRecord({ t: "rq", id, at: Date.now() }), "resend NOT recorded", () => {
      this.unrefuse(id);
    });
    return true;
  }

  private settle(id: number, outcome: OutboxOutcome): void {
    const entry = this.entries.get(id);
    this.entries.delete(id);
    if (!entry || outcome.kind !== "refused") return;
    const { at: refusedAt, reason, answer, detail } = outcome;
    this.refused.set(id, { ...entry, refusedAt, reason, answer, detail });
  }

  private unrefuse(id: number): void {
    const r = this.refused.get(id);
    if (!r) return;
    this.refused.delete(id);
    this.entries.set(id, { id: r.id, key: r.key, payload: r.payload, acceptedAt: r.acceptedAt, attempts: r.attempts });
  }

  getMeta(name: string): string | undefined {
    return this.meta.get(name);
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.assertOpen();
    if (typeof name !== "string" || typeof value !== "string") throw new TypeError("outbox meta is string → string");
    await this.enqueue(encodeRecord({ t: "meta", n: name, v: value }), `meta ${name} NOT saved`, () => {
      this.meta.set(name, value);
    });
  }

  /** Pending count. */
  get size(): number {
    return this.entries.size;
  }

  get stats(): OutboxStats {
    return { ...this.counters, logBytes: this.logSize };
  }

  /** Waits for every queued write, then closes the log; later calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.draining) await this.draining;
    try {
      await this.fd?.close();
    } finally {
      this.fd = undefined;
      Outbox.openDirs.delete(this.dir);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("outbox is closed");
  }

  private replay(records: LogRecord[]): void {
    for (const r of records) {
      switch (r.t) {
        case "hdr":
          if (r.v > LOG_VERSION) throw new Error(`log version ${r.v} is newer than this code (${LOG_VERSION})`);
          this.nextId = Math.max(this.nextId, r.next);
          break;
        case "acc":
          this.entries.set(r.id, { id: r.id, key: r.k, payload: r.p as T, acceptedAt: r.at, attempts: r.a ?? 0 });
          if (r.k !== null) this.rememberKey(r.k, r.id, r.at);
          this.nextId = Math.max(this.nextId, r.id + 1);
          break;
        case "att": {
          const entry = this.entries.get(r.id);
          if (entry) entry.attempts++;
          break;
        }
        case "fin":
          this.settle(r.id, r.o);
          this.nextId = Math.max(this.nextId, r.id + 1);
          break;
        case "rq":
          this.unrefuse(r.id);
          break;
        case "key":
          this.rememberKey(r.k, r.id, r.at);
          this.nextId = Math.max(this.nextId, r.id + 1);
          break;
        case "meta":
          this.meta.set(r.n, r.v);
          break;
      }
    }
  }

  private rememberKey(key: string, id: number, at: number): void {
    this.keys.delete(key); // re-inserted at the end, so the map stays in acceptance order
    this.keys.set(key, { id, at });
  }

  /** Forgets keys past the window, oldest first; a clock step may leave a few until a later pass. */
  private pruneKeys(now: number): void {
    this.acceptsSincePrune = 0;
    for (const [key, info] of this.keys) {
      if (now - info.at < this.windowMs) break;
      this.keys.delete(key);
    }
  }

  private enqueue(bytes: Buffer, what: string, apply: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes, what, apply, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.draining) return; // the running drain picks the new write up with its next batch
    // setImmediate, not an immediate write: writes issued in the same turn share the first batch.
    this.draining = new Promise<void>((r) => setImmediate(r))
      .then(() => this.drain())
      .catch((err: unknown) => this.onProblem(`outbox writer failed unexpectedly: ${describe(err)}`))
      .finally(() => {
        this.draining = undefined;
        if (this.queue.length > 0) this.kick();
      });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      await this.commit(this.takeBatch());
      await this.maybeCompact();
    }
  }

  private takeBatch(): QueuedWrite[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes.length <= BATCH_BYTES)) {
      bytes += this.queue[n]!.bytes.length;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** One write + one fdatasync for the whole batch; every caller learns the batch's fate. */
  private async commit(batch: QueuedWrite[]): Promise<void> {
    const bytes = batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((w) => w.bytes));
    try {
      const fd = this.fd;
      if (!fd) throw new Error("log not open");
      if (this.tailSuspect) {
        // crash: before this cut, the failed batch's bytes may replay as accepted (at-least-once, never lost).
        await fd.truncate(this.logSize);
        if (this.fsync) await this.sync(fd);
        this.tailSuspect = false;
      }
      if (this.dirSyncOwed) {
        await syncDir(this.dir);
        this.dirSyncOwed = false;
      }
      this.tailSuspect = true;
      // crash: mid-write leaves a torn tail, ignored at open; no caller has been told "accepted".
      await writeAll(fd, bytes, this.logSize);
      // crash: written but not flushed: survives a process kill, maybe not a power cut; nobody was told yet.
      if (this.fsync) await this.sync(fd);
      this.tailSuspect = false;
    } catch (err) {
      // Nothing of the batch is applied in memory: no caller may believe it was accepted.
      const msg = `outbox write failed, ${batch.length > 1 ? "batch" : "change"} not durable (${describe(err)})`;
      for (const w of batch) w.reject(new OutboxWriteError(`${msg}: ${w.what}`, { cause: err }));
      return;
    }
    // crash: from here on every record of the batch is durable; callers may settle their emails.
    this.logSize += bytes.length;
    this.counters.commits++;
    this.counters.records += batch.length;
    for (const w of batch) {
      w.apply();
      w.resolve();
    }
  }

  private async maybeCompact(): Promise<void> {
    if (this.logSize <= this.compactAt) return;
    try {
      await this.compact();
    } catch (err) {
      // The old log is still the log and appends to it still work: try again after more growth.
      this.compactAt = this.logSize + this.maxLogBytes / 4;
      this.onProblem(`outbox compaction failed, will retry later: ${describe(err)}`);
    }
  }

  /** Rewrites the live state into a fresh log and swaps it in atomically. Runs between batches only. */
  private async compact(): Promise<void> {
    const now = Date.now();
    this.pruneKeys(now);
    const parts: Buffer[] = [encodeRecord({ t: "hdr", v: LOG_VERSION, next: this.nextId })];
    for (const [n, v] of this.meta) parts.push(encodeRecord({ t: "meta", n, v }));
    for (const [k, info] of this.keys) {
      // Keys of pending and refused entries travel in their acc records below.
      if (!this.entries.has(info.id) && !this.refused.has(info.id) && now - info.at < this.windowMs)
        parts.push(encodeRecord({ t: "key", k, ...info }));
    }
    // A refused entry is its acceptance and its refusal, as when it happened.
    for (const e of this.refused.values()) {
      const a = e.attempts > 0 ? e.attempts : undefined;
      parts.push(encodeRecord({ t: "acc", id: e.id, k: e.key, at: e.acceptedAt, a, p: e.payload }));
      const o: OutboxOutcome = {
        kind: "refused",
        at: e.refusedAt,
        reason: e.reason,
        answer: e.answer,
        detail: e.detail,
      };
      parts.push(encodeRecord({ t: "fin", id: e.id, o }));
    }
    for (const e of this.entries.values()) {
      const a = e.attempts > 0 ? e.attempts : undefined;
      parts.push(encodeRecord({ t: "acc", id: e.id, k: e.key, at: e.acceptedAt, a, p: e.payload }));
    }
    const bytes = Buffer.concat(parts);
    const tmpPath = join(this.dir, TMP);
    const tmp = await open(tmpPath, "w", PRIVATE_FILE_MODE);
    try {
      // crash: a partial temp file; the old log is untouched and the temp file is removed at open.
      await writeAll(tmp, bytes, 0);
      if (this.fsync) await this.sync(tmp);
      // crash: a complete temp file, still not the log: removed at open, the old log is used.
      await rename(tmpPath, join(this.dir, LOG));
    } catch (err) {
      await tmp.close().catch(() => {});
      await rm(tmpPath, { force: true }).catch(() => {});
      throw err;
    }
    // crash: the rename may not be durable yet: the name holds the old or the new log, both complete.
    const old = this.fd;
    this.fd = tmp; // same inode as the new log: appends continue on it
    this.logSize = bytes.length;
    this.tailSuspect = false;
    this.dirSyncOwed = this.fsync; // until the directory is synced no append is acknowledged (see commit)
    this.counters.compactions++;
    this.compactAt = Math.max(this.maxLogBytes, 2 * bytes.length); // live state near the limit must not thrash
    await old?.close().catch(() => {});
    if (this.dirSyncOwed) {
      await syncDir(this.dir);
      // crash: from here the new log is the log for good.
      this.dirSyncOwed = false;
    }
  }

  private async sync(fd: FileHandle): Promise<void> {
    this.counters.syncs++;
    await fd.datasync();
  }
}

async function writeAll(fd: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fd.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error("write made no progress");
    done += bytesWritten;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
