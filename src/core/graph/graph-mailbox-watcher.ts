// Watches one folder of one mailbox through Microsoft Graph and hands each email out exactly once
// while it is in flight, like MailboxWatcher does over IMAP, with the same settlement rules.
// New mail comes from the folder's delta query; an unread listing at start and every safety
// period catches anything the delta state lost. An email is taken on (`pending` on disk) in the
// same write that moves the delta link past it, before it is offered; its settlement is on disk
// before the server is touched. A crash at any point offers it again or finishes the recorded
// action; it never loses it.

import { pipeline } from "node:stream";
import { type BackoffPolicy, backoffDelay } from "../backoff";
import type { TokenSource } from "../mail/imap-login";
import {
  bareMessageId,
  discardSpool,
  type ParsedEmail,
  UnreadableEmailError,
  unreadableEmail,
} from "../mail/parse-email";
import { type ServerAction, settlementAction } from "../mail/progress-store";
import { isPermanentTokenError } from "../oauth/token-errors";
import { Pause } from "../pause";
import { InFlightEmails } from "../watch/in-flight";
import { parseFetched } from "../watch/parse-fetched";
import { describe, type Failure, SessionLoop } from "../watch/session-loop";
import {
  ConfigurationError,
  type EmailRef,
  type Outcome,
  type TakeMode,
  type WatchedEmail,
  type Watcher,
  type WatcherState,
} from "../watch/watcher";
import { childFolderId, folderIdByPath } from "./folders";
import {
  ByteCounter,
  type CallOptions,
  GraphApi,
  GraphApiError,
  type GraphResponse,
  type GraphStream,
  segment,
  userPath,
} from "./graph-api";
import type {
  GraphFolderProgress,
  GraphPendingEmail,
  GraphProgressStore,
  GraphSettledEmail,
} from "./graph-progress-store";

/** `EmailRef.uidValidity` of emails from Graph: the uid is our own serial number, never reused. */
export const GRAPH_UID_VALIDITY = "graph";

export type GraphWatcherState = WatcherState | { kind: "throttled"; retryInMs: number };

export interface GraphEmailRef extends EmailRef {
  graphId: string;
}

export interface GraphWatchedEmail extends WatchedEmail {
  ref: GraphEmailRef;
}

export interface GraphWatcherOptions {
  /** Graph host (with port when not 443), e.g. graph.microsoft.com */
  host: string;
  mailbox: string;
  /** A well-known name (inbox, INBOX, archive, ...), a display name, or a path "Inbox/Alarms". */
  folder: string;
  take: TakeMode;
  onAccepted: ServerAction;
  /** Folder for emails that could not become an alarm; null leaves them unread in place. */
  reviewFolder: string | null;
  redeliverAfterMs: number;
  /** How often the delta query asks for changes. */
  pollIntervalMs: number;
  /** How often the whole unread listing is compared (default 5 minutes). */
  safetyCheckMs?: number;
  maxInFlight: number;
  maxInMemoryAttachmentBytes: number;
  spoolDir: string;
  backoff: BackoffPolicy;
  tokens: TokenSource;
  store: GraphProgressStore;
  /** A GraphApi shared with other users of the same tenant (its limits are per mailbox); else one of its own. */
  api?: GraphApi;
  /** Extra CA certificates (PEM), when the watcher makes its own GraphApi. */
  ca?: string;
  /** A request whose connection stays silent this long fails (default 60 s). */
  requestTimeoutMs?: number;
  emit(email: GraphWatchedEmail): void;
  onState(state: GraphWatcherState): void;
  log(level: "info" | "warn" | "error", message: string): void;
}

/** A message as the delta query and the unread listing return it. */
interface ListedMessage {
  id: string;
  isRead?: boolean;
  internetMessageId?: string | null;
  receivedDateTime?: string | null;
  subject?: string;
  parentFolderId?: string;
  "@removed"?: unknown;
}

interface Page {
  value?: ListedMessage[];
  "@odata.nextLink"?: string;
  "@odata.deltaLink"?: string;
}

interface Prepared {
  pending: GraphPendingEmail;
  email: ParsedEmail;
  size: number;
}

