// Shared mode over IMAP, with only what Exchange Online offers: MOVE, UIDPLUS (COPYUID, APPENDUID,
// UID EXPUNGE), IDLE and plain SEARCH. No keywords (Exchange answers BAD to them), no CONDSTORE,
// no ESEARCH, no ENABLE. Three connections, each with its own folder selected for good:
//   watched       the watched folder: IDLE for onChange, SEARCH UNSEEN, the claiming UID MOVE
//   claim         this instance's claim folder: FETCH, and the settling STORE / MOVE / EXPUNGE
//   coordination  <base>/Leases and peers' claim folders: leases, listClaimed(peer), release
// Commands on one connection run one round at a time (a round may select, move and expunge), and
// every round has a deadline: a silent server closes everything and onClosed reports it once.
import type { ImapFlow, SearchObject } from "imapflow";
import { type ImapEndpoint, openImap, type TokenSource } from "../mail/imap-login";
import { bareMessageId } from "../mail/parse-email";
import { uidSet } from "../mail/uid-set";
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

export interface ImapSharedTransportOptions {
  endpoint: ImapEndpoint;
  tokens: TokenSource;
  /** The watched folder: where new emails arrive and where released and settled ones go back. */
  folder: string;
  /** Coordination folder at the top level of the mailbox, default "Alarm gateways". */
  baseFolder?: string;
  /** Upper bound for one round of commands; a silent connection is dropped after it. */
  commandTimeoutMs: number;
  log(level: "info" | "warn" | "error", message: string): void;
}

/** Subject of a lease item: `gateway-lease <instance> <nonce>`. */
const LEASE_SUBJECT = "gateway-lease";
/** Emails fetched per FETCH: their bytes wait in memory until the consumer took them. */
const FETCH_CHUNK = 20;
/**
 * Emails up to this size (most alarm emails) are fetched whole, without setting \Seen (BODY.PEEK),
 * in the claim round just before the UID MOVE, on the connection that found them: they are
 * emitted without another round trip on the claim connection (NOOP, FETCH). Larger ones are
 * fetched from the claim folder as before.
 */
const PREFETCH_BYTES = 64 * 1024;
/** Prefetched emails kept until fetch() takes them: a claim that is never offered drops out. */
const PREFETCH_KEPT = 1000;

