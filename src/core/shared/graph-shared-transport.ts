// Shared mode over Microsoft Graph: the SharedTransport of transport.ts on one mailbox's REST API.
//
// Claiming is `POST /users/{m}/messages/{id}/move` into this instance's claim folder, with the
// DEFAULT (REST) ids, never with `Prefer: IdType="ImmutableId"`:
// - "message: move" (learn.microsoft.com/graph/api/message-move) "creates a new copy of the message
//   in the destination folder and removes the original message"; the answer is that copy, with its
//   new id. The old id then names nothing: a second gateway that moves by it gets 404
//   ErrorItemNotFound. The first mover wins and the loser knows it lost: that is the claim.
// - "Obtain immutable identifiers for Outlook resources" (learn.microsoft.com/graph/outlook-immutable-id):
//   an immutable id "won't change so long as the item stays in the same mailbox ... will NOT change
//   if the item is moved to a different folder". With it the late mover's request still names the
//   email, now in the winner's claim folder, and Graph moves it again into the loser's: both believe
//   they hold it, and the winner's later settle finds it gone. So no request here sends that header.
//
// Leases are small draft items in `<base>/Leases`, one per process (subject
// `gateway-lease <instance> <nonce> <counter>`); each renewal PATCHes the subject and takes the
// answer's lastModifiedDateTime, Exchange's clock, as the time of renewal. No local clock is compared
// with a server time stamp anywhere.
//
// Graph has no push here: onChange is a plain timer every pollIntervalMs, and every failure surfaces
// from the call that met it (there is no connection to lose, so onClosed never fires).
import type { Readable } from "node:stream";
import { childFolderId, folderIdByPath } from "../graph/folders";
import { type CallOptions, GraphApi, GraphApiError, segment, userPath } from "../graph/graph-api";
import type { TokenSource } from "../mail/imap-login";
import { bareMessageId } from "../mail/parse-email";
import { ConfigurationError } from "../watch/watcher";
import {
  type Candidate,
  type ClaimedItem,
  DEFAULT_COORDINATION_FOLDER,
  type FetchedEmail,
  LEASES_FOLDER,
  type LeaseRecord,
  type SharedAction,
  type SharedTransport,
} from "./transport";

export interface GraphSharedTransportOptions {
  /** Graph host (with port when not 443), e.g. graph.microsoft.com */
  host: string;
  mailbox: string;
  /** The watched folder: a well-known name (inbox), a display name, or a path "Inbox/Alarms". */
  folder: string;
  /** The coordination folder at the top of the mailbox (default "Alarm gateways"). */
  baseFolder?: string;
  tokens: TokenSource;
  /** A GraphApi shared with other users of the tenant (its limits are per mailbox); else one of its own. */
  api?: GraphApi;
  /** Extra CA certificates (PEM), when the transport makes its own GraphApi. */
  ca?: string;
  /** How often onChange listeners are told to look at the watched folder. */
  pollIntervalMs: number;
  log(level: "info" | "warn" | "error", message: string): void;
}

interface Listed {
  id: string;
  isRead?: boolean;
  internetMessageId?: string | null;
  receivedDateTime?: string | null;
  subject?: string;
  lastModifiedDateTime?: string;
}

interface Page<T> {
  value?: T[];
  "@odata.nextLink"?: string;
}

const LEASE_SUBJECT = "gateway-lease";
const LEASE_PATTERN = /^gateway-lease (.+) (\S+) (\d+)$/;
/** Requests launched at once by one call; GraphApi holds the mailbox to 4 in flight anyway. */
const PARALLEL = 4;
const PAGE_SIZE = 100;

export class GraphSharedTransport implements SharedTransport {
  private readonly api: GraphApi;
  private readonly ownsApi: boolean;
  private readonly baseName: string;
  private readonly changeListeners = new Set<() => void>();
  private readonly closedListeners = new Set<(err: unknown) => void>();
  private readonly folderIds = new Map<string, string>();
  /** Our lease item per "instance nonce", and how often it was renewed. */
  private readonly leaseItems = new Map<string, { id: string; counter: number }>();
  private abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private instance = "";
  private watchedId = "";
  private baseId = "";
  private leasesId = "";
  private claimId = "";