const SELECT = "id,isRead,internetMessageId,receivedDateTime,subject,parentFolderId";
/** Messages fetched and parsed ahead of the one being offered (GraphApi caps requests at 4 anyway). */
const FETCH_AHEAD = 4;
const LIST_PAGE_SIZE = 50;
/** Emails offered per round: settlements made meanwhile are carried out between batches. */
const OFFER_BATCH = 50;
const DEFAULT_SAFETY_CHECK_MS = 5 * 60_000;

export class GraphMailboxWatcher implements Watcher {
  private readonly api: GraphApi;
  private readonly ownsApi: boolean;
  private readonly mailboxKey: string;
  private readonly safetyCheckMs: number;
  private readonly abort = new AbortController();
  private readonly idle = new Pause();
  private readonly inFlight = new InFlightEmails<GraphEmailRef>();
  /** Pending emails to look at again before offering: they may have been read or moved meanwhile. */
  private readonly unverified = new Set<number>();
  private readonly folderIds = new Map<string, string>();
  private folderId = "";
  private again = false;
  private lastDelta = Number.NEGATIVE_INFINITY;
  private lastCatchUp = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private readonly unwatchThrottling: () => void;
  private lastState = "";
  private readonly loop: SessionLoop;

  constructor(private readonly opts: GraphWatcherOptions) {
    this.ownsApi = !opts.api;
    this.api =
      opts.api ??
      new GraphApi({
        host: opts.host,
        tokens: opts.tokens,
        backoff: opts.backoff,
        ca: opts.ca,
        idleTimeoutMs: opts.requestTimeoutMs,
        log: opts.log,
      });
    this.mailboxKey = opts.mailbox.trim().toLowerCase();
    this.safetyCheckMs = opts.safetyCheckMs ?? DEFAULT_SAFETY_CHECK_MS;
    this.unwatchThrottling = this.api.watchThrottling((retryInMs, mailbox) => {
      if (mailbox === this.mailboxKey && !this.stopped) this.setState({ kind: "throttled", retryInMs });
    });
    this.loop = new SessionLoop({
      backoff: opts.backoff,
      session: async (working) => {
        await this.session(working);
        return undefined;
      },
      classify: (err) => this.classify(err),
      // "connecting" is said once, at start: between rounds Graph is asked again, not reconnected to.
      onState: (state) => {
        if (state.kind !== "connecting" || this.lastState === "") this.setState(state);
      },
      log: opts.log,
      verb: "retrying",
    });
  }

  private get stopped(): boolean {
    return this.loop.stopped;
  }

  start(): void {
    this.running ??= this.run();
    this.inFlight.watchOverdue({
      redeliverAfterMs: this.opts.redeliverAfterMs,
      onReleased: (uids) => {
        for (const uid of uids) this.unverified.add(uid);
        this.requestCheck();
      },
      log: this.opts.log,
    });
  }

  async stop(): Promise<void> {
    this.inFlight.stopWatching();
    this.abort.abort();
    this.idle.wake();
    await this.loop.stop();
    await this.running;
    this.unwatchThrottling();
    if (this.ownsApi) this.api.close();
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
    const pending = this.opts.store.current.pending.find((p) => p.uid === ref.uid);
    if (!pending || ref.uidValidity !== GRAPH_UID_VALIDITY) {
      this.opts.log("warn", `settle(${outcome}) for uid ${ref.uid} ignored: not in flight (already settled?)`);
      return false;
    }
    const entry = this.inFlight.take(ref.uid);
    if (outcome === "retry") {
      this.unverified.add(ref.uid);
      await this.inFlight.discard(ref.uid, entry);
      this.requestCheck();
      return true;
    }
    const action = settlementAction(outcome, this.opts.onAccepted, this.opts.reviewFolder);
    const record: GraphSettledEmail = {
      uid: ref.uid,
      graphId: pending.graphId,
      messageId: ref.messageId ?? pending.messageId,
      outcome,
      action,
      applied: action.kind === "none",
      ...(action.kind === "none" ? { appliedAt: Date.now() } : {}),
    };
    // Out of pending at once, so that a concurrent second settlement of the same email is ignored.
    this.unverified.delete(ref.uid);
    this.opts.store.update((p) => {
      p.pending = p.pending.filter((x) => x !== pending);
      p.settled.push(record);
    });
    try {
      await this.opts.store.save();
    } catch (err) {
      // Not durable, so not settled: the email stays pending and the server is not touched.
      this.opts.store.update((p) => {
        p.settled = p.settled.filter((s) => s !== record);
        p.pending.push(pending);
      });
      if (entry) this.inFlight.restore(entry);
      throw new Error(`settlement of uid ${ref.uid} not recorded: ${describe(err)}`);
    }
    await this.inFlight.discard(ref.uid, entry);
    this.requestCheck();
    return true;
  }

