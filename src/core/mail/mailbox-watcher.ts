// Watches one IMAP folder and hands each email out exactly once while it is in flight.
// An email is marked processed (seen / moved / deleted) only after it was settled, and the
// settlement is on disk before the server is touched: a crash at any point either offers
// the email again or finishes the recorded action; it never loses it.

import type { Readable } from "node:stream";
import type { FetchMessageObject, ImapFlow } from "imapflow";
import type { BackoffPolicy } from "../backoff";
import { isPermanentTokenError, isTransientTokenError } from "../oauth/token-errors";
import { InFlightEmails } from "../watch/in-flight";
import { parseFetched } from "../watch/parse-fetched";
import { describe, type Failure, SessionLoop, tokenRetryPolicy } from "../watch/session-loop";
import {
  ConfigurationError,
  type EmailRef,
  type Outcome,
  type TakeMode,
  type WatchedEmail,
  type Watcher,
  type WatcherState,
} from "../watch/watcher";
import { type ImapEndpoint, ImapLoginError, openImap, type TokenSource } from "./imap-login";
import { bareMessageId, type ParsedEmail, UnreadableEmailError, unreadableEmail } from "./parse-email";
import { parseWorkerRunning, startParseWorker } from "./parse-in-worker";
import {
  type FolderProgress,
  type ProgressStore,
  type ServerAction,
  type SettledEmail,
  settlementAction,
} from "./progress-store";
import { uidSet } from "./uid-set";

export interface WatcherOptions {
  endpoint: ImapEndpoint;
  folder: string;
  take: TakeMode;
  onAccepted: ServerAction;
  /** Folder for emails that could not become an alarm; null leaves them unread in place. */
  reviewFolder: string | null;
  redeliverAfterMs: number;
  pollIntervalMs: number;
  maxInFlight: number;
  /**
   * Emails in flight hold their text and small attachments in memory: while their sizes add up to
   * more than this, no new email is fetched (one always is when none is in flight). Default 32 MiB.
   */
  maxInFlightBytes?: number;
  maxInMemoryAttachmentBytes: number;
  spoolDir: string;
  backoff: BackoffPolicy;
  /** Upper bound for one round of commands; a silent connection is dropped after it. */
  commandTimeoutMs: number;
  tokens: TokenSource;
  store: ProgressStore;
  emit(email: WatchedEmail): void;
  onState(state: WatcherState): void;
  log(level: "info" | "warn" | "error", message: string): void;
}

/** What the first FETCH tells about an email before its bytes are fetched. */
interface Listed {
  size: number;
  receivedAt: string | null;
}

const FETCH_BATCH = 200;
const FETCH_BATCH_BYTES = 32 * 1024 * 1024;
/** A FETCH of this many emails or more is a burst: they are parsed on the worker thread. */
const BURST = 8;
/** Emails smaller than this (most alarm emails) are fetched whole without asking their size first. */
const SMALL_EMAIL_BYTES = 64 * 1024;
/** Small emails per FETCH: at most 32 MiB of them (a FETCH's answer may wait in memory as a whole). */
const SMALL_BATCH = Math.floor(FETCH_BATCH_BYTES / SMALL_EMAIL_BYTES);
/** Emails fetched ahead of the one being emitted, at most this many bytes of them. */
const PARSE_AHEAD_BYTES = 4 * 1024 * 1024;
/** Settlements journalled before the progress file is rewritten with them. */
const JOURNAL_FOLD_LINES = 500;