  constructor(private readonly opts: GraphSharedTransportOptions) {
    this.ownsApi = !opts.api;
    this.api = opts.api ?? new GraphApi({ host: opts.host, tokens: opts.tokens, ca: opts.ca, log: opts.log });
    this.baseName = (opts.baseFolder ?? DEFAULT_COORDINATION_FOLDER).trim();
  }

  async open(instance: string): Promise<void> {
    const name = instance.trim();
    if (!name || name.includes("/") || name.toLowerCase() === LEASES_FOLDER.toLowerCase()) {
      throw new ConfigurationError(`"${instance}" cannot name a gateway: no "/", not "${LEASES_FOLDER}", not empty`);
    }
    if (!this.baseName || this.baseName.includes("/")) {
      throw new ConfigurationError(`"${this.baseName}" cannot name the coordination folder: one folder name, no "/"`);
    }
    this.abort = new AbortController();
    this.instance = name;
    try {
      this.watchedId = await this.folderIdOf(this.opts.folder);
      await this.ensureFolders();
    } catch (err) {
      if (
        err instanceof GraphApiError &&
        (err.needsAdmin || (err.status >= 400 && err.status < 500 && !err.throttled))
      ) {
        throw new ConfigurationError(`${err.message}${err.hint ? ` (${err.hint})` : ""}`);
      }
      throw err;
    }
    clearInterval(this.timer);
    this.timer = setInterval(
      () => {
        for (const listener of this.changeListeners) listener();
      },
      Math.max(100, this.opts.pollIntervalMs),
    );
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
    if (this.ownsApi) this.api.close();
  }

  onChange(listener: () => void): void {
    this.changeListeners.add(listener);
  }

  onClosed(listener: (err: unknown) => void): void {
    this.closedListeners.add(listener);
  }

  // ---- the watched folder and claiming ----

  async listWatched(limit: number): Promise<Candidate[]> {
    // Graph refuses (InefficientFilter) an $orderby property that does not lead the $filter.
    const page = await this.api.get<Page<Listed>>(
      `${this.folderPath(this.watchedId)}/messages`,
      {
        $filter: "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false",
        $orderby: "receivedDateTime asc",
        $select: "id,internetMessageId,receivedDateTime",
        $top: Math.max(1, Math.min(1000, Math.floor(limit))),
      },
      this.call,
    );
    return (page?.value ?? [])
      .filter((m) => typeof m?.id === "string")
      .slice(0, limit)
      .map((m) => ({ id: m.id, key: m.id }));
  }

  async claim(ids: string[]): Promise<Map<string, string>> {
    const claimed = new Map<string, string>();
    let failure: unknown;
    let failures = 0;
    await forEachLimited(ids, PARALLEL, async (id) => {
      try {
        // default ids on purpose: see the top of this file
        const moved = await this.api.post<Listed>(
          `${this.messagePath(id)}/move`,
          { destinationId: this.claimId },
          this.call,
        );
        if (typeof moved?.id === "string") claimed.set(id, moved.id);
      } catch (err) {
        if (err instanceof GraphApiError && err.itemNotFound) return; // another gateway moved it first
        failure ??= err;
        failures++;
      }
    });
    if (failures > 0) {
      // An answer lost after Graph moved the email leaves it in our claim folder: listClaimed finds it.
      if (claimed.size === 0) throw failure;
      this.opts.log("warn", `${failures} of ${ids.length} claims failed (${describe(failure)}); retried later`);
    }
    return claimed;
  }