  private async run(): Promise<void> {
    const { problem } = await this.opts.store.load();
    if (problem) this.opts.log("error", problem);
    // Taken on before a restart: offered again, unless read or gone meanwhile.
    for (const p of this.opts.store.current.pending) this.unverified.add(p.uid);
    await this.loop.start();
  }

  private classify(err: unknown): Failure {
    if (err instanceof GraphApiError && err.throttled) {
      // Retry-After when Graph gives one; else the policy's delay (the loop's attempt count is not kept).
      return { throttledForMs: err.retryAfterMs ?? backoffDelay(0, this.opts.backoff) };
    }
    return {
      permanent:
        err instanceof ConfigurationError ||
        (err instanceof GraphApiError && err.status >= 400 && err.status < 500) ||
        isPermanentTokenError(err),
      hint: err instanceof GraphApiError ? err.hint : undefined,
    };
  }

  /** Rounds until one fails; the caller backs off and starts a new session. */
  private async session(working: () => void): Promise<void> {
    this.lastDelta = Number.NEGATIVE_INFINITY;
    this.lastCatchUp = Number.NEGATIVE_INFINITY;
    this.folderId = await this.watchedFolderId();
    await this.checkTargetFolders();
    this.adoptFolder(this.folderId);
    while (!this.stopped) {
      this.again = false;
      await this.round();
      working();
      if (this.stopped) break;
      this.setState({ kind: "watching", inFlight: this.inFlight.size });
      if (this.again) continue;
      const due = Math.min(this.nextDeltaAt(), this.lastCatchUp + this.safetyCheckMs);
      const wait = due - Date.now();
      if (wait > 0) await this.idle.for(wait);
    }
  }

  private async round(): Promise<void> {
    await this.applySettledActions();
    const now = Date.now();
    if (now >= this.nextDeltaAt()) {
      await this.deltaRound();
      this.lastDelta = now;
      // Graph answers: watching, even while a long first catch-up or backlog is still ahead
      this.setState({ kind: "watching", inFlight: this.inFlight.size });
    }
    if (now - this.lastCatchUp >= this.safetyCheckMs) {
      await this.catchUp();
      this.lastCatchUp = now;
    }
    await this.offerPending();
    await this.opts.store.save();
  }

  /**
   * The next delta poll: on the grid of the poll interval (whole seconds for 1 s), so that the mailboxes of a
   * tenant ask at the same moment and their polls share a JSON batch (graph-batch.ts).
   */
  private nextDeltaAt(): number {
    const every = this.opts.pollIntervalMs;
    if (!Number.isFinite(this.lastDelta)) return this.lastDelta;
    return (Math.floor(this.lastDelta / every) + 1) * every;
  }

  /** Tells the node, once per change (a status update after every quiet poll helps nobody). */
  private setState(state: GraphWatcherState | { kind: "connecting" }): void {
    const text = JSON.stringify(state);
    if (text === this.lastState && state.kind === "watching") return;
    this.lastState = text;
    this.opts.onState(state);
  }

  /** Every request of this watcher: stopped with it, and counted against its mailbox. */
  private get callOptions(): CallOptions {
    return { signal: this.abort.signal, mailbox: this.opts.mailbox };
  }

  private requestCheck(): void {
    this.again = true;
    this.idle.wake();
  }

  // ---- finding emails ----