/** Splits UIDs (in order) into runs whose small emails add up to at most maxBytes. */
function chunksBySize(
  uids: number[],
  listed: Map<number, Listed>,
  inMemoryLimit: number,
  maxBytes: number,
): number[][] {
  const chunks: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const uid of uids) {
    const size = listed.get(uid)?.size ?? 0;
    const counted = size <= inMemoryLimit ? size : 0;
    if (current.length > 0 && bytes + counted > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(uid);
    bytes += counted;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class MailboxWatcher implements Watcher {
  private client: ImapFlow | undefined;
  private readonly inFlight = new InFlightEmails();
  private uidValidity: string | null = null;
  private checking: Promise<void> | undefined;
  private checkAgain = false;
  private fullCheckWanted = false;
  /** Emails were left unfetched for want of room: a settlement then asks for a full check. */
  private heldBack = false;
  /** Sizes of the emails fetched and being parsed, not yet in flight. */
  private parsingBytes = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly loop: SessionLoop;

  constructor(private readonly opts: WatcherOptions) {
    this.loop = new SessionLoop({
      backoff: opts.backoff,
      session: async (working) => {
        await this.session(working);
        return undefined;
      },
      cleanup: () => this.cleanupSession(),
      classify: (err) => this.classify(err),
      onState: (state) => opts.onState(state as WatcherState),
      log: opts.log,
    });
  }

  private get stopped(): boolean {
    return this.loop.stopped;
  }

  start(): void {
    this.running ??= this.run();
    this.inFlight.watchOverdue({
      redeliverAfterMs: this.opts.redeliverAfterMs,
      onReleased: () => this.requestCheck(),
      log: this.opts.log,
    });
  }

  async stop(): Promise<void> {
    this.inFlight.stopWatching();
    clearInterval(this.pollTimer);
    const stopping = this.loop.stop();
    const client = this.client;
    if (client?.usable) await Promise.race([client.logout().catch(() => undefined), sleep(2000)]);
    client?.close();
    await stopping;
    await this.running;
    await this.opts.store.close();
    await this.inFlight.clear();
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * The flow is done with an email. accepted: its alarm is safe downstream; rejected: it
   * cannot become an alarm (review folder); retry: offer it again now.
   */
  async settle(ref: EmailRef, outcome: Outcome): Promise<boolean> {
    if (!this.inFlight.has(ref.uid) || ref.uidValidity !== this.uidValidity) {
      this.opts.log("warn", `settle(${outcome}) for uid ${ref.uid} ignored: not in flight (already settled?)`);
      return false;
    }
    const entry = this.inFlight.take(ref.uid);
    if (outcome === "retry") {
      await this.inFlight.discard(ref.uid, entry); // it is fetched and spooled afresh when offered again
      this.requestCheck();
      return true;
    }
    const action = settlementAction(outcome, this.opts.onAccepted, this.opts.reviewFolder);
    const record: SettledEmail = {
      uid: ref.uid,
      messageId: ref.messageId,
      outcome,
      action,
      applied: action.kind === "none",
    };
    try {
      await this.opts.store.record(record);
    } catch (err) {
      // Not durable, so not settled: the email stays in flight and the server is not touched.
      if (entry) this.inFlight.restore(entry);
      throw new Error(`settlement of uid ${ref.uid} not recorded: ${describe(err)}`);
    }
    await this.inFlight.discard(ref.uid, entry);
    // Only the server action is due, unless fetching waits for room this settlement made.
    this.requestCheck(this.heldBack ? "full" : "apply");
    return true;
  }

  private async run(): Promise<void> {
    const { problem } = await this.opts.store.load();
    if (problem) this.opts.log("error", problem);
    await this.loop.start();
  }

  private classify(err: unknown): Failure {
    return {
      permanent:
        (err instanceof ImapLoginError && err.permanent) ||
        err instanceof ConfigurationError ||
        isPermanentTokenError(err),
      policy: isTransientTokenError(err) ? tokenRetryPolicy(this.opts.backoff) : undefined,
    };
  }

  private async session(connected: () => void): Promise<void> {
    const client = await openImap(this.opts.endpoint, this.opts.tokens);
    this.client = client;
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    if (this.stopped) return;
    await this.checkTargetFolders(client);
    const mailbox = await client.mailboxOpen(this.opts.folder).catch((err: unknown) => {
      throw new ConfigurationError(`cannot open folder "${this.opts.folder}": ${serverText(err)}`);
    });
    await this.adoptUidValidity(client, String(mailbox.uidValidity), Number(mailbox.uidNext));
    connected();
    client.on("exists", () => this.requestCheck());
    this.pollTimer = setInterval(() => this.requestCheck(), this.opts.pollIntervalMs);
    this.requestCheck();
    // Connected and watching now: the first check may take long (a catch-up, a large email) and
    // "connecting" all that while would send the user looking for a network problem.
    this.opts.onState({ kind: "watching", inFlight: this.inFlight.size });
    await closed;
  }

  /** A missing move/review folder would leave settled emails pending forever: say so at once. */
  private async checkTargetFolders(client: ImapFlow): Promise<void> {
    const targets = [this.opts.onAccepted.kind === "move" ? this.opts.onAccepted.folder : null, this.opts.reviewFolder];
    for (const folder of targets) {
      if (!folder) continue;
      await client.status(folder, { messages: true }).catch((err: unknown) => {
        throw new ConfigurationError(`folder "${folder}" cannot be used: ${serverText(err)}`);
      });
    }
  }

  private cleanupSession(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.client?.close();
    this.client = undefined;
  }

  /**
   * Serialises the rounds on the connection: a request during a round runs one more after it.
   * "apply" only carries out recorded settlements; "full" also looks for emails to fetch.
   */
  private requestCheck(kind: "full" | "apply" = "full"): void {
    if (kind === "full") this.fullCheckWanted = true;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        const client = this.client;
        if (!client?.usable || this.stopped) break;
        const full = this.fullCheckWanted;
        this.fullCheckWanted = false;
        try {
          const round = full ? this.check(client) : this.applySettledActions(client);
          await withTimeout(round, this.opts.commandTimeoutMs, "IMAP server stopped answering");
        } catch (err) {
          // A failed round leaves nothing half done: unemitted emails are offered on the next one.
          this.fullCheckWanted = true;
          this.opts.log("warn", `check failed: ${describe(err)}; closing the connection`);
          client.close();
          break;
        }
      } while (this.checkAgain);
    })().finally(() => {
      this.checking = undefined;
    });
  }

  private async check(client: ImapFlow): Promise<void> {
    await this.applySettledActions(client);
    const progress = this.opts.store.current;
    const uids = await this.searchCandidates(client, progress);
    this.compact(progress, uids);
    // The journal of settlements is folded into the progress file now and then, not per email.
    if (this.opts.store.journalLength >= JOURNAL_FOLD_LINES) await this.opts.store.save();
    const settled = new Set(progress.settled.map((s) => s.uid));
    const room = this.opts.maxInFlight - this.inFlight.size;
    const open = uids.filter((u) => !settled.has(u) && !this.inFlight.has(u));
    const fresh = open.slice(0, Math.max(0, room));
    this.heldBack = fresh.length < open.length;
    if (fresh.length > 0) await this.fetchAndEmit(client, fresh);
    this.opts.onState({ kind: "watching", inFlight: this.inFlight.size });
  }

  private async searchCandidates(client: ImapFlow, progress: FolderProgress): Promise<number[]> {
    const found =
      this.opts.take === "unseen"
        ? await client.search({ seen: false }, { uid: true })
        : await client.search({ uid: `${progress.watermark + 1}:*` }, { uid: true });
    const uids = (found || []).filter((u) => u > progress.watermark);
    return uids.sort((a, b) => a - b);
  }

  /** Forgets settled emails that no longer need remembering, so the progress file stays small. */
  private compact(progress: FolderProgress, candidates: number[]): void {
    const present = new Set(candidates);
    if (this.opts.take === "unseen") {
      // Marked read, yet the server still lists it unread: mark it again.
      const unread = progress.settled.filter((s) => s.applied && s.action.kind === "seen" && present.has(s.uid));
      if (unread.length > 0) {
        this.opts.log(
          "warn",
          `uids ${uidSet(unread.map((s) => s.uid))} are unread again after being marked read (by another client?): marking them read again; they are not raised again`,
        );
        for (const s of unread) s.applied = false;
        this.requestCheck("apply");
      }
    }
    const keep = (s: SettledEmail) => !s.applied || present.has(s.uid);
    if (progress.settled.every(keep) && this.opts.take === "unseen") return;
    this.opts.store.update((p) => {
      p.settled = p.settled.filter(keep);
      if (this.opts.take === "new") {
        // Everything below the oldest email still to do is done: move the watermark up to it.
        const open = candidates.filter((u) => !p.settled.some((s) => s.uid === u));
        const floor = open.length > 0 ? Math.min(...open) - 1 : Math.max(p.watermark, ...candidates);
        const busy = this.inFlight.uids();
        const limit = busy.length > 0 ? Math.min(floor, Math.min(...busy) - 1) : floor;
        if (limit > p.watermark) {
          p.watermark = limit;
          p.settled = p.settled.filter((s) => s.uid > limit || !s.applied);
        }
      }
    });
  }

  private get maxInFlightBytes(): number {
    return this.opts.maxInFlightBytes ?? FETCH_BATCH_BYTES;
  }

  /** Whether the emails in flight hold enough memory that no more may be fetched now. */
  private get memoryFull(): boolean {
    if (this.inFlight.size === 0 && this.parsingBytes === 0) return false;
    return this.inFlight.bytes + this.parsingBytes >= this.maxInFlightBytes;
  }

  private async fetchAndEmit(client: ImapFlow, uids: number[]): Promise<void> {
    if (this.memoryFull) {
      this.heldBack = true; // the next settlement asks for another check
      return;
    }
    // Most alarm emails are a few KB: the server names those, and they come whole with their size
    // and date in one FETCH per SMALL_BATCH, without first asking every email's size.
    const found = await client.search({ uid: uidSet(uids), smaller: SMALL_EMAIL_BYTES }, { uid: true });
    const smallOnes = new Set(found || []);
    const small = uids.filter((u) => smallOnes.has(u));
    for (let i = 0; i < small.length; i += SMALL_BATCH) {
      await this.fetchWhole(client, small.slice(i, i + SMALL_BATCH), null);
    }
    const others = uids.filter((u) => !smallOnes.has(u));
    for (let i = 0; i < others.length; i += FETCH_BATCH) {
      await this.fetchSized(client, others.slice(i, i + FETCH_BATCH));
    }
  }

  /** Emails of any size: sizes first, then small ones whole, chunk by chunk, and larger ones streamed. */
  private async fetchSized(client: ImapFlow, uids: number[]): Promise<void> {
    if (this.memoryFull) {
      this.heldBack = true;
      return;
    }
    const listed = new Map<number, Listed>();
    const query = { uid: true, size: true, internalDate: true };
    for await (const m of client.fetch(uidSet(uids), query, { uid: true })) {
      listed.set(m.uid, { size: m.size ?? 0, receivedAt: isoDate(m.internalDate) });
    }
    const limit = this.opts.maxInMemoryAttachmentBytes;
    // Small emails come whole in one FETCH per chunk of at most FETCH_BATCH_BYTES; larger ones
    // are streamed one by one, so memory stays bounded whatever waits in the folder.
    const chunkBytes = Math.min(FETCH_BATCH_BYTES, this.maxInFlightBytes);
    for (const chunk of chunksBySize(
      uids.filter((u) => listed.has(u)),
      listed,
      limit,
      chunkBytes,
    )) {
      if (this.memoryFull) {
        this.heldBack = true;
        return;
      }
      const whole = chunk.filter((u) => (listed.get(u)?.size ?? 0) <= limit);
      if (whole.length > 0) await this.fetchWhole(client, whole, listed);
      // Larger emails are streamed one by one.
      for (const uid of chunk) {
        const about = listed.get(uid);
        if (!about || about.size <= limit || this.stopped) continue;
        if (this.memoryFull) {
          this.heldBack = true;
          return;
        }
        const download = await client.download(String(uid), undefined, { uid: true });
        if (!("content" in download) || !download.content) continue; // expunged meanwhile
        const email = await this.parse(uid, download.content);
        this.emitEmail(
          uid,
          email instanceof UnreadableEmailError ? await this.describeUnreadable(client, uid, email) : email,
          about,
        );
      }
    }
  }

  /**
   * Fetches whole emails in one FETCH (their sizes and dates with them when `listed` is null), parses
   * them as they arrive, while the server sends the next ones (on the worker thread in a burst), and
   * emits them in order as their parses finish.
   */
  private async fetchWhole(client: ImapFlow, uids: number[], listed: Map<number, Listed> | null): Promise<void> {
    const unreadable: [number, Listed, UnreadableEmailError][] = [];
    let emitted: Promise<void> = Promise.resolve();
    let failure: unknown;
    const query = listed ? { uid: true, source: true } : { uid: true, size: true, internalDate: true, source: true };
    const burst = uids.length >= BURST;
    if (burst) startParseWorker();
    for await (const m of client.fetch(uidSet(uids), query, { uid: true })) {
      const about = listed ? listed.get(m.uid) : { size: m.size ?? 0, receivedAt: isoDate(m.internalDate) };
      if (!m.source || !about || this.stopped || failure) continue;
      // Fetched but not emitted: fetched again once memory is free (at most one chunk is wasted).
      if (this.memoryFull) {
        this.heldBack = true;
        continue;
      }
      const uid = m.uid;
      // Until the worker is ready, one email at a time here: the first ones are out soonest that way.
      const onWorker = burst && parseWorkerRunning();
      if (!onWorker) await emitted;
      this.parsingBytes += about.size;
      const parsing = this.parse(uid, m.source, onWorker).finally(() => {
        this.parsingBytes -= about.size;
      });
      emitted = emitted
        .then(() => parsing)
        .then((email) => {
          // The envelope of an unreadable email is asked for once this FETCH is over.
          if (email instanceof UnreadableEmailError) unreadable.push([uid, about, email]);
          else if (!this.stopped) this.emitEmail(uid, email, about);
        })
        .catch((err: unknown) => {
          failure ??= err;
        });
      if (this.parsingBytes >= PARSE_AHEAD_BYTES) await emitted;
    }
    await emitted;
    if (failure) throw failure;
    for (const [uid, about, problem] of unreadable) {
      this.emitEmail(uid, await this.describeUnreadable(client, uid, problem), about);
    }
  }

  /** Parses an email; unreadable MIME comes back as the error, other failures (disk, stream) throw. */
  private async parse(
    uid: number,
    source: Buffer | Readable,
    onWorker = false,
  ): Promise<ParsedEmail | UnreadableEmailError> {
    const spoolDir = `${this.opts.spoolDir}/${this.uidValidity ?? ""}-${uid}`;
    return parseFetched(source, { maxInMemoryBytes: this.opts.maxInMemoryAttachmentBytes, spoolDir }, onWorker);
  }

  /** The server's envelope names an unreadable email for the review: asked for only when needed. */
  private async describeUnreadable(client: ImapFlow, uid: number, problem: UnreadableEmailError): Promise<ParsedEmail> {
    this.opts.log("warn", `uid ${uid}: ${describe(problem)}`);
    const known = await client.fetchOne(String(uid), { uid: true, envelope: true }, { uid: true }).catch(() => false);
    return emptyEmail(describe(problem), typeof known === "object" ? known.envelope : undefined);
  }

  private emitEmail(uid: number, email: ParsedEmail, about: Listed): void {
    const ref: EmailRef = { uidValidity: this.uidValidity ?? "", uid, messageId: email.messageId };
    this.inFlight.add(ref, email, about.size);
    this.opts.emit({ ref, email, size: about.size, receivedAt: about.receivedAt });
  }

  /** Carries out recorded settlements on the server, and confirms them before forgetting. */
  private async applySettledActions(client: ImapFlow): Promise<void> {
    const pending = this.opts.store.current.settled.filter((s) => !s.applied);
    if (pending.length === 0) return;
    const groups = new Map<string, SettledEmail[]>();
    for (const s of pending) {
      const key = JSON.stringify(s.action);
      const group = groups.get(key);
      if (group) group.push(s);
      else groups.set(key, [s]);
    }
    for (const [key, group] of groups) {
      const action = JSON.parse(key) as ServerAction;
      const range = uidSet(group.map((s) => s.uid));
      if (action.kind === "seen") {
        // Silent: a burst's thousand FLAGS answers would cost more than the emails. The tagged OK
        // is the server's word; an email still unread at the next search is marked again (compact).
        if (await client.messageFlagsAdd(range, ["\\Seen"], { uid: true, silent: true })) this.markApplied(group);
      } else {
        if (action.kind === "move") await client.messageMove(range, action.folder, { uid: true });
        else if (action.kind === "delete") await client.messageDelete(range, { uid: true });
        // imapflow may report success for a refused command: believe only what is gone.
        const left = new Set((await client.search({ uid: range }, { uid: true })) || []);
        this.markApplied(group.filter((s) => !left.has(s.uid)));
        if (left.size > 0)
          this.opts.log("warn", `${action.kind} not confirmed for uids ${[...left].join(",")}; retrying later`);
      }
    }
    // Not saved: after a crash a settlement whose action was done is done again, which changes nothing.
  }

  private markApplied(done: SettledEmail[]): void {
    if (done.length === 0) return;
    const uids = new Set(done.map((d) => d.uid));
    this.opts.store.update((p) => {
      for (const s of p.settled) if (uids.has(s.uid)) s.applied = true;
    });
  }

  /**
   * First start: remember UIDVALIDITY (and, for "new" mode, where watching began). Changed:
   * UIDs mean nothing any more; match settled emails by Message-ID and, in "new" mode, treat
   * read emails as processed. Said in the log, never silent.
   */
  private async adoptUidValidity(client: ImapFlow, uidValidity: string, uidNext: number): Promise<void> {
    const progress = this.opts.store.current;
    if (progress.uidValidity === uidValidity) {
      this.uidValidity = uidValidity;
      return;
    }
    if (progress.uidValidity === null) {
      this.opts.store.update((p) => {
        p.uidValidity = uidValidity;
        p.watermark = this.opts.take === "new" ? uidNext - 1 : 0;
      });
      await this.opts.store.save();
      this.uidValidity = uidValidity;
      return;
    }
    const known = new Map(progress.settled.filter((s) => s.messageId).map((s) => [s.messageId, s]));
    const remapped: SettledEmail[] = [];
    let readOnes = 0;
    for await (const m of client.fetch("1:*", { uid: true, flags: true, envelope: true }, { uid: true })) {
      const id = bareMessageId(m.envelope?.messageId);
      const before = id ? known.get(id) : undefined;
      if (before) remapped.push({ ...before, uid: m.uid });
      else if (this.opts.take === "new" && m.flags?.has("\\Seen")) {
        readOnes++;
        remapped.push({ uid: m.uid, messageId: id, outcome: "accepted", action: { kind: "none" }, applied: true });
      }
    }
    this.opts.log(
      "warn",
      `UIDVALIDITY of ${this.opts.folder} changed from ${progress.uidValidity} to ${uidValidity}: ` +
        `UIDs were renumbered; matched ${remapped.length - readOnes} settled emails by Message-ID` +
        (this.opts.take === "new" ? ` and took ${readOnes} read emails as processed` : "") +
        "; unread emails not matched will be offered again.",
    );
    await this.inFlight.clear();
    this.opts.store.update((p) => {
      p.uidValidity = uidValidity;
      p.watermark = 0;
      p.settled = remapped;
    });
    await this.opts.store.save();
    this.uidValidity = uidValidity;
  }
}

function isoDate(value: Date | string | undefined): string | null {
  const at = value instanceof Date ? value : value ? new Date(value) : null;
  return at && !Number.isNaN(at.getTime()) ? at.toISOString() : null;
}

function serverText(err: unknown): string {
  const e = err as { responseText?: string; message?: string };
  return e.responseText || e.message || String(err);
}

/**
 * What is known of an email whose MIME could not be read: the server's envelope, so that the
 * review shows which email it was, and its Message-ID still dedupes a second copy downstream.
 */
function emptyEmail(problem: string, envelope: FetchMessageObject["envelope"]): ParsedEmail {
  const people = (list: { name?: string; address?: string }[] | undefined) =>
    (list ?? []).map((a) => ({ address: a.address ?? "", name: a.name ?? "" }));
  const date = envelope?.date instanceof Date && !Number.isNaN(envelope.date.getTime()) ? envelope.date : null;
  return unreadableEmail(problem, {
    messageId: bareMessageId(envelope?.messageId),
    from: people(envelope?.from),
    to: people(envelope?.to),
    cc: people(envelope?.cc),
    date: date?.toISOString() ?? null,
    subject: envelope?.subject ?? "",
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