  async listClaimed(instance: string): Promise<ClaimedItem[]> {
    const folderId = instance === this.instance ? this.claimId : await this.childId(this.baseId, instance, false);
    if (!folderId) return [];
    const items = await this.listAll<Listed>(`${this.folderPath(folderId)}/messages`, {
      $select: "id,internetMessageId",
    });
    return items.map((m) => ({ id: m.id, messageId: bareMessageId(m.internetMessageId) }));
  }

  /** Each email's source must be read or destroyed before the next is asked for: it holds a request slot. */
  async *fetch(ids: string[]): AsyncIterable<FetchedEmail> {
    for (const id of ids) {
      let meta: Listed;
      let source: { stream: Readable; size: number | null };
      try {
        meta = await this.api.get<Listed>(this.messagePath(id), { $select: "id,receivedDateTime" }, this.call);
        source = await this.api.getStream(`${this.messagePath(id)}/$value`, this.call);
      } catch (err) {
        if (err instanceof GraphApiError && err.itemNotFound) continue;
        throw err;
      }
      let body: Buffer | Readable = source.stream;
      let size = source.size;
      if (size === null) {
        body = await buffered(source.stream);
        size = body.length;
      }
      const at = Date.parse(meta?.receivedDateTime ?? "");
      yield { id, source: body, size, receivedAt: Number.isNaN(at) ? null : new Date(at).toISOString() };
    }
  }

  async settle(id: string, action: SharedAction): Promise<boolean> {
    try {
      if (action.kind === "delete") {
        await this.api.delete(this.messagePath(id), this.call);
        return true;
      }
      if (action.kind === "move") {
        const destinationId = await this.folderIdOf(action.folder);
        try {
          await this.move(id, destinationId);
        } catch (err) {
          // 404 from a move may also mean a missing destination: only the message says it is gone.
          if (err instanceof GraphApiError && err.itemNotFound && !(await this.exists(id))) return false;
          if (err instanceof GraphApiError && err.itemNotFound) {
            this.folderIds.delete(action.folder.trim().toLowerCase());
            throw new ConfigurationError(
              `folder "${action.folder}" not found in mailbox ${this.opts.mailbox}: create it or correct the name`,
            );
          }
          throw err;
        }
        return true;
      }
      // "seen" and "none": read, back in the watched folder, where the unread listing passes it by
      await this.api.patch(this.messagePath(id), { isRead: true }, this.call);
      await this.move(id, this.watchedId);
      return true;
    } catch (err) {
      if (err instanceof GraphApiError && err.itemNotFound) return false;
      throw err;
    }
  }

  async discard(id: string): Promise<void> {
    try {
      await this.api.delete(this.messagePath(id), this.call);
    } catch (err) {
      if (!(err instanceof GraphApiError && err.itemNotFound)) throw err;
    }
  }

  async release(instance: string): Promise<number> {
    if (instance === this.instance) throw new Error("a gateway does not release its own claim folder");
    const folderId = await this.childId(this.baseId, instance, false);
    let moved = 0;
    let empty = true;
    if (folderId) {
      // A second pass catches what arrived while the first ran; a folder that keeps filling is left alone.
      for (let pass = 0; pass < 3; pass++) {
        const items = await this.listAll<Listed>(`${this.folderPath(folderId)}/messages`, { $select: "id,isRead" });
        empty = items.length === 0;
        if (empty) break;
        await forEachLimited(items, PARALLEL, async (m) => {
          try {
            if (m.isRead === true) await this.api.patch(this.messagePath(m.id), { isRead: false }, this.call);
            await this.move(m.id, this.watchedId);
            moved++;
          } catch (err) {
            if (!(err instanceof GraphApiError && err.itemNotFound)) throw err; // a peer released it too
          }
        });
      }
    }
    for (const lease of await this.leaseItemsOf()) {
      if (lease.instance !== instance) continue;
      try {
        await this.api.delete(this.messagePath(lease.id), this.call);
      } catch (err) {
        if (!(err instanceof GraphApiError && err.itemNotFound)) throw err;
      }
    }
    // The folder itself stays: a gateway taken for dead may still have a move into it in flight, and
    // deleting the folder would take that email with it (to Deleted Items, out of every gateway's sight).
    // An empty folder without a lease costs one listing per round; a person may delete it.
    if (folderId && !empty) this.opts.log("warn", `claim folder of ${instance} still fills: released again next round`);
    if (moved > 0) this.opts.log("info", `released ${moved} email(s) held by gateway ${instance}`);
    return moved;
  }