  private folderPath(): string {
    return `${userPath(this.opts.mailbox)}/mailFolders/${segment(this.folderId)}`;
  }

  private messagePath(graphId: string): string {
    return `${userPath(this.opts.mailbox)}/messages/${segment(graphId)}`;
  }

  /**
   * Follows the delta pages to the next delta link, then takes on the unread emails it reported,
   * moving the delta link in the same write. An expired delta state (410) starts a fresh delta:
   * settled emails are remembered, so nothing is offered twice, and nothing is skipped.
   */
  private async deltaRound(): Promise<void> {
    const progress = this.opts.store.current;
    const freshUrl = this.api.url(`${this.folderPath()}/messages/delta`, { $select: SELECT });
    let url = progress.deltaLink ?? freshUrl;
    let restarted = progress.deltaLink === null;
    const changed = new Map<string, ListedMessage>();
    const touched = new Set<string>();
    let serverDate: string | null = null;
    let deltaLink: string | undefined;
    while (deltaLink === undefined) {
      let page: GraphResponse<Page>;
      try {
        page = await this.api.request<Page>("GET", url, { ...this.callOptions, batch: true });
      } catch (err) {
        if (!(err instanceof GraphApiError && err.status === 410) || restarted) throw this.folderError(err);
        this.opts.log(
          "warn",
          `the saved delta state of ${this.opts.mailbox}/${this.opts.folder} is no longer valid (${describe(err)}): ` +
            "reading the folder afresh; settled emails are remembered, so none is offered twice",
        );
        url = freshUrl;
        restarted = true;
        changed.clear();
        touched.clear();
        continue;
      }
      serverDate ??= page.headers.get("date");
      for (const item of page.body?.value ?? []) {
        if (typeof item?.id !== "string") continue;
        touched.add(item.id);
        if (item["@removed"] !== undefined) changed.delete(item.id);
        else changed.set(item.id, item);
      }
      const next = page.body?.["@odata.nextLink"];
      if (next) url = next;
      else if (page.body?.["@odata.deltaLink"]) deltaLink = page.body["@odata.deltaLink"];
      else throw new Error("Graph ended a delta round with neither nextLink nor deltaLink");
    }
    this.lookAgainAt(touched);
    const items = [...changed.values()];
    const link = deltaLink;
    if (this.opts.take === "new" && progress.newSince === null) {
      // First start in "new" mode: what is there now stays alone; Graph's clock draws the line.
      const at = serverDate ? Date.parse(serverDate) : Number.NaN;
      const since = new Date(Number.isNaN(at) ? Date.now() : at).toISOString();
      const sinceMs = Date.parse(since);
      const old = items.filter((i) => !(receivedMs(i) < sinceMs)).map((i) => i.id);
      this.opts.store.update((p) => {
        p.deltaLink = link;
        p.newSince = since;
        p.oldIds = old;
      });
      await this.opts.store.save();
      this.opts.log("info", `watching ${this.opts.folder} for emails received from ${since} on`);
      return;
    }
    if (touched.size === 0) {
      // Nothing changed: the new delta link says what the saved one says. Kept in memory (Graph's delta
      // tokens age) and written with the next change, not with an fsync per mailbox per poll.
      this.opts.store.updateLazily((p) => {
        p.deltaLink = link;
      });
      return;
    }
    this.takeOn(items, (p) => {
      p.deltaLink = link;
    });
    await this.opts.store.save();
  }

