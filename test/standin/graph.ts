// A local stand-in for Microsoft Graph's mail API, app-only: users/{mailbox}/mailFolders, messages,
// messages/delta, $value, attachments, move, sendMail. It follows Microsoft's documented wire behaviour
// (URLs, JSON shapes, error bodies, delta state tokens, throttling) so that production code reaches it
// only through the "custom cloud" Graph host setting. Test and demo use only: never imported by runtime code.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, Agent as HttpsAgent, request as httpsRequest, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeProtectedHeader, importSPKI, type JWTPayload, jwtVerify } from "jose";
import { type AddressObject, type ParsedMail, simpleParser } from "mailparser";
import type { TestCertificates } from "./certs";

export interface GraphStandinOptions {
  certs: TestCertificates;
  /** Verifies bearer tokens: signed by this key (the Entra stand-in's publicKeyPem + kid), iss https://sts.windows.net/<tenant>/, aud = `https://${audienceHost}`, exp/nbf. */
  signingKey: { kid: string; publicKeyPem: string };
  tenantId: string;
  /**
   * More tenants and their mailboxes (`mailboxes` above belong to `tenantId`): a token of one tenant asking
   * for another tenant's mailbox gets 404 ErrorInvalidUser, as Graph answers for a user it does not know.
   */
  moreTenants?: { id: string; mailboxes: string[] }[];
  audienceHost: string;
  /** Mailboxes that exist, e.g. ["alarms@contoso.test"]; any other user answers 404 ErrorInvalidUser. */
  mailboxes: string[];
  /** Extra folders besides the default ones; "Processed" is a top-level folder, "Inbox/Alarms" a child of Inbox. */
  folders?: string[];
  port?: number;
  /** Default delta page size (Graph's is 10), overridden per request by `Prefer: odata.maxpagesize`. */
  pageSize?: number;
  /** Artificial time each admitted request stays in flight, so concurrency can be observed. */
  latencyMs?: number;
  /** Exchange's MailboxConcurrency limit per app and mailbox (4). */
  mailboxConcurrency?: number;
  /** Retry-After on MailboxConcurrency 429s; missing → no header (Exchange does not always send one). */
  concurrencyRetryAfterSeconds?: number;
  /**
   * Outlook's request limit per app and mailbox: 10,000 requests in a 10-minute period
   * (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits). Beyond it: 429
   * ApplicationThrottled with Retry-After until the window has room. Tests may set a smaller window.
   */
  mailboxRequestLimit?: { requests: number; windowMs: number };
  /** Mailboxes outside the app's Application Access Policy / RBAC scope: 403 ErrorAccessDenied. */
  deniedMailboxes?: string[];
  /** Directory users without an Exchange Online mailbox: 404 MailboxNotEnabledForRESTAPI. */
  usersWithoutMailbox?: string[];
  /** host:port that clients use when it is not this server's own (a TCP proxy in front): links name it. */
  publicHost?: string;
  /** Authority host named in the WWW-Authenticate header of 401 answers. */
  authorityHost?: string;
  /**
   * How far the server's clock is ahead of this machine's (ms, may be negative): every time stamp it
   * writes (createdDateTime, lastModifiedDateTime, receivedDateTime of new mail, the Date header) is
   * on its own clock, as Exchange's is. Settable later through `clockOffsetMs`.
   */
  clockOffsetMs?: number;
}

export interface StoredMessage {
  id: string;
  folderId: string;
  mime: Buffer;
  isRead: boolean;
  receivedDateTime: string;
  internetMessageId: string | null;
  subject: string;
  changeKey: string;
}

export interface SentMail {
  mailbox: string;
  /** The JSON posted to sendMail, or the base64 text of a MIME-format sendMail. */
  body: any;
  at: number;
  /** The message as it was sent (built from the JSON, or the decoded MIME). */
  mime: Buffer;
}

export interface GraphRequestRecord {
  method: string;
  /** Decoded path, without the query. */
  path: string;
  /** The request target as sent: path and query, still encoded. */
  url: string;
  status: number;
  at: number;
  mailbox?: string;
}

export type GraphFailure =
  | { kind: "throttle"; retryAfterSeconds?: number; status?: 429 | 503; count?: number }
  | { kind: "server-error"; count?: number }
  | { kind: "unauthorized"; count?: number }
  | { kind: "access-denied"; count?: number };

/** How a test delivers a message when it needs more control than a folder name. */
export interface DeliverOptions {
  folder?: string;
  /** Server receipt time (Exchange's receivedDateTime); default now. */
  receivedDateTime?: string | Date;
  isRead?: boolean;
}

interface Folder {
  id: string;
  displayName: string;
  wellKnownName?: string;
  parentFolderId: string;
  isHidden: boolean;
  /** Items that left this folder (moved out or deleted), for delta's @removed entries. */
  tombstones: { id: string; seq: number; createdSeq: number }[];
}

interface MessageRecord extends StoredMessage {
  /** The id a client sees with `Prefer: IdType="ImmutableId"`: kept across moves within the mailbox. */
  immutableId: string;
  /** Created by a client (POST .../messages) rather than delivered: a draft, wherever it is. */
  isDraft: boolean;
  /** Change sequence of the last change (creation, flag change): delta tokens are positions in it. */
  seq: number;
  createdSeq: number;
  createdDateTime: string;
  lastModifiedDateTime: string;
  sentDateTime: string;
  conversationId: string;
  categories: string[];
  headers: { name: string; value: string }[];
  parsed?: Promise<ParsedMail>;
}

interface Mailbox {
  address: string;
  objectId: string;
  rootId: string;
  folders: Map<string, Folder>;
  messages: Map<string, MessageRecord>;
  seq: number;
}

/** What a delta state token carries; tokens are stateless, so they survive a restart of the client. */
interface DeltaState {
  kind: "skip" | "delta";
  mailbox: string;
  folderId: string;
  /** Changes after this sequence number belong to the round (0 in the initial round). */
  from: number;
  /** Upper bound of the round, fixed when the round began. */
  to: number;
  /** Paging cursor within the round. */
  after: number;
  initial: boolean;
  select?: string;
  changeType?: string;
  filter?: string;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  record: GraphRequestRecord;
  requestId: string;
  clientRequestId: string;
  roles: string[];
  prefer: Map<string, string>;
  /** The tenant whose token made the request (after authentication). */
  tenant?: string;
}

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const DEFAULT_FOLDERS: [wellKnownName: string, displayName: string][] = [
  ["inbox", "Inbox"],
  ["drafts", "Drafts"],
  ["sentitems", "Sent Items"],
  ["deleteditems", "Deleted Items"],
  ["junkemail", "Junk Email"],
  ["outbox", "Outbox"],
  ["archive", "Archive"],
];

/** Properties a message has in Graph v1.0, in the order Graph writes them. */
const MESSAGE_PROPERTIES = [
  "createdDateTime",
  "lastModifiedDateTime",
  "changeKey",
  "categories",
  "receivedDateTime",
  "sentDateTime",
  "hasAttachments",
  "internetMessageId",
  "subject",
  "bodyPreview",
  "importance",
  "parentFolderId",
  "conversationId",
  "conversationIndex",
  "isDeliveryReceiptRequested",
  "isReadReceiptRequested",
  "isRead",
  "isDraft",
  "webLink",
  "inferenceClassification",
  "body",
  "sender",
  "from",
  "toRecipients",
  "ccRecipients",
  "bccRecipients",
  "replyTo",
  "flag",
];
/** Only returned when selected. */
const SELECT_ONLY_PROPERTIES = ["uniqueBody", "internetMessageHeaders"];
const FOLDER_PROPERTIES = [
  "displayName",
  "parentFolderId",
  "childFolderCount",
  "unreadItemCount",
  "totalItemCount",
  "sizeInBytes",
  "isHidden",
];

const READ_ROLES = ["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"];
const WRITE_ROLES = ["Mail.ReadWrite"];
const USER_READ_ROLES = ["User.Read.All", "User.ReadWrite.All", "User.ReadBasic.All", "Directory.Read.All"];
const ID_SHAPE = /^(A[AQ]MkAD|AAkALgAAAAAAHYQ)[A-Za-z0-9_-]+=*$/;
/** The shape of Exchange's immutable ids (restImmutableEntryId), which start like this. */
const IMMUTABLE_PREFIX = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A";

export class GraphStandin {
  host = "";