  // ---- leases ----

  async renewLease(instance: string, nonce: string): Promise<number> {
    const key = `${instance} ${nonce}`;
    const item = this.leaseItems.get(key);
    if (item) {
      item.counter++;
      try {
        const renewed = await this.api.patch<Listed>(
          this.messagePath(item.id),
          { subject: leaseSubject(instance, nonce, item.counter) },
          this.call,
        );
        return serverTime(renewed);
      } catch (err) {
        if (!(err instanceof GraphApiError && err.itemNotFound)) throw err;
        // Deleted by a peer that took us for dead (or by hand): that peer deleted our claim folder too,
        // and its old id now names a folder in Deleted Items. Claim into a live one, then lease anew.
        this.leaseItems.delete(key);
        this.opts.log(
          "warn",
          `lease of ${instance} was deleted (taken for dead?): claim folder and lease written anew`,
        );
        await this.ensureFolders();
      }
    }
    const created = await this.api.post<Listed>(
      `${this.folderPath(this.leasesId)}/messages`,
      {
        subject: leaseSubject(instance, nonce, 0),
        body: { contentType: "text", content: `Lease of alarm gateway ${instance}; renewed while it runs.` },
      },
      this.call,
    );
    if (typeof created?.id !== "string") throw new Error("Graph created a lease item without an id");
    this.leaseItems.set(key, { id: created.id, counter: 0 });
    return serverTime(created);
  }

  async readLeases(): Promise<LeaseRecord[]> {
    const newest = new Map<string, LeaseRecord>();
    for (const item of await this.leaseItemsOf()) {
      const key = `${item.instance} ${item.nonce}`;
      const known = newest.get(key);
      if (!known || item.renewedAt > known.renewedAt) {
        newest.set(key, { instance: item.instance, nonce: item.nonce, renewedAt: item.renewedAt });
      }
    }
    return [...newest.values()];
  }

  async listInstances(): Promise<string[]> {
    const folders = await this.listAll<{ id: string; displayName?: string }>(
      `${this.folderPath(this.baseId)}/childFolders`,
      { $select: "id,displayName" },
    );
    return folders
      .map((f) => f.displayName ?? "")
      .filter((n) => n !== "" && n.toLowerCase() !== LEASES_FOLDER.toLowerCase());
  }

  private async leaseItemsOf(): Promise<(LeaseRecord & { id: string })[]> {
    const items = await this.listAll<Listed>(`${this.folderPath(this.leasesId)}/messages`, {
      $select: "id,subject,lastModifiedDateTime",
    });
    const out: (LeaseRecord & { id: string })[] = [];
    for (const m of items) {
      const parsed = LEASE_PATTERN.exec(m.subject ?? "");
      const at = Date.parse(m.lastModifiedDateTime ?? "");
      if (!parsed || Number.isNaN(at)) continue;
      out.push({ id: m.id, instance: parsed[1]!, nonce: parsed[2]!, renewedAt: at });
    }
    return out;
  }

  // ---- Graph plumbing ----

  /** The coordination folder, Leases and our claim folder, looked up afresh and created when missing. */
  private async ensureFolders(): Promise<void> {
    this.folderIds.clear();
    this.baseId = await this.ensureFolder("msgfolderroot", this.baseName);
    this.leasesId = await this.ensureFolder(this.baseId, LEASES_FOLDER);
    this.claimId = await this.ensureFolder(this.baseId, this.instance);
  }

  private get call(): CallOptions {
    return { signal: this.abort.signal, mailbox: this.opts.mailbox };
  }