  /** Every unread email in the folder, compared with what we know: catches what the delta missed. */
  private async catchUp(): Promise<void> {
    const started = Date.now();
    const newSince = this.opts.take === "new" ? this.opts.store.current.newSince : null;
    // Graph wants the $orderby property first in $filter (else InefficientFilter)
    const from = newSince ?? "1900-01-01T00:00:00Z";
    let url = this.api.url(`${this.folderPath()}/messages`, {
      $filter: `receivedDateTime ge ${from} and isRead eq false`,
      $orderby: "receivedDateTime asc",
      $select: SELECT,
      $top: LIST_PAGE_SIZE,
    });
    const unread: ListedMessage[] = [];
    for (;;) {
      let page: Page;
      try {
        page = (await this.api.request<Page>("GET", url, this.callOptions)).body;
      } catch (err) {
        throw this.folderError(err);
      }
      for (const item of page?.value ?? []) if (typeof item?.id === "string") unread.push(item);
      const next = page?.["@odata.nextLink"];
      if (!next) break;
      url = next;
    }
    const unreadIds = new Set(unread.map((m) => m.id));
    for (const p of this.opts.store.current.pending) {
      if (!unreadIds.has(p.graphId)) this.unverified.add(p.uid);
    }
    // Settlements done before this listing began, whose email is no longer unread here, are
    // not needed to keep it from being offered again: forget them so the file stays small.
    const keep = (s: GraphSettledEmail) => !s.applied || unreadIds.has(s.graphId) || (s.appliedAt ?? 0) >= started;
    if (!this.opts.store.current.settled.every(keep)) {
      this.opts.store.update((p) => {
        p.settled = p.settled.filter(keep);
      });
    }
    this.takeOn(unread);
    await this.opts.store.save();
  }

  /** Adds the candidates among `items` to pending, oldest first, each with a new uid. */
  private takeOn(items: ListedMessage[], alongside?: (p: GraphFolderProgress) => void): void {
    const progress = this.opts.store.current;
    const known = new Set([...progress.pending.map((p) => p.graphId), ...progress.settled.map((s) => s.graphId)]);
    const old = new Set(progress.oldIds);
    const sinceMs = progress.newSince ? Date.parse(progress.newSince) : Number.NaN;
    const fresh = items.filter((m) => {
      if (m.isRead === true || known.has(m.id)) return false;
      if (this.opts.take !== "new") return true;
      if (Number.isNaN(sinceMs) || old.has(m.id)) return false;
      return !(receivedMs(m) < sinceMs);
    });
    fresh.sort((a, b) => (receivedMs(a) || 0) - (receivedMs(b) || 0));
    if (fresh.length === 0 && !alongside) return;
    this.opts.store.update((p) => {
      for (const m of fresh) {
        const uid = p.nextUid++;
        p.pending.push({
          uid,
          graphId: m.id,
          messageId: bareMessageId(m.internetMessageId),
          receivedAt: isoOrNull(m.receivedDateTime),
        });
        if (m.isRead === undefined) this.unverified.add(uid);
      }
      alongside?.(p);
    });
  }

  /** Pending emails that changed or left the folder are checked before they are offered again. */
  private lookAgainAt(graphIds: Set<string>): void {
    for (const p of this.opts.store.current.pending) {
      if (graphIds.has(p.graphId) && !this.inFlight.has(p.uid)) this.unverified.add(p.uid);
    }
  }

  // ---- offering emails ----

  /** Offers pending emails not in flight, oldest first, fetching a few ahead. */
  private async offerPending(): Promise<void> {
    const room = this.opts.maxInFlight - this.inFlight.size;
    if (room <= 0 || this.stopped) return;
    await this.opts.store.save(); // only what is on disk as pending is offered (no-op when it is)
    const waiting = this.opts.store.current.pending
      .filter((p) => !this.inFlight.has(p.uid))
      .sort((a, b) => (Date.parse(a.receivedAt ?? "") || 0) - (Date.parse(b.receivedAt ?? "") || 0) || a.uid - b.uid);
    const queue = waiting.slice(0, Math.min(room, OFFER_BATCH));
    if (waiting.length > queue.length && queue.length === OFFER_BATCH) this.again = true;
    const prepared: Promise<Prepared | null>[] = [];
    const launch = (upTo: number) => {
      while (prepared.length < Math.min(queue.length, upTo)) {
        const p = this.prepare(queue[prepared.length] as GraphPendingEmail);
        p.catch(() => undefined);
        prepared.push(p);
      }
    };
    for (let i = 0; i < queue.length; i++) {
      launch(i + FETCH_AHEAD);
      let ready: Prepared | null;
      try {
        ready = await (prepared[i] as Promise<Prepared | null>);
      } catch (err) {
        // A failed fetch leaves nothing half done: the email stays pending for the next round.
        for (const later of prepared.slice(i + 1)) {
          const done = await later.catch(() => null);
          if (done) await discardSpool(done.email);
        }
        throw err;
      }
      if (ready) await this.offer(ready);
    }
  }