/** Runs rounds on one connection one after the other. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(round: () => Promise<T>): Promise<T> {
    const result = this.tail.then(round, round);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

interface Connection {
  client: ImapFlow;
  serial: Serial;
}

type Role = "watched" | "claim" | "coordination";

export class ImapSharedTransport implements SharedTransport {
  private readonly base: string;
  private conns: Partial<Record<Role, Connection>> = {};
  private instance = "";
  private delimiter = "/";
  /** Counts open() and close() calls: a connection that an older open() made late is dropped. */
  private generation = 0;
  private reported = false;
  private readonly changeListeners: (() => void)[] = [];
  /** Claimed uid → the email fetched just before it was claimed. */
  private readonly prefetched = new Map<string, FetchedEmail>();
  private readonly closedListeners: ((err: unknown) => void)[] = [];

  constructor(private readonly opts: ImapSharedTransportOptions) {
    this.base = opts.baseFolder ?? DEFAULT_COORDINATION_FOLDER;
  }

  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  onClosed(listener: (err: unknown) => void): void {
    this.closedListeners.push(listener);
  }

  async open(instance: string): Promise<void> {
    if (!instance.trim() || instance === LEASES_FOLDER || /[\r\n]/.test(instance)) {
      throw new ConfigurationError(`"${instance}" cannot be a gateway instance name`);
    }
    this.instance = instance;
    const generation = ++this.generation;
    // What goes wrong while opening is open()'s rejection, not an onClosed report.
    this.reported = true;
    try {
      await this.withDeadline(this.connectAll(generation), "IMAP server did not answer while opening shared mode");
    } catch (err) {
      await this.close();
      throw err;
    }
    this.reported = false;
  }

  private async connectAll(generation: number): Promise<void> {
    const settled = await Promise.allSettled(
      (["watched", "claim", "coordination"] as const).map((role) => this.connect(role, generation)),
    );
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const [watched, claim, coordination] = settled.map((r) => (r as PromiseFulfilledResult<Connection>).value) as [
      Connection,
      Connection,
      Connection,
    ];
    this.delimiter = await hierarchyDelimiter(coordination.client);
    if (this.instance.includes(this.delimiter)) {
      throw new ConfigurationError(
        `gateway instance name "${this.instance}" contains the folder separator "${this.delimiter}"`,
      );
    }
    await this.ensureFolders(coordination.client);
    await watched.client.mailboxOpen(this.opts.folder).catch((err: unknown) => {
      if (!watched.client.usable) throw err;
      throw new ConfigurationError(`cannot open folder "${this.opts.folder}": ${serverText(err)}`);
    });
    watched.client.on("exists", () => {
      for (const listener of this.changeListeners) listener();
    });
    await claim.client.mailboxOpen(this.claimPath(this.instance)).catch((err: unknown) => {
      if (!claim.client.usable) throw err;
      throw new ConfigurationError(`cannot open claim folder "${this.claimPath(this.instance)}": ${serverText(err)}`);
    });
  }

  private async connect(role: Role, generation: number): Promise<Connection> {
    const client = await openImap(this.opts.endpoint, this.opts.tokens);
    if (generation !== this.generation) {
      client.close(); // closed (or opened again) while this one was logging in
      throw new Error("shared mode closed while connecting");
    }
    const conn = { client, serial: new Serial() };
    this.conns[role] = conn;
    client.once("close", () => {
      // A connection of an earlier open() closing late says nothing about the current ones.
      if (this.conns[role]?.client === client) this.report(new Error(`IMAP ${role} connection closed`));
    });
    return conn;
  }

  async close(): Promise<void> {
    this.generation++;
    this.prefetched.clear();
    const clients = Object.values(this.conns).map((c) => c.client);
    this.conns = {};
    await Promise.all(
      clients.map(async (client) => {
        if (client.usable) await Promise.race([client.logout().catch(() => undefined), sleep(2000)]);
        client.close();
      }),
    );
  }

  private report(err: unknown): void {
    if (this.reported) return;
    this.reported = true;
    for (const listener of this.closedListeners) listener(err);
  }

  private claimPath(instance: string): string {
    return `${this.base}${this.delimiter}${instance}`;
  }

  private get leasesPath(): string {
    return `${this.base}${this.delimiter}${LEASES_FOLDER}`;
  }

  /** Creates what LIST does not show; another gateway creating the same folder at once is fine. */
  private async ensureFolders(client: ImapFlow): Promise<void> {
    const wanted = [this.base, this.leasesPath, this.claimPath(this.instance)];
    const existing = new Set([
      ...(await listFolders(client, this.base)).map((f) => f.path),
      ...(await listFolders(client, `${this.base}${this.delimiter}%`)).map((f) => f.path),
    ]);
    for (const path of wanted) {
      if (existing.has(path)) continue;
      try {
        await client.mailboxCreate(path);
      } catch (err) {
        if (!client.usable) throw err;
        const now = await listFolders(client, path).catch(() => []);
        if (now.some((f) => f.path === path)) continue; // created by another gateway meanwhile
        throw new ConfigurationError(`cannot create folder "${path}": ${serverText(err)}`);
      }
    }
  }

  /**
   * One round on a connection, in turn with the others there and within the deadline. A session
   * answers SEARCH, FETCH and STORE only about the emails it was told of (EXISTS, RFC 3501 7.4.1
   * and 5.2): `sync` sends NOOP first to learn what other sessions (this gateway's too) moved in.
   */
  private round<T>(
    role: Role,
    what: string,
    work: (client: ImapFlow) => Promise<T>,
    sync: () => boolean = () => role !== "coordination",
  ): Promise<T> {
    const conn = this.conns[role];
    if (!conn) return Promise.reject(new Error(`shared mode: not open (${what})`));
    return conn.serial.run(async () => {
      if (!conn.client.usable) throw new Error(`IMAP ${role} connection is closed (${what})`);
      return this.withDeadline(
        (async () => {
          if (sync()) await conn.client.noop();
          return work(conn.client);
        })(),
        `IMAP server stopped answering (${what})`,
      );
    });
  }

  private async withDeadline<T>(p: Promise<T>, message: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const generation = this.generation;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const err = new Error(message);
            if (generation === this.generation) {
              this.report(err);
              for (const c of Object.values(this.conns)) c.client.close();
            }
            reject(err);
          }, this.opts.commandTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  listWatched(limit: number): Promise<Candidate[]> {
    return this.round("watched", "listWatched", async (client) => {
      const found = await uidSearch(client, { seen: false }, "UID SEARCH UNSEEN");
      return found
        .sort((a, b) => a - b)
        .slice(0, Math.max(0, limit))
        .map((uid) => ({ id: String(uid), key: String(uid) }));
    });
  }

  claim(ids: string[]): Promise<Map<string, string>> {
    const uids = toUids(ids);
    if (uids.length === 0) return Promise.resolve(new Map());
    // No NOOP: the uids come from listWatched on this same connection.
    return this.round(
      "watched",
      "claim",
      async (client) => {
        const early = await this.prefetch(client, uids);
        const moved = await client.messageMove(uidSet(uids), this.claimPath(this.instance), { uid: true });
        if (moved === false) {
          if (!client.usable) throw new Error("IMAP watched connection closed during the claim");
          const path = this.claimPath(this.instance);
          if (!(await listFolders(client, path)).some((f) => f.path === path)) {
            // A peer took this gateway for dead and released it: open() again makes a new claim folder.
            const err = new Error(`claim folder "${path}" was deleted (released by another gateway?)`);
            this.report(err);
            throw err;
          }
          // Refused as a whole (e.g. every one gone): nothing moved that a COPYUID would name.
          this.opts.log("warn", `claim of uids ${uidSet(uids)} refused by the server`);
          return new Map();
        }
        const result = new Map<string, string>();
        // No COPYUID at all: none of them was there any more (another gateway was first).
        for (const [from, to] of moved.uidMap ?? []) {
          const id = claimedId(moved.uidValidity, to);
          result.set(String(from), id);
          const email = early.get(from);
          if (email) this.keepPrefetched(id, { ...email, id });
        }
        return result;
      },
      () => false,
    );
  }

  /** The small ones among `uids`, whole, read without setting \Seen; a failed fetch only costs the shortcut. */
  private async prefetch(client: ImapFlow, uids: number[]): Promise<Map<number, FetchedEmail>> {
    const early = new Map<number, FetchedEmail>();
    const query = { uid: true, size: true, internalDate: true, source: { maxLength: PREFETCH_BYTES } };
    const messages = await client.fetchAll(uidSet(uids), query, { uid: true }).catch(() => []);
    for (const m of messages) {
      // A partial body (BODY.PEEK[]<0.N>) is whole only when the email is no larger.
      if (!m.source || m.size === undefined || m.size > PREFETCH_BYTES || m.source.length !== m.size) continue;
      early.set(m.uid, { id: String(m.uid), source: m.source, size: m.size, receivedAt: isoDate(m.internalDate) });
    }
    return early;
  }

  private keepPrefetched(id: string, email: FetchedEmail): void {
    this.prefetched.set(id, email);
    if (this.prefetched.size > PREFETCH_KEPT) this.prefetched.delete(this.prefetched.keys().next().value as string);
  }

  listClaimed(instance: string): Promise<ClaimedItem[]> {
    if (instance === this.instance) {
      return this.round("claim", "listClaimed", (client) => listMessageIds(client));
    }
    return this.round("coordination", `listClaimed ${instance}`, async (client) => {
      const path = this.claimPath(instance);
      const opened = await client.mailboxOpen(path, { readOnly: true }).catch(() => false as const);
      if (opened === false) {
        if (!client.usable) throw new Error("IMAP coordination connection closed");
        return []; // released and deleted meanwhile
      }
      return listMessageIds(client);
    });
  }

  async *fetch(ids: string[]): AsyncIterable<FetchedEmail> {
    const wanted: ClaimedUid[] = [];
    for (const id of ids) {
      const early = this.prefetched.get(id);
      this.prefetched.delete(id);
      const parsed = parseClaimedId(id);
      if (early) yield early;
      else if (parsed) wanted.push(parsed);
    }
    for (let i = 0; i < wanted.length; i += FETCH_CHUNK) {
      const chunk = wanted.slice(i, i + FETCH_CHUNK);
      const got = await this.round("claim", "fetch", async (client) => {
        const uids = currentUids(client, chunk);
        if (uids.length === 0) return new Map();
        const messages = await client.fetchAll(
          uidSet(uids),
          { uid: true, source: true, size: true, internalDate: true },
          { uid: true },
        );
        return new Map(messages.map((m) => [m.uid, m]));
      });
      for (const { uid, id } of chunk) {
        const m = got.get(uid);
        if (!m?.source) continue;
        yield {
          id,
          source: m.source,
          size: m.size ?? m.source.length,
          receivedAt: isoDate(m.internalDate),
        };
      }
    }
  }

  settle(id: string, action: SharedAction): Promise<boolean> {
    const claimed = parseClaimedId(id);
    if (!claimed) return Promise.resolve(false);
    const { uid } = claimed;
    return this.round("claim", `settle ${action.kind}`, async (client) => {
      if (currentUids(client, [claimed]).length === 0 || !(await holds(client, uid))) return false;
      if (action.kind === "delete") return deleteUids(client, [uid]);
      if (action.kind === "seen" || action.kind === "none") {
        if (!(await client.messageFlagsAdd(String(uid), ["\\Seen"], { uid: true }))) {
          throw commandFailed(client, "STORE +FLAGS (\\Seen)");
        }
      }
      const target = action.kind === "move" ? action.folder : this.opts.folder;
      const moved = await client.messageMove(String(uid), target, { uid: true });
      if (moved !== false && moved.uidMap?.has(uid)) return true;
      if (!client.usable) throw new Error("IMAP claim connection closed during the settlement");
      // No COPYUID: it went away meanwhile (released by a peer), or the move was refused.
      if (await holds(client, uid)) throw new Error(`cannot move uid ${uid} to "${target}"`);
      return false;
    });
  }

  async discard(id: string): Promise<void> {
    this.prefetched.delete(id);
    const claimed = parseClaimedId(id);
    if (!claimed) return;
    await this.round("claim", "discard", async (client) => {
      if (currentUids(client, [claimed]).length > 0 && (await holds(client, claimed.uid))) {
        await deleteUids(client, [claimed.uid]);
      }
    });
  }

  release(instance: string): Promise<number> {
    if (instance === this.instance || instance === LEASES_FOLDER) {
      return Promise.reject(new Error(`release of "${instance}" refused: not a peer`));
    }
    return this.round("coordination", `release ${instance}`, async (client) => {
      const path = this.claimPath(instance);
      let moved = 0;
      const opened = await client.mailboxOpen(path).catch(() => false as const);
      if (opened !== false) {
        // A peer that still lives might claim into its folder while this runs: move until empty.
        for (let pass = 0; pass < 5; pass++) {
          const uids = await searchAll(client);
          if (uids.length === 0) break;
          const set = uidSet(uids);
          if (!(await client.messageFlagsRemove(set, ["\\Seen"], { uid: true }))) {
            throw commandFailed(client, "STORE -FLAGS (\\Seen)");
          }
          const result = await client.messageMove(set, this.opts.folder, { uid: true });
          if (result === false) throw commandFailed(client, `UID MOVE to "${this.opts.folder}"`);
          moved += result.uidMap?.size ?? uids.length;
          await client.noop();
        }
        if ((await searchAll(client)).length > 0)
          this.opts.log("warn", `claim folder "${path}" still fills: released again next round`);
      } else if (!client.usable) {
        throw new Error("IMAP coordination connection closed");
      }
      await this.deleteLeases(client, (l) => l.instance === instance);
      // The folder itself stays: a gateway taken for dead may still have a claim into it in flight, and
      // IMAP DELETE would expunge that email with the folder. An empty folder without a lease costs one
      // SELECT per round; a person may delete it.
      return moved;
    });
  }

  renewLease(instance: string, nonce: string): Promise<number> {
    return this.round("coordination", "renewLease", async (client) => {
      // No date argument: the server stamps INTERNALDATE with its own clock (RFC 3501 6.3.11).
      const appended = await client.append(this.leasesPath, leaseMessage(instance, nonce));
      const newUid = appended ? appended.uid : undefined;
      if (!newUid) throw new Error("APPEND of the lease answered without APPENDUID");
      await client.mailboxOpen(this.leasesPath);
      const [mine] = await client.fetchAll(String(newUid), { uid: true, internalDate: true }, { uid: true });
      const stamp = toDate(mine?.internalDate);
      if (!stamp) throw new Error(`lease uid ${newUid} has no INTERNALDATE`);
      await this.deleteLeases(client, (l) => l.instance === instance && l.nonce === nonce && l.uid < newUid);
      return stamp.getTime();
    });
  }

  readLeases(): Promise<LeaseRecord[]> {
    return this.round("coordination", "readLeases", async (client) => {
      const newest = new Map<string, LeaseRecord>();
      for (const lease of await this.leaseItems(client)) {
        const key = `${lease.instance}\n${lease.nonce}`;
        const known = newest.get(key);
        if (!known || lease.renewedAt > known.renewedAt) {
          newest.set(key, { instance: lease.instance, nonce: lease.nonce, renewedAt: lease.renewedAt });
        }
      }
      return [...newest.values()];
    });
  }

  listInstances(): Promise<string[]> {
    return this.round("coordination", "listInstances", async (client) => {
      const folders = await listFolders(client, `${this.base}${this.delimiter}%`);
      const prefix = `${this.base}${this.delimiter}`;
      return folders
        .filter((f) => f.path.startsWith(prefix) && !hasFlag(f, "\\NonExistent") && !hasFlag(f, "\\Noselect"))
        .map((f) => f.path.slice(prefix.length))
        .filter((name) => name !== LEASES_FOLDER && !name.includes(this.delimiter));
    });
  }

  /** Lease items of the Leases folder (selects it). */
  private async leaseItems(client: ImapFlow): Promise<(LeaseRecord & { uid: number })[]> {
    await client.mailboxOpen(this.leasesPath);
    if (client.mailbox && client.mailbox.exists === 0) return [];
    const messages = await client.fetchAll("1:*", { uid: true, envelope: true, internalDate: true }, { uid: true });
    const leases: (LeaseRecord & { uid: number })[] = [];
    for (const m of messages) {
      const parsed = parseLeaseSubject(m.envelope?.subject);
      const at = toDate(m.internalDate);
      if (parsed && at) leases.push({ ...parsed, renewedAt: at.getTime(), uid: m.uid });
    }
    return leases;
  }

  private async deleteLeases(client: ImapFlow, which: (lease: LeaseRecord & { uid: number }) => boolean) {
    const uids = (await this.leaseItems(client)).filter(which).map((l) => l.uid);
    if (uids.length > 0 && !(await deleteUids(client, uids))) throw commandFailed(client, "deleting old leases");
  }
}