  /** The host clients reach this stand-in by (a proxy's, when there is one): Graph writes its links with it. */
  get linkHost(): string {
    return this.options.publicHost ?? this.host;
  }
  readonly requests: GraphRequestRecord[] = [];
  readonly sent: SentMail[] = [];
  /** Max requests in flight at once for one mailbox seen so far (settable, e.g. reset to 0 between phases). */
  maxConcurrent = 0;
  /** Mailboxes of the other tenants (moreTenants) → their tenant; the rest are the main tenant's. */
  private readonly tenantOf = new Map<string, string>();
  /** Admitted request times per mailbox, within the request limit's window. */
  private readonly recent = new Map<string, number[]>();
  /** Requests answered 429 for the request limit (not concurrency), per mailbox. */
  readonly rateLimited = new Map<string, number>();
  /** The request limit in force (settable, e.g. a small window for a test); Outlook's by default. */
  requestLimit: { requests: number; windowMs: number } = { requests: 10_000, windowMs: 600_000 };
  /** The server's clock minus this machine's, in ms (see the option of the same name). */
  clockOffsetMs: number;
  private failure: GraphFailure | undefined;
  private failuresLeft = Number.POSITIVE_INFINITY;
  private server: Server | undefined;
  private key: CryptoKey | undefined;
  private tokenSecret = randomBytes(32);
  private readonly sockets = new Set<Socket>();
  /** TCP (TLS) connections accepted since start: each a handshake the client paid. */
  connectionsAccepted = 0;
  private readonly inFlight = new Map<string, number>();
  private readonly boxes = new Map<string, Mailbox>();

  constructor(private readonly options: GraphStandinOptions) {
    this.clockOffsetMs = options.clockOffsetMs ?? 0;
    if (options.mailboxRequestLimit) this.requestLimit = options.mailboxRequestLimit;
    for (const address of options.mailboxes) this.boxes.set(address.toLowerCase(), this.newMailbox(address));
    for (const t of options.moreTenants ?? [])
      for (const address of t.mailboxes) {
        this.boxes.set(address.toLowerCase(), this.newMailbox(address));
        this.tenantOf.set(address.toLowerCase(), t.id);
      }
  }

  async start(): Promise<void> {
    this.key = await importSPKI(this.options.signingKey.publicKeyPem, "RS256");
    const server = createServer({ cert: this.options.certs.cert, key: this.options.certs.key }, (req, res) => {
      void this.handle(req, res);
    });
    server.on("connection", (s: Socket) => {
      this.connectionsAccepted += 1;
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.options.port ?? 0, "127.0.0.1", resolve));
    this.server = server;
    this.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.innerAgent?.destroy();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Fails the next `count` requests (default: all until cleared with undefined). */
  failWith(f: GraphFailure | undefined): void {
    this.failure = f;
    this.failuresLeft = f?.count ?? Number.POSITIVE_INFINITY;
  }

  /** Forgets every delta/skip token issued so far, as Exchange does when its sync-state cache evicts them: next use → 410. */
  expireDeltaTokens(): void {
    this.tokenSecret = randomBytes(32);
  }

  /** Delivers a MIME email into a folder (default Inbox) as Exchange would: new id, metadata from the headers. */
  deliver(mailbox: string, mime: string | Buffer, folder?: string | DeliverOptions): StoredMessage {
    const opts: DeliverOptions = typeof folder === "string" ? { folder } : (folder ?? {});
    const box = this.mailbox(mailbox);
    const target = this.findFolder(box, opts.folder ?? "inbox");
    const bytes = typeof mime === "string" ? Buffer.from(mime, "utf8") : Buffer.from(mime);
    const received = opts.receivedDateTime ? new Date(opts.receivedDateTime) : this.now();
    return publicCopy(this.store(box, target, bytes, { received, isRead: opts.isRead ?? false }));
  }

  /** Current content of a folder (by id, well-known name, display name or "Parent/Child" path), oldest first. */
  messages(mailbox: string, folder = "inbox"): StoredMessage[] {
    const box = this.mailbox(mailbox);
    const f = this.findFolder(box, folder);
    return [...box.messages.values()].filter((m) => m.folderId === f.id).map(publicCopy);
  }

  folderId(mailbox: string, nameOrWellKnown: string): string {
    return this.findFolder(this.mailbox(mailbox), nameOrWellKnown).id;
  }

  /** A change made by another client (Outlook): flips the read flag. */
  setRead(mailbox: string, id: string, isRead: boolean): void {
    const box = this.mailbox(mailbox);
    const rec = box.messages.get(id);
    if (!rec) throw new Error(`no message ${id} in ${mailbox}`);
    this.update(box, rec, { isRead });
  }

  /** A move made by another client: new id in the destination, removed from the source. */
  move(mailbox: string, id: string, folder: string): StoredMessage {
    const box = this.mailbox(mailbox);
    const rec = box.messages.get(id);
    if (!rec) throw new Error(`no message ${id} in ${mailbox}`);
    return publicCopy(this.relocate(box, rec, this.findFolder(box, folder)));
  }

  /** A deletion made by another client (soft delete into Recoverable Items). */
  remove(mailbox: string, id: string): void {
    const box = this.mailbox(mailbox);
    const rec = box.messages.get(id);
    if (!rec) throw new Error(`no message ${id} in ${mailbox}`);
    this.relocate(box, rec, this.findFolder(box, "recoverableitemsdeletions"));
  }

  /** The server's own time. */
  now(): Date {
    return new Date(Date.now() + this.clockOffsetMs);
  }

  // ---- mailbox model ----

  private newMailbox(address: string): Mailbox {
    const box: Mailbox = {
      address,
      objectId: guidFrom(`user:${address.toLowerCase()}`),
      rootId: exchangeId("AQMkAD"),
      folders: new Map(),
      messages: new Map(),
      seq: 0,
    };
    const add = (displayName: string, parentFolderId: string, wellKnownName?: string, isHidden = false) => {
      const f: Folder = {
        id: exchangeId("AQMkAD"),
        displayName,
        parentFolderId,
        wellKnownName,
        isHidden,
        tombstones: [],
      };
      box.folders.set(f.id, f);
      return f;
    };
    const top = add("Top of Information Store", box.rootId, "msgfolderroot");
    add("Deletions", box.rootId, "recoverableitemsdeletions", true);
    for (const [wk, name] of DEFAULT_FOLDERS) add(name, top.id, wk);
    for (const path of this.options.folders ?? []) {
      let parent = top;
      for (const part of path.split("/").filter(Boolean)) {
        parent =
          [...box.folders.values()].find(
            (f) => f.parentFolderId === parent.id && f.displayName.toLowerCase() === part.toLowerCase(),
          ) ?? add(part, parent.id);
      }
    }
    return box;
  }

  private mailbox(address: string): Mailbox {
    const box = this.boxes.get(address.toLowerCase());
    if (!box) throw new Error(`the Graph stand-in has no mailbox ${address}`);
    return box;
  }

  private findFolder(box: Mailbox, name: string): Folder {
    const f = this.folderByKey(box, name) ?? this.folderByPath(box, name);
    if (!f) throw new Error(`no folder "${name}" in ${box.address}`);
    return f;
  }

  /** How Graph resolves a folder in a URL: id or well-known name (display names are not keys). */
  private folderByKey(box: Mailbox, key: string): Folder | undefined {
    const wk = key.toLowerCase();
    return box.folders.get(key) ?? [...box.folders.values()].find((f) => f.wellKnownName === wk);
  }

  private folderByPath(box: Mailbox, path: string): Folder | undefined {
    const top = this.folderByKey(box, "msgfolderroot")!;
    let current: Folder | undefined;
    for (const part of path.split("/").filter(Boolean)) {
      const parentId: string = current?.id ?? top.id;
      current = [...box.folders.values()].find(
        (f) => f.parentFolderId === parentId && f.displayName.toLowerCase() === part.toLowerCase(),
      );
      if (!current) return undefined;
    }
    return current;
  }

  private store(
    box: Mailbox,
    folder: Folder,
    mime: Buffer,
    how: {
      received: Date;
      isRead: boolean;
      conversationId?: string;
      categories?: string[];
      immutableId?: string;
      isDraft?: boolean;
    },
  ): MessageRecord {
    const headers = parseHeaders(mime);
    const header = (name: string) => headers.find((h) => h.name.toLowerCase() === name)?.value;
    const date = header("date") ? new Date(header("date")!) : undefined;
    const now = isoSeconds(this.now());
    box.seq += 1;
    const rec: MessageRecord = {
      id: exchangeId("AAMkAD"),
      immutableId: how.immutableId ?? exchangeId(IMMUTABLE_PREFIX),
      isDraft: how.isDraft ?? false,
      folderId: folder.id,
      mime,
      isRead: how.isRead,
      receivedDateTime: isoSeconds(how.received),
      internetMessageId: header("message-id")?.trim() || null,
      subject: decodeWords(header("subject") ?? ""),
      changeKey: changeKey(),
      seq: box.seq,
      createdSeq: box.seq,
      createdDateTime: now,
      lastModifiedDateTime: now,
      sentDateTime: date && !Number.isNaN(date.getTime()) ? isoSeconds(date) : isoSeconds(how.received),
      conversationId: how.conversationId ?? exchangeId("AAQkAD"),
      categories: how.categories ?? [],
      headers,
    };
    box.messages.set(rec.id, rec);
    return rec;
  }

  private update(
    box: Mailbox,
    rec: MessageRecord,
    changes: { isRead?: boolean; categories?: string[]; subject?: string },
  ): void {
    let changed = false;
    if (changes.subject !== undefined && changes.subject !== rec.subject) {
      rec.subject = changes.subject;
      changed = true;
    }
    if (changes.isRead !== undefined && changes.isRead !== rec.isRead) {
      rec.isRead = changes.isRead;
      changed = true;
    }
    if (changes.categories && JSON.stringify(changes.categories) !== JSON.stringify(rec.categories)) {
      rec.categories = [...changes.categories];
      changed = true;
    }
    if (!changed) return;
    box.seq += 1;
    rec.seq = box.seq;
    rec.changeKey = changeKey();
    rec.lastModifiedDateTime = isoSeconds(this.now());
  }

  /** Exchange moves by copying into the destination (new id) and removing the original. */
  private relocate(box: Mailbox, rec: MessageRecord, to: Folder): MessageRecord {
    const from = box.folders.get(rec.folderId)!;
    box.messages.delete(rec.id);
    box.seq += 1;
    from.tombstones.push({ id: rec.id, seq: box.seq, createdSeq: rec.createdSeq });
    const moved = this.store(box, to, rec.mime, {
      received: new Date(rec.receivedDateTime),
      isRead: rec.isRead,
      conversationId: rec.conversationId,
      categories: rec.categories,
      immutableId: rec.immutableId,
      isDraft: rec.isDraft,
    });
    moved.createdDateTime = rec.createdDateTime;
    moved.subject = rec.subject;
    moved.parsed = rec.parsed;
    return moved;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `https://${this.linkHost}`);
    const record: GraphRequestRecord = {
      method: req.method ?? "GET",
      path: safeDecode(url.pathname),
      url: req.url ?? "/",
      status: 0,
      at: Date.now(),
    };
    this.requests.push(record);
    const clientRequestId = headerValue(req, "client-request-id") ?? randomUUID();
    const ctx: Ctx = {
      req,
      res,
      url,
      record,
      requestId: randomUUID(),
      clientRequestId,
      roles: [],
      prefer: parsePrefer(headerValue(req, "prefer")),
    };
    const segments = splitPath(url.pathname);
    let slot: string | undefined;
    let overLimit = false;
    try {
      if (segments[0]?.toLowerCase() !== "v1.0" && segments[0]?.toLowerCase() !== "beta") {
        throw new GraphError(400, "BadRequest", "Invalid version.");
      }
      const path = segments.slice(1);
      if (path[0]?.toLowerCase() === "users" && path[1]) {
        record.mailbox = path[1];
        slot = path[1].toLowerCase();
        const now = (this.inFlight.get(slot) ?? 0) + 1;
        this.inFlight.set(slot, now);
        this.maxConcurrent = Math.max(this.maxConcurrent, now);
        // Decided on arrival: the requests already in flight keep their places.
        overLimit = now > (this.options.mailboxConcurrency ?? 4);
      }
      this.injectedFailure();
      await this.authenticate(ctx);
      if (path.length === 1 && path[0] === "$batch") {
        await this.batch(ctx);
        return;
      }
      if (slot) this.checkRequestRate(slot);
      if (overLimit) {
        const retry = this.options.concurrencyRetryAfterSeconds;
        throw new GraphError(
          429,
          "ApplicationThrottled",
          "Application is over its MailboxConcurrency limit.",
          retry === undefined ? {} : { "Retry-After": String(retry) },
        );
      }
      if (this.options.latencyMs) await sleep(this.options.latencyMs);
      await this.route(ctx, path);
    } catch (err) {
      if (err instanceof GraphError) this.sendError(ctx, err);
      else this.sendError(ctx, new GraphError(500, "ErrorInternalServerError", String(err)));
    } finally {
      if (slot) this.inFlight.set(slot, (this.inFlight.get(slot) ?? 1) - 1);
    }
  }