  /** Fetches and parses one pending email; null when it is gone or was read meanwhile (dropped). */
  private async prepare(pending: GraphPendingEmail): Promise<Prepared | null> {
    if (this.unverified.has(pending.uid)) {
      let now: ListedMessage;
      try {
        now = await this.api.get<ListedMessage>(
          this.messagePath(pending.graphId),
          { $select: SELECT },
          this.callOptions,
        );
      } catch (err) {
        if (err instanceof GraphApiError && err.itemNotFound) return this.drop(pending, "it left the folder");
        throw err;
      }
      if (now.isRead === true) return this.drop(pending, "it was read by someone else");
      this.unverified.delete(pending.uid);
    }
    let source: GraphStream;
    try {
      source = await this.api.getStream(`${this.messagePath(pending.graphId)}/$value`, this.callOptions);
    } catch (err) {
      if (err instanceof GraphApiError && err.itemNotFound) return this.drop(pending, "it left the folder");
      throw err;
    }
    const counter = new ByteCounter();
    pipeline(source.stream, counter, () => undefined);
    let email: ParsedEmail | UnreadableEmailError;
    try {
      const spoolDir = `${this.opts.spoolDir}/${GRAPH_UID_VALIDITY}-${pending.uid}`;
      email = await parseFetched(counter, { maxInMemoryBytes: this.opts.maxInMemoryAttachmentBytes, spoolDir });
    } catch (err) {
      source.stream.destroy(); // a failed download is retried on the next round
      throw err;
    }
    if (email instanceof UnreadableEmailError) {
      source.stream.destroy();
      this.opts.log("warn", `uid ${pending.uid}: ${describe(email)}`);
      email = unreadableEmail(describe(email));
    }
    return { pending, email, size: counter.bytes };
  }

  private async offer({ pending, email, size }: Prepared): Promise<void> {
    const still = this.opts.store.current.pending.includes(pending);
    if (!still || this.stopped || this.inFlight.has(pending.uid)) {
      await discardSpool(email); // settled or stopped while it was fetched
      return;
    }
    const ref: GraphEmailRef = {
      uidValidity: GRAPH_UID_VALIDITY,
      uid: pending.uid,
      messageId: email.messageId ?? pending.messageId,
      graphId: pending.graphId,
    };
    this.inFlight.add(ref, email, size);
    this.opts.emit({ ref, email, size, receivedAt: pending.receivedAt });
  }

  private drop(pending: GraphPendingEmail, why: string): null {
    this.unverified.delete(pending.uid);
    void this.inFlight.discard(pending.uid);
    this.opts.store.update((p) => {
      p.pending = p.pending.filter((x) => x !== pending);
    });
    this.opts.log("info", `uid ${pending.uid} not offered again: ${why}`);
    return null;
  }

  // ---- settling on the server ----

  /** Carries out recorded settlements, and believes only Graph's confirmation. */
  private async applySettledActions(): Promise<void> {
    const todo = this.opts.store.current.settled.filter((s) => !s.applied);
    if (todo.length === 0) return;
    let failure: unknown;
    await forEachLimited(todo, FETCH_AHEAD, async (s) => {
      try {
        await this.apply(s);
        this.opts.store.update(() => {
          s.applied = true;
          s.appliedAt = Date.now();
        });
      } catch (err) {
        failure ??= err;
      }
    });
    await this.opts.store.save();
    if (failure !== undefined) throw failure;
  }