/** `Subject: gateway-lease <instance> <nonce>`; the instance may hold spaces, the nonce not. */
export function parseLeaseSubject(subject: string | undefined): { instance: string; nonce: string } | null {
  const m = /^gateway-lease (.+) (\S+)$/.exec(subject?.trim() ?? "");
  return m?.[1] && m[2] ? { instance: m[1], nonce: m[2] } : null;
}

function leaseMessage(instance: string, nonce: string): string {
  const subject = `${LEASE_SUBJECT} ${instance} ${nonce}`;
  const encoded = /^[\x20-\x7e]*$/.test(subject)
    ? subject
    : `=?utf-8?B?${Buffer.from(subject, "utf8").toString("base64")}?=`;
  return (
    "From: Alarm gateway <gateway@alarm-gateway.invalid>\r\n" +
    `Subject: ${encoded}\r\n` +
    `Date: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <lease-${nonce}-${Date.now()}@alarm-gateway.invalid>\r\n` +
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
    "Lease of an alarm gateway in shared mode. Do not move or delete while gateways run.\r\n"
  );
}

/** The hierarchy delimiter as the server states it (NAMESPACE, else LIST), never assumed. */
async function hierarchyDelimiter(client: ImapFlow): Promise<string> {
  if (client.namespace?.delimiter) return client.namespace.delimiter;
  const [top] = await listFolders(client, "%");
  return top?.delimiter || "/";
}