  /** Batches answered, and the requests they carried. */
  batches = 0;
  batchedRequests = 0;
  private innerAgent: HttpsAgent | undefined;

  /**
   * JSON batching (https://learn.microsoft.com/graph/json-batching): `POST /v1.0/$batch` with at most 20
   * requests, each answered in `responses` with its own status, headers and body. Each request goes through
   * this server's whole pipeline (token, the mailbox's request limit and concurrency, routing) as the batch's
   * caller, so a batch saves round trips but no request against a mailbox's limits; Graph runs at most 4 of a
   * batch's requests at once.
   */
  private async batch(ctx: Ctx): Promise<void> {
    if (ctx.req.method !== "POST") throw new GraphError(405, "BadRequest", "Method not allowed for $batch.");
    const body = await readJson(ctx.req);
    const requests: { id?: unknown; method?: unknown; url?: unknown; headers?: Record<string, string> }[] =
      Array.isArray(body?.requests) ? body.requests : [];
    if (requests.length === 0) throw new GraphError(400, "BadRequest", "Invalid batch payload format.");
    if (requests.length > 20)
      throw new GraphError(400, "BadRequest", "Number of batch request steps exceeds the maximum of 20.");
    const ids = new Set<string>();
    for (const r of requests) {
      if (
        typeof r.id !== "string" ||
        !r.id ||
        ids.has(r.id) ||
        typeof r.method !== "string" ||
        typeof r.url !== "string"
      )
        throw new GraphError(400, "BadRequest", "Invalid batch payload format.");
      ids.add(r.id);
    }
    this.batches += 1;
    this.batchedRequests += requests.length;
    const authorization = headerValue(ctx.req, "authorization") ?? "";
    const responses: object[] = [];
    const queue = [...requests];
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const url = `https://${this.host}/${ctx.url.pathname.split("/")[1]}${String(r.url).startsWith("/") ? "" : "/"}${r.url}`;
        const answer = await this.inner(url, String(r.method), { ...(r.headers ?? {}), authorization });
        const text = answer.text;
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: given as text
        }
        const headers: Record<string, string> = {};
        for (const h of ["retry-after", "content-type", "location"]) {
          const v = answer.headers[h];
          if (v) headers[h === "retry-after" ? "Retry-After" : h === "content-type" ? "Content-Type" : "Location"] = v;
        }
        responses.push({ id: r.id, status: answer.status, headers, ...(parsed === undefined ? {} : { body: parsed }) });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    this.sendJson(ctx, 200, { responses });
  }

  /**
   * One request of a batch, sent to this server over HTTPS like any other, trusting the stand-in's own CA
   * (not the process's NODE_EXTRA_CA_CERTS: a bench process without it once got a 500 for every batch).
   */
  private inner(
    url: string,
    method: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, string | undefined>; text: string }> {
    this.innerAgent ??= new HttpsAgent({ keepAlive: true, ca: this.options.certs.ca });
    const agent = this.innerAgent;
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const flat: Record<string, string | undefined> = {};
          for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(", ") : v;
          resolve({ status: res.statusCode ?? 0, headers: flat, text: Buffer.concat(chunks).toString("utf8") });
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** Outlook's per-mailbox request limit over a sliding window (every request counts, throttled ones too). */
  private checkRequestRate(mailbox: string): void {
    const { requests, windowMs } = this.requestLimit;
    const now = Date.now();
    const times = (this.recent.get(mailbox) ?? []).filter((t) => t > now - windowMs);
    times.push(now);
    this.recent.set(mailbox, times);
    if (times.length <= requests) return;
    this.rateLimited.set(mailbox, (this.rateLimited.get(mailbox) ?? 0) + 1);
    const freeAt = (times[times.length - 1 - requests] ?? now) + windowMs;
    throw new GraphError(429, "ApplicationThrottled", "Application is over its request limit for this mailbox.", {
      "Retry-After": String(Math.max(1, Math.ceil((freeAt - now) / 1000))),
    });
  }

  private injectedFailure(): void {
    const f = this.failure;
    if (!f) return;
    this.failuresLeft -= 1;
    if (this.failuresLeft <= 0) this.failure = undefined;
    switch (f.kind) {
      case "throttle": {
        const headers: Record<string, string> =
          f.retryAfterSeconds === undefined ? {} : { "Retry-After": String(f.retryAfterSeconds) };
        if (f.status === 503) throw new GraphError(503, "serviceNotAvailable", "Service Unavailable", headers);
        throw new GraphError(429, "TooManyRequests", "Please retry again later.", headers);
      }
      case "server-error":
        throw new GraphError(
          500,
          "ErrorInternalServerError",
          "An internal server error occurred. The operation failed.",
        );
      case "unauthorized":
        throw this.unauthorized("Access token validation failure.");
      case "access-denied":
        throw new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
    }
  }

  private unauthorized(message: string): GraphError {
    const authority = this.options.authorityHost ?? "login.microsoftonline.com";
    return new GraphError(401, "InvalidAuthenticationToken", message, {
      "WWW-Authenticate": `Bearer realm="", authorization_uri="https://${authority}/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`,
    });
  }

  private async authenticate(ctx: Ctx): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(headerValue(ctx.req, "authorization") ?? "");
    if (!match) throw this.unauthorized("Access token is empty.");
    const token = match[1]!;
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw this.unauthorized("IDX14100: JWT is not well formed, there are no dots (.).");
    }
    if (kid !== this.options.signingKey.kid)
      throw this.unauthorized("Access token validation failure. Invalid signature.");
    let payload: JWTPayload;
    try {
      // Graph tolerates five minutes of clock skew.
      ({ payload } = await jwtVerify(token, this.key!, { algorithms: ["RS256"], clockTolerance: 300 }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ERR_JWT_EXPIRED") throw this.unauthorized("Lifetime validation failed, the token is expired.");
      if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") {
        throw this.unauthorized("Lifetime validation failed, the token is not yet valid.");
      }
      throw this.unauthorized("Access token validation failure. Invalid signature.");
    }
    if (payload.aud !== `https://${this.options.audienceHost}`) {
      throw this.unauthorized("Access token validation failure. Invalid audience.");
    }
    const tenants = [this.options.tenantId, ...(this.options.moreTenants ?? []).map((t) => t.id)];
    const tenant = tenants.find((t) => payload.iss === `https://sts.windows.net/${t}/`);
    if (!tenant) throw this.unauthorized("Access token validation failure. Invalid issuer.");
    ctx.tenant = tenant;
    ctx.roles = Array.isArray(payload.roles) ? payload.roles.map(String) : [];
  }

  private requireRole(ctx: Ctx, roles: string[]): void {
    if (!roles.some((r) => ctx.roles.includes(r))) {
      throw new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
    }
  }

  private async route(ctx: Ctx, path: string[]): Promise<void> {
    const method = ctx.req.method ?? "GET";
    const [root, userKey, ...rest] = path;
    if (root?.toLowerCase() === "me") {
      throw new GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.");
    }
    if (root?.toLowerCase() !== "users" || !userKey) {
      throw new GraphError(400, "BadRequest", `Resource not found for the segment '${root ?? ""}'.`);
    }
    const box = this.resolveUser(userKey);
    // A mailbox of another tenant is no user of the token's tenant.
    const owner = this.tenantOf.get(box.address.toLowerCase()) ?? this.options.tenantId;
    if (ctx.tenant !== undefined && owner !== ctx.tenant)
      throw new GraphError(404, "ErrorInvalidUser", `The requested user '${userKey}' is invalid.`);
    const lower = rest.map((s) => s.toLowerCase());
    if (rest.length === 0) {
      allow(method, "GET");
      if (!USER_READ_ROLES.some((r) => ctx.roles.includes(r))) {
        throw new GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
      }
      return this.sendJson(ctx, 200, {
        "@odata.context": `https://${this.linkHost}/v1.0/$metadata#users/$entity`,
        id: box.objectId,
        displayName: box.address.split("@")[0],
        mail: box.address,
        userPrincipalName: box.address,
      });
    }
    if (lower[0] === "sendmail" && rest.length === 1) {
      allow(method, "POST");
      this.requireRole(ctx, ["Mail.Send"]);
      return this.sendMail(ctx, box);
    }
    if (lower[0] === "mailfolders") {
      if (rest.length === 1) {
        const top = this.folderByKey(box, "msgfolderroot")!;
        if (method === "POST") return this.createFolder(ctx, box, top, `users('${box.address}')/mailFolders`);
        allow(method, "GET");
        this.requireRole(ctx, READ_ROLES);
        return this.listFolders(ctx, box, top, `users('${box.address}')/mailFolders`);
      }
      const folder = this.folderFromUrl(box, rest[1]!);
      if (rest.length === 2) {
        if (method === "DELETE") return this.deleteFolder(ctx, box, folder);
        allow(method, "GET");
        this.requireRole(ctx, READ_ROLES);
        return this.sendJson(ctx, 200, {
          "@odata.context": `https://${this.linkHost}/v1.0/$metadata#users('${box.address}')/mailFolders/$entity`,
          ...this.folderJson(box, folder, this.selectList(ctx, FOLDER_PROPERTIES, "mailFolder")),
        });
      }
      if (lower[2] === "childfolders" && rest.length === 3) {
        const context = `users('${box.address}')/mailFolders('${folder.id}')/childFolders`;
        if (method === "POST") return this.createFolder(ctx, box, folder, context);
        allow(method, "GET");
        this.requireRole(ctx, READ_ROLES);
        return this.listFolders(ctx, box, folder, `users('${box.address}')/mailFolders('${folder.id}')/childFolders`);
      }
      if (lower[2] === "messages") {
        if (rest.length === 3) {
          if (method === "POST") return this.createMessage(ctx, box, folder);
          allow(method, "GET");
          this.requireRole(ctx, READ_ROLES);
          return this.listMessages(ctx, box, folder);
        }
        if (rest.length === 4 && (lower[3] === "delta" || lower[3] === "microsoft.graph.delta")) {
          allow(method, "GET");
          this.requireRole(ctx, READ_ROLES);
          return this.delta(ctx, box, folder);
        }
        return this.messageRoute(ctx, box, rest.slice(3));
      }
    }
    if (lower[0] === "messages") {
      if (rest.length === 1) {
        if (method === "POST") return this.createMessage(ctx, box, this.folderByKey(box, "drafts")!);
        allow(method, "GET");
        this.requireRole(ctx, READ_ROLES);
        return this.listMessages(ctx, box, undefined);
      }
      return this.messageRoute(ctx, box, rest.slice(1));
    }
    throw new GraphError(400, "BadRequest", `Resource not found for the segment '${rest[0]}'.`);
  }

  private resolveUser(key: string): Mailbox {
    const k = key.toLowerCase();
    const denied = (this.options.deniedMailboxes ?? []).map((m) => m.toLowerCase());
    const box = this.boxes.get(k) ?? [...this.boxes.values()].find((b) => b.objectId === k);
    if (box) {
      if (denied.includes(box.address.toLowerCase())) {
        throw new GraphError(
          403,
          "ErrorAccessDenied",
          "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        );
      }
      return box;
    }
    if ((this.options.usersWithoutMailbox ?? []).some((u) => u.toLowerCase() === k)) {
      throw new GraphError(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
      );
    }
    throw new GraphError(404, "ErrorInvalidUser", `The requested user '${key}' is invalid.`);
  }

  /** A well-formed id that is not there is 404; anything else that is no well-known name is a malformed id (400). */
  private folderFromUrl(box: Mailbox, key: string): Folder {
    const f = this.folderByKey(box, key);
    if (f) return f;
    if (ID_SHAPE.test(key))
      throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    throw new GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.");
  }

  /**
   * A message by its id. Exchange takes either format in a URL; an immutable id still names the item
   * after it moved, a default id names only the item before its move (its copy has a new id).
   */
  private messageFromUrl(box: Mailbox, id: string): MessageRecord {
    const rec =
      box.messages.get(id) ??
      (id.startsWith(IMMUTABLE_PREFIX) ? [...box.messages.values()].find((m) => m.immutableId === id) : undefined);
    if (rec) return rec;
    if (ID_SHAPE.test(id))
      throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    throw new GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.");
  }

  private async messageRoute(ctx: Ctx, box: Mailbox, rest: string[]): Promise<void> {
    const method = ctx.req.method ?? "GET";
    const rec = this.messageFromUrl(box, rest[0]!);
    const lower = rest.map((s) => s.toLowerCase());
    const context = `https://${this.linkHost}/v1.0/$metadata#users('${box.address}')/messages/$entity`;
    if (rest.length === 1) {
      if (method === "GET") {
        this.requireRole(ctx, READ_ROLES);
        const select = this.selectList(ctx, MESSAGE_PROPERTIES.concat(SELECT_ONLY_PROPERTIES), "message");
        return this.sendJson(ctx, 200, {
          "@odata.context": context,
          ...(await this.messageJson(ctx, box, rec, select)),
        });
      }
      if (method === "PATCH") {
        this.requireRole(ctx, WRITE_ROLES);
        const body = await readJson(ctx.req);
        const changes: { isRead?: boolean; categories?: string[]; subject?: string } = {};
        for (const [k, v] of Object.entries(body ?? {})) {
          if (k === "isRead" && typeof v === "boolean") changes.isRead = v;
          else if (k === "subject" && typeof v === "string") changes.subject = v;
          else if (k === "categories" && Array.isArray(v)) changes.categories = v.map(String);
          else if (k.startsWith("@odata.")) continue;
          else if (k === "isRead" || k === "categories" || k === "subject") {
            throw new GraphError(
              400,
              "RequestBodyRead",
              `Cannot convert the literal '${String(v)}' to the expected type.`,
            );
          } else {
            throw new GraphError(
              400,
              "RequestBodyRead",
              `The property '${k}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
            );
          }
        }
        this.update(box, rec, changes);
        return this.sendJson(ctx, 200, { "@odata.context": context, ...(await this.messageJson(ctx, box, rec)) });
      }
      if (method === "DELETE") {
        this.requireRole(ctx, WRITE_ROLES);
        this.relocate(box, rec, this.folderByKey(box, "recoverableitemsdeletions")!);
        return this.sendEmpty(ctx, 204);
      }
      throw methodNotAllowed();
    }
    if (lower[1] === "$value" && rest.length === 2) {
      allow(method, "GET");
      this.requireRole(ctx, READ_ROLES);
      return this.sendBytes(ctx, 200, rec.mime, "text/plain");
    }
    if ((lower[1] === "move" || lower[1] === "microsoft.graph.move") && rest.length === 2) {
      allow(method, "POST");
      this.requireRole(ctx, WRITE_ROLES);
      const body = await readJson(ctx.req);
      const destination = typeof body?.destinationId === "string" ? body.destinationId : "";
      if (!destination)
        throw new GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'DestinationId' is empty.");
      const moved = this.relocate(box, rec, this.folderFromUrl(box, destination));
      return this.sendJson(ctx, 201, { "@odata.context": context, ...(await this.messageJson(ctx, box, moved)) });
    }
    if (lower[1] === "attachments") {
      allow(method, "GET");
      this.requireRole(ctx, READ_ROLES);
      const attachments = await this.attachments(rec);
      const base = `https://${this.linkHost}/v1.0/$metadata#users('${box.address}')/messages('${rec.id}')/attachments`;
      if (rest.length === 2) {
        return this.sendJson(ctx, 200, { "@odata.context": base, value: attachments.map((a) => a.json) });
      }
      const found = attachments.find((a) => a.json.id === rest[2]);
      if (!found) throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      if (rest.length === 3) return this.sendJson(ctx, 200, { "@odata.context": `${base}/$entity`, ...found.json });
      if (rest.length === 4 && lower[3] === "$value") return this.sendBytes(ctx, 200, found.content, found.contentType);
    }
    throw new GraphError(400, "BadRequest", `Resource not found for the segment '${rest[1]}'.`);
  }

  /** The id format the request asked for: `Prefer: IdType="ImmutableId"` applies to that request only. */
  private idFor(ctx: Ctx, rec: MessageRecord): string {
    return (ctx.prefer.get("idtype") ?? "").replace(/"/g, "").toLowerCase() === "immutableid"
      ? rec.immutableId
      : rec.id;
  }

  /**
   * POST .../mailFolders/{id}/messages (or /messages, into Drafts): a new message, a draft, written by the
   * client; 201 with the message.
   */
  private async createMessage(ctx: Ctx, box: Mailbox, folder: Folder): Promise<void> {
    this.requireRole(ctx, WRITE_ROLES);
    const message = await readJson(ctx.req);
    if (!message || typeof message !== "object" || Array.isArray(message)) {
      throw new GraphError(400, "BadRequest", "Empty Payload. JSON content expected.");
    }
    const mime = buildMime(box.address, message);
    const rec = this.store(box, folder, mime, { received: this.now(), isRead: true, isDraft: true });
    const context = `https://${this.linkHost}/v1.0/$metadata#users('${box.address}')/mailFolders('${folder.id}')/messages/$entity`;
    return this.sendJson(ctx, 201, { "@odata.context": context, ...(await this.messageJson(ctx, box, rec)) });
  }

  // ---- folders ----

  /** POST .../childFolders {displayName}: 201, or 409 ErrorFolderExists when the parent has one of that name. */
  private async createFolder(ctx: Ctx, box: Mailbox, parent: Folder, context: string): Promise<void> {
    this.requireRole(ctx, WRITE_ROLES);
    const body = await readJson(ctx.req);
    const displayName = typeof body?.displayName === "string" ? body.displayName.trim() : "";
    if (!displayName) {
      throw new GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'DisplayName' is empty.");
    }
    const clash = [...box.folders.values()].some(
      (f) => f.parentFolderId === parent.id && f.displayName.toLowerCase() === displayName.toLowerCase(),
    );
    if (clash) throw new GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.");
    const f: Folder = {
      id: exchangeId("AQMkAD"),
      displayName,
      parentFolderId: parent.id,
      isHidden: body?.isHidden === true,
      tombstones: [],
    };
    box.folders.set(f.id, f);
    return this.sendJson(ctx, 201, {
      "@odata.context": `https://${this.linkHost}/v1.0/$metadata#${context}/$entity`,
      ...this.folderJson(box, f),
    });
  }

  /**
   * DELETE .../mailFolders/{id}: the folder, with what it holds, goes to Deleted Items (a soft delete, as in
   * Outlook); a well-known folder cannot be deleted.
   */
  private deleteFolder(ctx: Ctx, box: Mailbox, folder: Folder): void {
    this.requireRole(ctx, WRITE_ROLES);
    if (folder.wellKnownName) {
      throw new GraphError(403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.");
    }
    const bin = this.folderByKey(box, "deleteditems")!;
    let inBin = false;
    for (let f: Folder | undefined = folder; f; f = box.folders.get(f.parentFolderId)) if (f === bin) inBin = true;
    if (inBin) {
      const doomed = new Set<string>([folder.id]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const f of box.folders.values()) {
          if (!doomed.has(f.id) && doomed.has(f.parentFolderId)) {
            doomed.add(f.id);
            grew = true;
          }
        }
      }
      for (const id of doomed) box.folders.delete(id);
      for (const m of [...box.messages.values()]) if (doomed.has(m.folderId)) box.messages.delete(m.id);
    } else {
      folder.parentFolderId = bin.id;
    }
    this.sendEmpty(ctx, 204);
  }

  private folderJson(box: Mailbox, f: Folder, select?: string[]): Record<string, unknown> {
    const items = [...box.messages.values()].filter((m) => m.folderId === f.id);
    const full: Record<string, unknown> = {
      displayName: f.displayName,
      parentFolderId: f.parentFolderId,
      childFolderCount: [...box.folders.values()].filter((c) => c.parentFolderId === f.id).length,
      unreadItemCount: items.filter((m) => !m.isRead).length,
      totalItemCount: items.length,
      sizeInBytes: items.reduce((n, m) => n + m.mime.length, 0),
      isHidden: f.isHidden,
    };
    return { id: f.id, ...pick(full, select) };
  }

  private listFolders(ctx: Ctx, box: Mailbox, parent: Folder, context: string): void {
    const select = this.selectList(ctx, FOLDER_PROPERTIES, "mailFolder");
    const includeHidden = ctx.url.searchParams.get("includeHiddenFolders") === "true";
    let folders = [...box.folders.values()]
      .filter((f) => f.parentFolderId === parent.id && (includeHidden || !f.isHidden))
      .sort((a, b) => a.displayName.localeCompare(b.displayName));
    const filter = ctx.url.searchParams.get("$filter");
    if (filter) {
      const test = compileFilter(filter, { displayName: (f: Folder) => f.displayName });
      folders = folders.filter(test);
    }
    this.sendPage(
      ctx,
      folders.map((f) => this.folderJson(box, f, select)),
      context,
    );
  }

  /** A collection page: $top (default 10) and $skip, with an @odata.nextLink while more remain. */
  private sendPage(ctx: Ctx, all: Record<string, unknown>[], context: string): void {
    const top = clampInt(ctx.url.searchParams.get("$top"), 10, 1, 1000);
    const skip = clampInt(ctx.url.searchParams.get("$skip"), 0, 0, Number.MAX_SAFE_INTEGER);
    const page = all.slice(skip, skip + top);
    const body: Record<string, unknown> = { "@odata.context": `https://${this.linkHost}/v1.0/$metadata#${context}` };
    if (skip + top < all.length) {
      const next = new URL(ctx.url.href);
      next.searchParams.set("$top", String(top));
      next.searchParams.set("$skip", String(skip + top));
      body["@odata.nextLink"] = next.href;
    }
    body.value = page;
    this.sendJson(ctx, 200, body);
  }

  // ---- messages ----

  private async listMessages(ctx: Ctx, box: Mailbox, folder: Folder | undefined): Promise<void> {
    const select = this.selectList(ctx, MESSAGE_PROPERTIES.concat(SELECT_ONLY_PROPERTIES), "message");
    const hidden = new Set([...box.folders.values()].filter((f) => f.isHidden).map((f) => f.id));
    let items = [...box.messages.values()].filter((m) => (folder ? m.folderId === folder.id : !hidden.has(m.folderId)));
    const filter = ctx.url.searchParams.get("$filter");
    if (filter) items = items.filter(compileFilter(filter, MESSAGE_FILTER_FIELDS));
    const orderBy = ctx.url.searchParams.get("$orderby");
    // Exchange refuses a $filter with an $orderby whose properties do not lead the $filter, in order
    // (learn.microsoft.com/graph/api/user-list-messages, "Using filter and orderby in the same query").
    if (filter && orderBy) {
      const sorted = orderBy.split(",").map((p) => p.trim().split(/\s+/)[0]!.toLowerCase());
      const filtered = filter
        .split(/\s+and\s+/i)
        .map((c) => /^\s*(\w+)/.exec(c)?.[1]?.toLowerCase() ?? "")
        .slice(0, sorted.length);
      if (sorted.some((p, i) => filtered[i] !== p)) {
        throw new GraphError(
          400,
          "InefficientFilter",
          "The restriction or sort order is too complex for this operation.",
        );
      }
    }
    const order = (orderBy ?? "receivedDateTime desc").trim();
    const m = /^receivedDateTime(?:\s+(asc|desc))?$/i.exec(order);
    if (!m) throw new GraphError(400, "ErrorInvalidUrlQuery", "The query specified in the URL is not valid.");
    const dir = m[1]?.toLowerCase() === "asc" ? 1 : -1;
    items.sort((a, b) => dir * (a.receivedDateTime.localeCompare(b.receivedDateTime) || a.seq - b.seq));
    const json = await Promise.all(items.map((r) => this.messageJson(ctx, box, r, select)));
    const context = folder
      ? `users('${box.address}')/mailFolders('${folder.id}')/messages`
      : `users('${box.address}')/messages`;
    this.sendPage(ctx, json, context);
  }

  /**
   * messages: delta. State tokens are positions in the mailbox's change sequence, signed so that a
   * garbled or forgotten token is refused with 410 like an evicted Exchange sync state.
   */
  private async delta(ctx: Ctx, box: Mailbox, folder: Folder): Promise<void> {
    const q = ctx.url.searchParams;
    const skipToken = q.get("$skiptoken") ?? q.get("$skipToken");
    const deltaToken = q.get("$deltatoken") ?? q.get("$deltaToken");
    let state: DeltaState;
    if (skipToken || deltaToken) {
      const decoded = this.readToken(skipToken ?? deltaToken ?? "", skipToken ? "skip" : "delta");
      if (!decoded || decoded.folderId !== folder.id || decoded.mailbox !== box.address.toLowerCase()) {
        throw new GraphError(
          410,
          "SyncStateNotFound",
          "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
          { Location: this.deltaUrl(box, folder, "$deltatoken", "") },
        );
      }
      state =
        decoded.kind === "delta"
          ? { ...decoded, from: decoded.to, after: decoded.to, to: box.seq, initial: false }
          : decoded;
    } else {
      const changeType = q.get("changeType") ?? undefined;
      if (changeType && !["created", "updated", "deleted"].includes(changeType)) {
        throw new GraphError(
          400,
          "ErrorInvalidUrlQuery",
          `The value '${changeType}' of the parameter 'changeType' is not valid.`,
        );
      }
      const filter = q.get("$filter") ?? undefined;
      if (filter && !/^receivedDateTime\s+(ge|gt)\s+\S+$/i.test(filter.trim())) {
        throw new GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.");
      }
      const select = q.get("$select") ?? undefined;
      if (select) this.selectList(ctx, MESSAGE_PROPERTIES.concat(SELECT_ONLY_PROPERTIES), "message");
      state = {
        kind: "skip",
        mailbox: box.address.toLowerCase(),
        folderId: folder.id,
        from: 0,
        to: box.seq,
        after: 0,
        initial: true,
        select,
        changeType,
        filter,
      };
    }
    const select = state.select
      ? splitSelect(state.select, MESSAGE_PROPERTIES.concat(SELECT_ONLY_PROPERTIES))
      : undefined;
    const inWindow = (seq: number) => seq > state.after && seq <= state.to;
    const created = (createdSeq: number) => state.initial || createdSeq > state.from;
    const wantItem = (r: MessageRecord) =>
      !state.changeType ||
      state.initial ||
      (state.changeType === "created" && created(r.createdSeq)) ||
      (state.changeType === "updated" && !created(r.createdSeq));
    const wantRemoved = !state.initial && (!state.changeType || state.changeType === "deleted");
    const filterTest = state.filter ? compileFilter(state.filter, MESSAGE_FILTER_FIELDS) : () => true;
    type Entry = { seq: number; item?: MessageRecord; removed?: string };
    const entries: Entry[] = [];
    for (const r of box.messages.values()) {
      if (r.folderId === folder.id && inWindow(r.seq) && wantItem(r) && filterTest(r))
        entries.push({ seq: r.seq, item: r });
    }
    if (wantRemoved) {
      for (const t of folder.tombstones) {
        // An item created and gone again within the interval was never seen by the client.
        if (inWindow(t.seq) && t.createdSeq <= state.from) entries.push({ seq: t.seq, removed: t.id });
      }
    }
    entries.sort((a, b) => a.seq - b.seq);
    const pageSize = clampInt(ctx.prefer.get("odata.maxpagesize") ?? null, this.options.pageSize ?? 10, 1, 1000);
    const page = entries.slice(0, pageSize);
    const value = await Promise.all(
      page.map(async (e) =>
        e.item
          ? { "@odata.type": "#microsoft.graph.message", ...(await this.messageJson(ctx, box, e.item, select)) }
          : { "@odata.type": "#microsoft.graph.message", id: e.removed, "@removed": { reason: "deleted" } },
      ),
    );
    const body: Record<string, unknown> = {
      "@odata.context": `https://${this.linkHost}/v1.0/$metadata#Collection(message)`,
    };
    if (entries.length > pageSize) {
      const next: DeltaState = { ...state, kind: "skip", after: page[page.length - 1]!.seq };
      body["@odata.nextLink"] = this.deltaUrl(box, folder, "$skiptoken", this.writeToken(next));
    } else {
      const done: DeltaState = { ...state, kind: "delta", after: state.to, from: state.to, initial: false };
      body["@odata.deltaLink"] = this.deltaUrl(box, folder, "$deltatoken", this.writeToken(done));
    }
    body.value = value;
    this.sendJson(ctx, 200, body);
  }

  private deltaUrl(box: Mailbox, folder: Folder, param: string, token: string): string {
    return `https://${this.linkHost}/v1.0/users/${encodeURIComponent(box.address)}/mailfolders('${folder.id}')/messages/delta?${param}=${encodeURIComponent(token)}`;
  }

  private writeToken(state: DeltaState): string {
    const body = Buffer.from(JSON.stringify(state)).toString("base64url");
    return `${body}.${createHmac("sha256", this.tokenSecret).update(body).digest("base64url").slice(0, 22)}`;
  }

  private readToken(token: string, kind: DeltaState["kind"]): DeltaState | undefined {
    const [body, mac] = token.split(".");
    if (!body || !mac) return undefined;
    const expected = createHmac("sha256", this.tokenSecret).update(body).digest("base64url").slice(0, 22);
    if (mac.length !== expected.length || !timingSafeEqual(Buffer.from(mac), Buffer.from(expected))) return undefined;
    try {
      const state = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as DeltaState;
      return state.kind === kind ? state : undefined;
    } catch {
      return undefined;
    }
  }

  private parsed(rec: MessageRecord): Promise<ParsedMail> {
    rec.parsed ??= simpleParser(rec.mime, { skipImageLinks: true });
    return rec.parsed;
  }

  private async messageJson(
    ctx: Ctx,
    box: Mailbox,
    rec: MessageRecord,
    select?: string[],
  ): Promise<Record<string, unknown>> {
    const wanted = (p: string) => (select ? select.includes(p) : MESSAGE_PROPERTIES.includes(p));
    const needsParse = ["hasAttachments", "bodyPreview", "body", "uniqueBody", "sender", "from"]
      .concat(["toRecipients", "ccRecipients", "bccRecipients", "replyTo"])
      .some(wanted);
    const mail = needsParse ? await this.parsed(rec) : undefined;
    const asText = (ctx.prefer.get("outlook.body-content-type") ?? "").replace(/"/g, "").toLowerCase() === "text";
    const text = mail?.text ?? "";
    const body = () =>
      asText
        ? { contentType: "text", content: text }
        : {
            contentType: "html",
            content:
              typeof mail?.html === "string"
                ? mail.html
                : `<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body><div>${escapeHtml(text).replace(/\r?\n/g, "<br>")}</div></body></html>`,
          };
    const header = (name: string) => rec.headers.find((h) => h.name.toLowerCase() === name)?.value;
    const from = recipients(mail?.from)[0] ?? null;
    const senderHeader = mail?.headers.get("sender") as AddressObject | undefined;
    const importance = () => {
      const v = (header("importance") ?? header("x-priority") ?? "").toLowerCase().trim();
      if (v.startsWith("high") || v.startsWith("1") || v.startsWith("2")) return "high";
      if (v.startsWith("low") || v.startsWith("4") || v.startsWith("5")) return "low";
      return "normal";
    };
    const values: Record<string, () => unknown> = {
      createdDateTime: () => rec.createdDateTime,
      lastModifiedDateTime: () => rec.lastModifiedDateTime,
      changeKey: () => rec.changeKey,
      categories: () => rec.categories,
      receivedDateTime: () => rec.receivedDateTime,
      sentDateTime: () => rec.sentDateTime,
      hasAttachments: () =>
        (mail?.attachments ?? []).some((a) => !a.related && a.contentDisposition !== "inline") ||
        (mail?.attachments ?? []).some((a) => a.contentType === "message/rfc822"),
      internetMessageId: () => rec.internetMessageId,
      subject: () => rec.subject,
      bodyPreview: () => text.replace(/\s+/g, " ").trim().slice(0, 255),
      importance,
      parentFolderId: () => rec.folderId,
      conversationId: () => rec.conversationId,
      conversationIndex: () => Buffer.from(rec.conversationId).subarray(0, 22).toString("base64"),
      isDeliveryReceiptRequested: () => false,
      isReadReceiptRequested: () => header("disposition-notification-to") !== undefined,
      isRead: () => rec.isRead,
      isDraft: () => rec.isDraft || box.folders.get(rec.folderId)?.wellKnownName === "drafts",
      webLink: () =>
        `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(rec.id)}&exvsurl=1&viewmodel=ReadMessageItem`,
      inferenceClassification: () => "focused",
      body,
      uniqueBody: body,
      sender: () => recipients(senderHeader)[0] ?? from,
      from: () => from,
      toRecipients: () => recipients(mail?.to),
      ccRecipients: () => recipients(mail?.cc),
      bccRecipients: () => recipients(mail?.bcc),
      replyTo: () => recipients(mail?.replyTo),
      flag: () => ({ flagStatus: "notFlagged" }),
      internetMessageHeaders: () => rec.headers,
    };
    const out: Record<string, unknown> = { "@odata.etag": `W/"${rec.changeKey}"`, id: this.idFor(ctx, rec) };
    for (const p of MESSAGE_PROPERTIES.concat(SELECT_ONLY_PROPERTIES)) {
      if (wanted(p)) out[p] = values[p]!();
    }
    return out;
  }

  private async attachments(
    rec: MessageRecord,
  ): Promise<{ json: Record<string, unknown>; content: Buffer; contentType: string }[]> {
    const mail = await this.parsed(rec);
    return mail.attachments.map((a, i) => {
      const id = `${rec.id.slice(0, 40)}${createHash("sha256").update(`${rec.id}/${i}`).digest("base64url").slice(0, 24)}=`;
      const isItem = a.contentType === "message/rfc822";
      const common = {
        id,
        lastModifiedDateTime: rec.lastModifiedDateTime,
        name: a.filename ?? (isItem ? "Attached message" : `attachment${i + 1}`),
        contentType: a.contentType,
        size: a.size ?? a.content.length,
        isInline: a.related || a.contentDisposition === "inline",
      };
      const json = isItem
        ? { "@odata.type": "#microsoft.graph.itemAttachment", ...common }
        : {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": a.contentType,
            ...common,
            contentId: a.contentId ? a.contentId.replace(/^<|>$/g, "") : null,
            contentLocation: null,
            contentBytes: a.content.toString("base64"),
          };
      return { json, content: a.content, contentType: a.contentType };
    });
  }

  // ---- sendMail ----

  private async sendMail(ctx: Ctx, box: Mailbox): Promise<void> {
    const contentType = (headerValue(ctx.req, "content-type") ?? "").toLowerCase();
    let mime: Buffer;
    let posted: any;
    let save = true;
    if (contentType.startsWith("text/plain")) {
      posted = (await readBody(ctx.req)).toString("utf8");
      const compact = String(posted).replace(/\s+/g, "");
      if (!compact || !/^[A-Za-z0-9+/]+=*$/.test(compact)) {
        throw new GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.");
      }
      mime = Buffer.from(compact, "base64");
      const to = parseHeaders(mime).filter((h) => /^(to|cc|bcc)$/i.test(h.name));
      if (to.length === 0) throw noRecipients();
    } else {
      posted = await readJson(ctx.req);
      const message = posted?.message;
      if (!message || typeof message !== "object") {
        throw new GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.");
      }
      const all = ["toRecipients", "ccRecipients", "bccRecipients"].flatMap((k) =>
        Array.isArray(message[k]) ? (message[k] as any[]) : [],
      );
      if (all.length === 0) throw noRecipients();
      for (const r of all) {
        const address = r?.emailAddress?.address;
        if (typeof address !== "string" || !/^[^@\s]+@[^@\s]+$/.test(address)) {
          throw new GraphError(
            400,
            "ErrorInvalidRecipients",
            `At least one recipient isn't valid., Recipient '${String(address ?? "")}' isn't resolved. All recipients must be resolved before a message can be submitted.`,
          );
        }
      }
      save = posted.saveToSentItems !== false && posted.saveToSentItems !== "false";
      mime = buildMime(box.address, message);
    }
    this.sent.push({ mailbox: box.address, body: posted, at: Date.now(), mime });
    if (save) this.store(box, this.folderByKey(box, "sentitems")!, mime, { received: new Date(), isRead: true });
    this.sendEmpty(ctx, 202);
  }

  // ---- responses ----

  private selectList(ctx: Ctx, known: string[], type: string): string[] | undefined {
    const raw = ctx.url.searchParams.get("$select");
    return raw ? splitSelect(raw, known, type) : undefined;
  }

  private baseHeaders(ctx: Ctx): Record<string, string> {
    const applied = [...ctx.prefer.keys()]
      .filter((k) => k === "odata.maxpagesize" || k === "outlook.body-content-type" || k === "idtype")
      .map((k) => (k === "idtype" ? `IdType=${ctx.prefer.get(k)}` : `${k}=${ctx.prefer.get(k)}`));
    return {
      Date: this.now().toUTCString(),
      "request-id": ctx.requestId,
      "client-request-id": ctx.clientRequestId,
      "x-ms-ags-diagnostic": JSON.stringify({ ServerInfo: { DataCenter: "Standin", Slice: "E", Ring: "1" } }),
      "Strict-Transport-Security": "max-age=31536000",
      ...(applied.length > 0 ? { "Preference-Applied": applied.join(", ") } : {}),
    };
  }

  private sendJson(ctx: Ctx, status: number, body: object): void {
    const text = JSON.stringify(body);
    this.finish(
      ctx,
      status,
      {
        "Content-Type":
          "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        "OData-Version": "4.0",
        "Content-Length": String(Buffer.byteLength(text)),
      },
      text,
    );
  }

  private sendBytes(ctx: Ctx, status: number, bytes: Buffer, contentType: string): void {
    this.finish(ctx, status, { "Content-Type": contentType, "Content-Length": String(bytes.length) }, bytes);
  }

  private sendEmpty(ctx: Ctx, status: number): void {
    this.finish(ctx, status, {}, undefined);
  }

  private sendError(ctx: Ctx, err: GraphError): void {
    const date = this.now()
      .toISOString()
      .replace(/\.\d+Z$/, "");
    const text = JSON.stringify({
      error: {
        code: err.code,
        message: err.message,
        innerError: { date, "request-id": ctx.requestId, "client-request-id": ctx.clientRequestId },
      },
    });
    this.finish(
      ctx,
      err.status,
      { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(text)), ...err.headers },
      text,
    );
  }

  private finish(ctx: Ctx, status: number, headers: Record<string, string>, body: string | Buffer | undefined): void {
    ctx.record.status = status;
    if (ctx.res.headersSent || ctx.res.destroyed) return;
    ctx.res.writeHead(status, { ...this.baseHeaders(ctx), ...headers });
    ctx.res.end(body);
  }
}

// ---- helpers ----

const MESSAGE_FILTER_FIELDS: Record<string, (m: MessageRecord) => unknown> = {
  isRead: (m) => m.isRead,
  receivedDateTime: (m) => m.receivedDateTime,
  internetMessageId: (m) => m.internetMessageId,
  subject: (m) => m.subject,
};

/**
 * The small part of OData $filter mail clients use: `prop op literal` joined by `and`, ops eq/ne/gt/ge/lt/le,
 * literals true/false/null, 'strings' and ISO date-times. Exchange compares strings case-insensitively.
 */
function compileFilter<T>(filter: string, fields: Record<string, (t: T) => unknown>): (t: T) => boolean {
  const clauses = filter.split(/\s+and\s+/i).map((clause) => {
    const m = /^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+?)\s*$/i.exec(clause);
    const field = m && Object.keys(fields).find((k) => k.toLowerCase() === m[1]!.toLowerCase());
    if (!m || !field) {
      throw new GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.");
    }
    const raw = m[3]!;
    let literal: unknown;
    if (/^'.*'$/.test(raw)) literal = raw.slice(1, -1).replace(/''/g, "'");
    else if (/^(true|false)$/i.test(raw)) literal = raw.toLowerCase() === "true";
    else if (/^null$/i.test(raw)) literal = null;
    else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(raw)) literal = isoSeconds(new Date(raw));
    else
      throw new GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.");
    const op = m[2]!.toLowerCase();
    const get = fields[field]!;
    return (t: T) => {
      let v = get(t);
      let l = literal;
      if (typeof v === "string" && typeof l === "string" && field !== "receivedDateTime") {
        v = v.toLowerCase();
        l = l.toLowerCase();
      }
      if (op === "eq") return v === l;
      if (op === "ne") return v !== l;
      if (typeof v !== "string" || typeof l !== "string") return false;
      const c = v < l ? -1 : v > l ? 1 : 0;
      return op === "gt" ? c > 0 : op === "ge" ? c >= 0 : op === "lt" ? c < 0 : c <= 0;
    };
  });
  return (t: T) => clauses.every((c) => c(t));
}

function splitSelect(raw: string, known: string[], type = "message"): string[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (s.toLowerCase() === "id") return "id";
      const k = known.find((p) => p.toLowerCase() === s.toLowerCase());
      if (!k) {
        throw new GraphError(
          400,
          "RequestBroker--ParseUri",
          `Could not find a property named '${s}' on type 'microsoft.graph.${type}'.`,
        );
      }
      return k;
    });
}

function pick(full: Record<string, unknown>, select?: string[]): Record<string, unknown> {
  if (!select) return full;
  return Object.fromEntries(Object.entries(full).filter(([k]) => select.includes(k)));
}

function recipients(
  obj: AddressObject | AddressObject[] | undefined,
): { emailAddress: { name: string; address: string } }[] {
  const list = Array.isArray(obj) ? obj : obj ? [obj] : [];
  return list
    .flatMap((o) => o.value ?? [])
    .flatMap((a) => (a.group ? a.group : [a]))
    .filter((a) => a.address)
    .map((a) => ({ emailAddress: { name: a.name || a.address!, address: a.address! } }));
}

function noRecipients(): GraphError {
  return new GraphError(
    400,
    "ErrorInvalidRecipients",
    "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
  );
}

function allow(method: string, expected: string): void {
  if (method !== expected) throw methodNotAllowed();
}

function methodNotAllowed(): GraphError {
  return new GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.");
}

/** A message as Exchange would put it in Sent Items after a JSON sendMail. */
function buildMime(from: string, message: any): Buffer {
  const list = (k: string) =>
    (Array.isArray(message[k]) ? (message[k] as any[]) : [])
      .map((r) => String(r?.emailAddress?.address ?? ""))
      .filter(Boolean)
      .join(", ");
  const word = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s : `=?utf-8?B?${Buffer.from(s).toString("base64")}?=`);
  const html = String(message.body?.contentType ?? "text").toLowerCase() === "html";
  const content = String(message.body?.content ?? "");
  const lines = [
    `From: ${from}`,
    `To: ${list("toRecipients")}`,
    ...(list("ccRecipients") ? [`Cc: ${list("ccRecipients")}`] : []),
    `Subject: ${word(String(message.subject ?? ""))}`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: <${randomUUID()}@standin.graph>`,
    "MIME-Version: 1.0",
  ];
  const wrap = (b64: string) => b64.replace(/.{1,76}/g, "$&\r\n");
  const bodyPart = [
    `Content-Type: text/${html ? "html" : "plain"}; charset=utf-8`,
    "Content-Transfer-Encoding: base64",
    "",
    wrap(Buffer.from(content).toString("base64")),
  ];
  const attachments = Array.isArray(message.attachments) ? (message.attachments as any[]) : [];
  if (attachments.length === 0) return Buffer.from([...lines, ...bodyPart].join("\r\n"));
  const boundary = `standin_${randomBytes(8).toString("hex")}`;
  const parts = [`--${boundary}`, ...bodyPart];
  for (const a of attachments) {
    parts.push(
      `--${boundary}`,
      `Content-Type: ${a?.contentType ?? "application/octet-stream"}; name="${a?.name ?? "attachment"}"`,
      `Content-Disposition: attachment; filename="${a?.name ?? "attachment"}"`,
      "Content-Transfer-Encoding: base64",
      "",
      wrap(String(a?.contentBytes ?? "")),
    );
  }
  parts.push(`--${boundary}--`, "");
  return Buffer.from([...lines, `Content-Type: multipart/mixed; boundary="${boundary}"`, "", ...parts].join("\r\n"));
}

/** The header block of a MIME message, unfolded (RFC 5322 §2.2.3), in order. */
function parseHeaders(mime: Buffer): { name: string; value: string }[] {
  const text = mime.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  const block = end < 0 ? text : text.slice(0, end);
  const out: { name: string; value: string }[] = [];
  for (const line of block.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const raw = line.slice(i + 1).trim();
    // Header bytes may be raw UTF-8 (RFC 6532); keep them readable.
    out.push({ name: line.slice(0, i).trim(), value: Buffer.from(raw, "latin1").toString("utf8") });
  }
  return out;
}

/** RFC 2047 encoded words (B and Q), adjacent words joined without the whitespace between them. */
function decodeWords(value: string): string {
  const word = /=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=/g;
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, "$1")
    .replace(word, (_m, charset: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === "B"
          ? Buffer.from(data, "base64")
          : Buffer.from(
              data
                .replace(/_/g, " ")
                .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
              "latin1",
            );
      try {
        return new TextDecoder(charset.toLowerCase()).decode(bytes);
      } catch {
        return bytes.toString("latin1");
      }
    });
}

function splitPath(pathname: string): string[] {
  const out: string[] = [];
  for (const raw of pathname.split("/").filter(Boolean)) {
    const seg = safeDecode(raw);
    // OData key syntax: mailFolders('inbox') is the same as mailFolders/inbox.
    const m = /^([^(]+)\('(.*)'\)$/.exec(seg);
    if (m) out.push(m[1]!, m[2]!.replace(/''/g, "'"));
    else out.push(seg);
  }
  return out;
}

function parsePrefer(value: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (value ?? "").split(/[,;]/)) {
    const [k, v] = part.split("=");
    if (k?.trim()) out.set(k.trim().toLowerCase(), (v ?? "").trim());
  }
  return out;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function readJson(req: IncomingMessage): Promise<any> {
  const text = (await readBody(req)).toString("utf8");
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new GraphError(
      400,
      "BadRequest",
      "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    );
  }
}

function clampInt(raw: string | null, fallback: number, min: number, max: number): number {
  const n = raw === null ? Number.NaN : Number.parseInt(raw, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Exchange ids are URL-safe base64 of an entry id; only their shape matters to clients. */
function exchangeId(prefix: string): string {
  return `${prefix}${randomBytes(36).toString("base64url")}AAA=`;
}

function changeKey(): string {
  return `CQAAABYAAA${randomBytes(15).toString("base64")}`;
}

function guidFrom(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function publicCopy(rec: MessageRecord): StoredMessage {
  return {
    id: rec.id,
    folderId: rec.folderId,
    mime: rec.mime,
    isRead: rec.isRead,
    receivedDateTime: rec.receivedDateTime,
    internetMessageId: rec.internetMessageId,
    subject: rec.subject,
    changeKey: rec.changeKey,
  };
}