  private async apply(s: GraphSettledEmail): Promise<void> {
    const path = this.messagePath(s.graphId);
    const action = s.action;
    try {
      if (action.kind === "seen") await this.api.patch(path, { isRead: true }, this.callOptions);
      else if (action.kind === "delete") await this.api.delete(path, this.callOptions);
      else if (action.kind === "move") {
        const destinationId = await this.folderIdOf(action.folder);
        await this.api.post(`${path}/move`, { destinationId }, this.callOptions);
      }
    } catch (err) {
      if (!(err instanceof GraphApiError && err.itemNotFound)) throw err;
      // 404 from a move may also mean a missing destination: only the message itself says it is gone.
      // Gone is done: our own earlier attempt went through (its answer was lost), or someone else
      // moved or deleted it; either way it is no longer in the watched folder, and it was settled.
      if (await this.isGone(s.graphId)) {
        this.opts.log("info", `uid ${s.uid}: ${action.kind} not needed, the email already left the folder`);
        return;
      }
      if (action.kind === "move") {
        this.folderIds.delete(action.folder.trim().toLowerCase());
        throw new ConfigurationError(
          `folder "${action.folder}" not found in mailbox ${this.opts.mailbox}: create it or correct the name`,
        );
      }
      throw err;
    }
  }

  private async isGone(graphId: string): Promise<boolean> {
    try {
      await this.api.get(this.messagePath(graphId), { $select: "id" }, this.callOptions);
      return false;
    } catch (err) {
      if (err instanceof GraphApiError && err.itemNotFound) return true;
      throw err;
    }
  }

  // ---- folders ----

  private async watchedFolderId(): Promise<string> {
    try {
      return await this.folderIdOf(this.opts.folder);
    } catch (err) {
      throw this.folderError(err);
    }
  }

  /** A missing move/review folder would leave settled emails unapplied forever: say so at once. */
  private async checkTargetFolders(): Promise<void> {
    const targets = [this.opts.onAccepted.kind === "move" ? this.opts.onAccepted.folder : null, this.opts.reviewFolder];
    for (const folder of targets) if (folder) await this.folderIdOf(folder);
  }

  /** Id of a folder given by well-known name (used as is), display name or "Parent/Child" path. */
  private async folderIdOf(name: string): Promise<string> {
    const key = name.trim().toLowerCase();
    const cached = this.folderIds.get(key);
    if (cached) return cached;
    if (!name.trim()) throw new ConfigurationError("no folder named");
    const id = await folderIdByPath(name, (parent, child) =>
      childFolderId(this.api, this.opts.mailbox, parent, child, this.callOptions),
    );
    if (!id) {
      throw new ConfigurationError(
        `folder "${name}" not found in mailbox ${this.opts.mailbox}: create it or correct the name`,
      );
    }
    this.folderIds.set(key, id);
    return id;
  }

  /** The delta state belongs to one folder: another folder (renamed, recreated) starts afresh. */
  private adoptFolder(folderId: string): void {
    const progress = this.opts.store.current;
    const foreignLink = progress.deltaLink !== null && !this.isOurLink(progress.deltaLink);
    if (progress.folderId === folderId && !foreignLink) return;
    if (progress.folderId !== null) {
      this.opts.log(
        "warn",
        `${this.opts.mailbox}/${this.opts.folder} is not the folder (or Graph host) watched before: ` +
          "reading it afresh; settled emails are remembered",
      );
    }
    this.opts.store.update((p) => {
      p.folderId = folderId;
      p.deltaLink = null;
    });
  }

  private isOurLink(link: string): boolean {
    try {
      return new URL(link).host.toLowerCase() === this.api.host;
    } catch {
      return false;
    }
  }

  /** A 404/400 on the watched folder names the folder as the user typed it. */
  private folderError(err: unknown): unknown {
    if (err instanceof GraphApiError && (err.itemNotFound || err.code === "ErrorInvalidIdMalformed")) {
      this.folderIds.delete(this.opts.folder.trim().toLowerCase());
      return new ConfigurationError(
        `folder "${this.opts.folder}" not found in mailbox ${this.opts.mailbox} (${err.code}): create it or correct the name`,
      );
    }
    return err;
  }
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function receivedMs(m: ListedMessage): number {
  return Date.parse(m.receivedDateTime ?? "");
}

function isoOrNull(value: string | null | undefined): string | null {
  const at = Date.parse(value ?? "");
  return Number.isNaN(at) ? null : new Date(at).toISOString();
}