interface ListedFolder {
  path: string;
  delimiter: string;
  flags: Set<string>;
}

/** LIST "" <pattern> alone: imapflow's public list() always lists "*" of the whole mailbox. */
async function listFolders(client: ImapFlow, pattern: string): Promise<ListedFolder[]> {
  const runner = client as unknown as {
    run(command: "LIST", reference: string, pattern: string, options: { listOnly: true }): Promise<ListedFolder[]>;
  };
  return (await runner.run("LIST", "", pattern, { listOnly: true })) ?? [];
}

function hasFlag(folder: ListedFolder, flag: string): boolean {
  return [...folder.flags].some((f) => f.toLowerCase() === flag.toLowerCase());
}

async function listMessageIds(client: ImapFlow): Promise<ClaimedItem[]> {
  const uids = await searchAll(client);
  if (uids.length === 0) return [];
  const messages = await client.fetchAll(uidSet(uids), { uid: true, envelope: true }, { uid: true });
  const validity = client.mailbox ? client.mailbox.uidValidity : undefined;
  return messages
    .sort((a, b) => a.uid - b.uid)
    .map((m) => ({ id: claimedId(validity, m.uid), messageId: bareMessageId(m.envelope?.messageId) }));
}

async function searchAll(client: ImapFlow): Promise<number[]> {
  return (await uidSearch(client, { all: true }, "UID SEARCH ALL")).sort((a, b) => a - b);
}