  private folderPath(folderId: string): string {
    return `${userPath(this.opts.mailbox)}/mailFolders/${segment(folderId)}`;
  }

  private messagePath(id: string): string {
    return `${userPath(this.opts.mailbox)}/messages/${segment(id)}`;
  }

  private async move(id: string, destinationId: string): Promise<void> {
    await this.api.post(`${this.messagePath(id)}/move`, { destinationId }, this.call);
  }

  private async exists(id: string): Promise<boolean> {
    try {
      await this.api.get(this.messagePath(id), { $select: "id" }, this.call);
      return true;
    } catch (err) {
      if (err instanceof GraphApiError && err.itemNotFound) return false;
      throw err;
    }
  }

  /** Every item of a collection, following @odata.nextLink. */
  private async listAll<T>(path: string, query: Record<string, string | number>): Promise<T[]> {
    const out: T[] = [];
    let url = this.api.url(path, { ...query, $top: PAGE_SIZE });
    for (;;) {
      const page = (await this.api.request<Page<T>>("GET", url, this.call)).body;
      for (const item of page?.value ?? []) if (item) out.push(item);
      const next = page?.["@odata.nextLink"];
      if (!next) return out;
      url = next;
    }
  }

  /** Id of a folder given by well-known name (used as is), display name or "Parent/Child" path. */
  private async folderIdOf(name: string): Promise<string> {
    const key = name.trim().toLowerCase();
    const cached = this.folderIds.get(key);
    if (cached) return cached;
    if (!name.trim()) throw new ConfigurationError("no folder named");
    const id = await folderIdByPath(name, (parent, child) => this.childId(parent, child));
    if (!id) throw new ConfigurationError(`folder "${name}" not found in mailbox ${this.opts.mailbox}`);
    this.folderIds.set(key, id);
    return id;
  }

  /**
   * A child folder by display name (null parent: the top of the mailbox); null when there is none.
   * A peer's claim folder is not cached: a person may delete it and a gateway make it anew.
   */
  private async childId(parentId: string | null, displayName: string, cache = true): Promise<string | null> {
    const cacheKey = `${parentId ?? ""}/${displayName.toLowerCase()}`;
    const cached = cache ? this.folderIds.get(cacheKey) : undefined;
    if (cached) return cached;
    const id = await childFolderId(this.api, this.opts.mailbox, parentId, displayName, this.call);
    if (id && cache) this.folderIds.set(cacheKey, id);
    return id;
  }

  /** A child folder, created when missing; a peer that creates it at the same time is no error. */
  private async ensureFolder(parentId: string, displayName: string): Promise<string> {
    const existing = await this.childId(parentId, displayName);
    if (existing) return existing;
    try {
      const made = await this.api.post<{ id?: string }>(
        `${this.folderPath(parentId)}/childFolders`,
        { displayName },
        this.call,
      );
      if (typeof made?.id !== "string") throw new Error(`Graph created folder "${displayName}" without an id`);
      this.folderIds.set(`${parentId}/${displayName.toLowerCase()}`, made.id);
      return made.id;
    } catch (err) {
      if (!(err instanceof GraphApiError && err.status === 409)) throw err;
      const raced = await this.childId(parentId, displayName);
      if (!raced) throw err;
      return raced;
    }
  }
}

function leaseSubject(instance: string, nonce: string, counter: number): string {
  return `${LEASE_SUBJECT} ${instance} ${nonce} ${counter}`;
}

/** The server's time stamp of a lease write: its lastModifiedDateTime, never our clock. */
function serverTime(item: Listed | undefined): number {
  const at = Date.parse(item?.lastModifiedDateTime ?? "");
  if (Number.isNaN(at)) throw new Error("Graph answered a lease write without lastModifiedDateTime");
  return at;
}

async function buffered(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function describe(err: unknown): string {
  if (typeof err === "object" && err !== null) return (err as { message?: string }).message ?? String(err);
  return String(err);
}