async function holds(client: ImapFlow, uid: number): Promise<boolean> {
  return (await uidSearch(client, { uid: String(uid) }, "UID SEARCH UID")).includes(uid);
}

/** STORE +FLAGS (\Deleted) and UID EXPUNGE of those uids only, checked: imapflow may say yes to a refusal. */
async function deleteUids(client: ImapFlow, uids: number[]): Promise<boolean> {
  const set = uidSet(uids);
  if (!(await client.messageDelete(set, { uid: true }))) throw commandFailed(client, `delete of uids ${set}`);
  const left = await uidSearch(client, { uid: set }, "UID SEARCH UID");
  if (left.length > 0) throw new Error(`uids ${uidSet(left)} are still there after UID EXPUNGE`);
  return true;
}

async function uidSearch(client: ImapFlow, query: SearchObject, what: string): Promise<number[]> {
  const found = await client.search(query, { uid: true });
  if (!Array.isArray(found)) throw commandFailed(client, what);
  return [...found];
}

function commandFailed(client: ImapFlow, what: string): Error {
  return new Error(client.usable ? `${what} refused by the server` : `${what}: connection closed`);
}

/**
 * An email in a claim folder is named by the folder's UIDVALIDITY and its UID (RFC 3501 2.3.1.1:
 * a UID names one message only together with the UIDVALIDITY). A claim folder deleted by a person
 * and created again starts new UIDs; a settlement still queued for the old one must then find
 * nothing rather than act on the new email that got the same UID.
 */
interface ClaimedUid {
  id: string;
  validity: string;
  uid: number;
}

function claimedId(validity: bigint | undefined, uid: number): string {
  return `${validity ?? 0n}.${uid}`;
}

function parseClaimedId(id: string): ClaimedUid | undefined {
  const m = /^(\d{1,20})\.([1-9]\d{0,9})$/.exec(id);
  return m?.[1] && m[2] ? { id, validity: m[1], uid: Number(m[2]) } : undefined;
}

/** The UIDs of `claimed` that belong to the claim folder as the claim connection has it selected now. */
function currentUids(client: ImapFlow, claimed: readonly ClaimedUid[]): number[] {
  const now = client.mailbox ? String(client.mailbox.uidValidity) : undefined;
  return claimed.filter((c) => c.validity === now).map((c) => c.uid);
}

function toUids(ids: string[]): number[] {
  return ids.filter((id) => /^[1-9]\d{0,9}$/.test(id)).map(Number);
}

function toDate(value: Date | string | undefined): Date | null {
  if (value === undefined) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

function isoDate(value: Date | string | undefined): string | null {
  return toDate(value)?.toISOString() ?? null;
}

function serverText(err: unknown): string {
  const e = err as { responseText?: string; message?: string };
  return e.responseText || e.message || String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
