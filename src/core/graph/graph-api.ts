// Microsoft Graph over HTTPS for one tenant: node:https (so an extra CA and an idle timeout can be set,
// which the global fetch cannot take without undici), the token on every request (renewed once when Graph
// refuses it), JSON bodies. Around it: at most 4 requests at a time per mailbox
// ("MailboxConcurrency") and 429/503 honoured per mailbox, Retry-After first, backoff without it.
// Every refusal becomes a GraphApiError that says what the user can do about it (../shared/o365.md).
import type { IncomingMessage } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { Readable, Transform } from "node:stream";
import { rootCertificates } from "node:tls";
import { type BackoffPolicy, backoffDelay } from "../backoff";
import type { TokenSource } from "../mail/imap-login";
import { Answer, type HeaderLookup } from "./answer";
import { type BatchAnswer, type BatchRequest, batchFor } from "./graph-batch";

export const GRAPH_VERSION = "v1.0";

export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE";

export interface GraphApiOptions {
  /** Graph host, with a port when not 443: graph.microsoft.com, graph.microsoft.us, 127.0.0.1:8443 */
  host: string;
  tokens: TokenSource;
  /** Requests in flight per mailbox; Exchange allows 4 per app and mailbox. */
  maxConcurrent?: number;
  /** Waits after 429/503 without Retry-After. */
  backoff?: BackoffPolicy;
  /** Throttled answers in a row before a request gives up with a GraphApiError. */
  maxThrottleRetries?: number;
  /** Extra CA certificates (PEM) trusted besides the system's; verification stays on. */
  ca?: string;
  /** A request whose connection stays silent this long fails (also while a body streams). */
  idleTimeoutMs?: number;
  onThrottled?(retryInMs: number, mailbox: string): void;
  log?(level: "info" | "warn" | "error", message: string): void;
}

export interface CallOptions {
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /**
   * Whose share of Graph the request uses (limit and throttling pause). Default: the mailbox in
   * the URL; name it where a link from Graph may address the user by object id instead.
   */
  mailbox?: string;
  /**
   * A GET that may travel in a JSON batch with other mailboxes' GETs of the same moment and token (the delta
   * polls): one HTTPS round trip for up to 20 (graph-batch.ts). Its answer and its throttling stay its own.
   */
  batch?: boolean;
}

export interface GraphResponse<T> {
  status: number;
  headers: HeaderLookup;
  body: T;
}

export interface GraphStream {
  /** The body; the request keeps its place among the mailbox's concurrent ones until it ends or is destroyed. */
  stream: Readable;
  /** Content-Length, when Graph sent one. */
  size: number | null;
}

/** Graph refused a request; `message` is what the user reads, `hint` what to do about it. */
export class GraphApiError extends Error {
  override readonly name = "GraphApiError";

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string,
    /** Graph's own error text. */
    readonly serverMessage: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** The mailbox or the app is at fault (not the one item asked for): only an admin can fix it. */
  get needsAdmin(): boolean {
    return this.status === 401 || this.status === 403 || MAILBOX_MISSING.has(this.code);
  }

  /** The item (message, folder) named in the URL does not exist; the mailbox does. */
  get itemNotFound(): boolean {
    return this.status === 404 && !MAILBOX_MISSING.has(this.code);
  }

  get throttled(): boolean {
    return this.status === 429 || this.status === 503;
  }
}

/** The request never got an HTTP answer (network, TLS, timeout, aborted). */
export class GraphTransportError extends Error {
  override readonly name = "GraphTransportError";
  override readonly cause: unknown;

  constructor(
    message: string,
    cause?: unknown,
    readonly aborted = false,
    /** The token source failed: its error (e.g. a TokenError naming missing consent) is the real one. */
    readonly fromTokenSource = false,
  ) {
    super(message);
    this.cause = cause;
  }
}

const MAILBOX_MISSING = new Set(["ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"]);
const FOLDER_MISSING = new Set(["ErrorItemNotFound", "ErrorInvalidIdMalformed", "ErrorFolderNotFound"]);

type ThrottleListener = (retryInMs: number, mailbox: string) => void;

export class GraphApi {
  readonly host: string;
  private readonly agent: SharedAgent;
  private closed = false;
  private readonly idleTimeoutMs: number;
  private readonly lanes = new Map<string, Lane>();
  private readonly throttleListeners = new Set<ThrottleListener>();
  private readonly maxConcurrent: number;
  private readonly backoff: BackoffPolicy;
  private readonly maxThrottleRetries: number;

  constructor(private readonly opts: GraphApiOptions) {
    this.host = opts.host
      .trim()
      .replace(/^https:\/\//i, "")
      .replace(/\/+$/, "")
      .toLowerCase();
    this.maxConcurrent = Math.max(1, opts.maxConcurrent ?? 4);
    this.backoff = opts.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    this.maxThrottleRetries = opts.maxThrottleRetries ?? 10;
    // `ca` replaces Node's trust store, so the system's roots go along with the extra ones
    this.agent = SharedAgent.take(opts.ca);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    if (opts.onThrottled) this.throttleListeners.add(opts.onThrottled);
  }

  /** Absolute URL for a path below /v1.0 (query values are encoded here), or an absolute link as is. */
  url(pathOrUrl: string, query?: Record<string, string | number>): string {
    const base = /^https:\/\//i.test(pathOrUrl)
      ? pathOrUrl
      : `https://${this.host}/${GRAPH_VERSION}/${pathOrUrl.replace(/^\/+/, "")}`;
    if (!query || Object.keys(query).length === 0) return base;
    const params = Object.entries(query).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
    return `${base}${base.includes("?") ? "&" : "?"}${params.join("&")}`;
  }

  async get<T>(path: string, query?: Record<string, string | number>, opts: CallOptions = {}): Promise<T> {
    return (await this.request<T>("GET", this.url(path, query), opts)).body;
  }

  async patch<T = unknown>(path: string, body: unknown, opts: CallOptions = {}): Promise<T> {
    return (await this.request<T>("PATCH", this.url(path), { ...opts, body })).body;
  }

  async post<T = unknown>(path: string, body: unknown, opts: CallOptions = {}): Promise<T> {
    return (await this.request<T>("POST", this.url(path), { ...opts, body })).body;
  }

  async delete(path: string, opts: CallOptions = {}): Promise<void> {
    await this.request("DELETE", this.url(path), opts);
  }

  /** GET a body as a stream (a MIME message), never buffered whole. */
  async getStream(path: string, opts: CallOptions = {}): Promise<GraphStream> {
    const { response, release } = await this.exchange("GET", this.url(path), opts);
    if (!response.ok) {
      const err = await errorOf(response, this.url(path));
      release();
      throw err;
    }
    const length = Number(response.headers.get("content-length"));
    if (!response.streams) {
      release();
      return { stream: Readable.from([]), size: 0 };
    }
    const stream = response.stream();
    stream.once("close", release);
    stream.once("end", release);
    return { stream, size: Number.isFinite(length) && response.headers.has("content-length") ? length : null };
  }

  /** One request with a JSON (or empty) answer; any status but 2xx is thrown as a GraphApiError. */
  async request<T>(
    method: HttpMethod,
    url: string,
    opts: CallOptions & { body?: unknown } = {},
  ): Promise<GraphResponse<T>> {
    const { response, release } = await this.exchange(method, url, opts);
    try {
      if (!response.ok) throw await errorOf(response, url);
      if (response.parsed !== undefined)
        return { status: response.status, headers: response.headers, body: response.parsed as T };
      const text = await response.text(); // "" for a bodiless status (Answer)
      let body: unknown;
      try {
        body = text.trim() === "" ? undefined : JSON.parse(text);
      } catch {
        throw new GraphApiError(
          response.status,
          "InvalidJson",
          `Graph answered ${method} ${pathOf(url)} with a body that is not JSON`,
          "a proxy between here and Graph may be answering instead of Graph",
          text.slice(0, 200),
        );
      }
      return { status: response.status, headers: response.headers, body: body as T };
    } catch (err) {
      throw unwrap(err, opts.signal);
    } finally {
      release();
    }
  }

  /** Listens to throttling of any mailbox (listener gets the wait and the mailbox, lower case). */
  watchThrottling(listener: ThrottleListener): () => void {
    this.throttleListeners.add(listener);
    return () => this.throttleListeners.delete(listener);
  }

  /** Lets go of the connections; the last GraphApi to close them closes the idle ones. Requests still running finish or fail on their own. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.agent.release();
  }

  /**
   * Sends when the mailbox is not paused and has a free slot; waits out 429/503. The caller owns
   * the returned slot until it calls `release` (after reading the body).
   */
  private async exchange(
    method: HttpMethod,
    url: string,
    opts: CallOptions & { body?: unknown },
  ): Promise<{ response: Answer; release: () => void }> {
    const target = new URL(url);
    if (target.host.toLowerCase() !== this.host) {
      throw new GraphApiError(
        0,
        "ForeignHost",
        `Graph link points to ${target.host}, not to the configured Graph host ${this.host}`,
        "the token is sent to the configured Graph host only",
        url,
      );
    }
    const mailbox = opts.mailbox?.trim().toLowerCase() ?? mailboxOf(url);
    const lane = this.lane(mailbox);
    for (let throttled = 0; ; ) {
      await lane.unpaused(opts.signal);
      const release = await lane.slots.acquire(opts.signal);
      if (lane.pausedUntil > Date.now()) {
        release(); // throttled while this one waited for its slot
        continue;
      }
      let response: Answer;
      try {
        response = await this.call(method, url, opts);
      } catch (err) {
        release();
        throw unwrap(err, opts.signal);
      }
      if (response.status !== 429 && response.status !== 503) return { response, release };
      const retryAfter = retryAfterMs(response.headers.get("retry-after"));
      const err = await errorOf(response, url, retryAfter);
      release();
      if (throttled >= this.maxThrottleRetries) throw err;
      const wait = retryAfter ?? backoffDelay(throttled, this.backoff);
      throttled++;
      lane.pause(wait);
      this.opts.log?.(
        "warn",
        `Graph throttled ${method} ${pathOf(url)} (${response.status} ${err.code}); ` +
          `retrying in ${Math.ceil(wait / 1000)} s${retryAfter === undefined ? " (no Retry-After)" : ""}`,
      );
      for (const listener of this.throttleListeners) listener(wait, mailbox);
    }
  }

  /** One request with the token; a 401 gets one renewed token, never more. */
  private async call(method: HttpMethod, url: string, opts: CallOptions & { body?: unknown }): Promise<Answer> {
    const target = new URL(url);
    if (target.host.toLowerCase() !== this.host) {
      throw new GraphTransportError(`refusing to send the Graph token to ${target.host}`);
    }
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | Buffer | undefined;
    if (method === "POST" || method === "PATCH") {
      const content = opts.body ?? {};
      body = typeof content === "string" || Buffer.isBuffer(content) ? content : JSON.stringify(content);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
        headers["Content-Type"] = "application/json";
      }
    }
    const token = await this.token(() => this.opts.tokens.get());
    const single = () => this.send(target, method, { ...headers, Authorization: `Bearer ${token}` }, body, opts.signal);
    const response =
      opts.batch && method === "GET" && !opts.headers
        ? await batchFor(this.host, token).submit(target, single, (requests) => this.postBatch(token, requests))
        : await single();
    if (response.status !== 401) return response;
    await response.text().catch(() => undefined); // drained, so the connection is reused
    const renewed = await this.token(() => this.opts.tokens.renewAfterRejection(token));
    return this.send(target, method, { ...headers, Authorization: `Bearer ${renewed}` }, body, opts.signal);
  }

  /** POST /v1.0/$batch with the token: the answers by id, or a GraphApiError (the caller then sends one by one). */
  private async postBatch(token: string, requests: BatchRequest[]): Promise<BatchAnswer[]> {
    const url = new URL(this.url("$batch"));
    const body = JSON.stringify({ requests });
    const response = await this.send(
      url,
      "POST",
      { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body,
      undefined,
    );
    if (!response.ok) throw await errorOf(response, url.href);
    const answer = JSON.parse(await response.text()) as { responses?: BatchAnswer[] };
    return Array.isArray(answer?.responses) ? answer.responses : [];
  }

  /** The token source's own error (e.g. missing admin consent) must reach the caller unchanged. */
  private async token(get: () => Promise<string>): Promise<string> {
    try {
      return await get();
    } catch (err) {
      throw new GraphTransportError(err instanceof Error ? err.message : String(err), err, false, true);
    }
  }

  /** HTTPS through our agent; the answer with its body still to read (or stream). */
  private async send(
    url: URL,
    method: HttpMethod,
    headers: Record<string, string>,
    body: string | Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    const idleTimeoutMs = this.idleTimeoutMs;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest(
        url,
        { method, headers, agent: this.agent.agent, signal, timeout: idleTimeoutMs },
        resolve,
      );
      req.on("timeout", () => {
        req.destroy(new Error(`no answer from ${url.host} within ${Math.round(idleTimeoutMs / 1000)} s`));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        reject(new GraphTransportError(networkText(err, url.host), err, err.name === "AbortError"));
      });
      req.end(body);
    });
    return Answer.fromMessage(res);
  }

  private lane(mailbox: string): Lane {
    let lane = this.lanes.get(mailbox);
    if (!lane) {
      lane = new Lane(this.maxConcurrent);
      this.lanes.set(mailbox, lane);
    }
    return lane;
  }
}

/**
 * One keep-alive agent per trust setting, shared by every GraphApi in the process: the connectors of all
 * tenants reuse a few warm TLS connections to Graph instead of one pool each, whose idle sockets the server
 * closes between polls, so that every poll paid a new TLS handshake (issue #19). Tokens travel per request.
 */
class SharedAgent {
  private static readonly byCa = new Map<string, SharedAgent>();
  private users = 0;
  readonly agent: Agent;

  private constructor(
    private readonly key: string,
    ca: string | undefined,
  ) {
    // `ca` replaces Node's trust store, so the system's roots go along with the extra ones
    this.agent = new Agent({ keepAlive: true, ca: ca ? [...rootCertificates, ...caList(ca)] : undefined });
  }

  static take(ca: string | undefined): SharedAgent {
    const key = ca?.trim() ?? "";
    let shared = SharedAgent.byCa.get(key);
    if (!shared) {
      shared = new SharedAgent(key, ca);
      SharedAgent.byCa.set(key, shared);
    }
    shared.users++;
    return shared;
  }

  release(): void {
    if (--this.users > 0) return;
    SharedAgent.byCa.delete(this.key);
    this.agent.destroy();
  }
}

/** Path segment for a mailbox, message id or folder id; `@` and `=` stay readable as RFC 3986 allows. */
export function segment(value: string): string {
  return encodeURIComponent(value).replace(/%40/g, "@").replace(/%3D/g, "=");
}

export function userPath(mailbox: string): string {
  return `/users/${segment(mailbox)}`;
}

/** One mailbox's share of Graph: its slots and its throttling pause. */
class Lane {
  pausedUntil = 0;
  readonly slots: Slots;

  constructor(concurrent: number) {
    this.slots = new Slots(concurrent);
  }

  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
  }

  async unpaused(signal?: AbortSignal): Promise<void> {
    for (let wait = this.pausedUntil - Date.now(); wait > 0; wait = this.pausedUntil - Date.now()) {
      await delay(wait, signal);
    }
  }
}

/** A counting semaphore, first come first served. */
class Slots {
  private readonly waiting: { grant: () => void; signal?: AbortSignal }[] = [];

  constructor(private free: number) {}

  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortError());
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.releaser());
        },
        signal,
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortError());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.free++;
    };
  }
}

function caList(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [pem];
}

function networkText(err: NodeJS.ErrnoException, host: string): string {
  const text = `${err.code ?? ""} ${err.message}`;
  if (err.name === "AbortError") return "request aborted";
  if (/CERT|certificate|self.signed|unable to verify/i.test(text)) {
    return `TLS certificate of ${host} not trusted (${err.code ?? err.message}): name your proxy's CA in "Extra CA", verification stays on`;
  }
  if (/ECONNREFUSED/.test(text)) return `connection to ${host} refused`;
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return `host ${host} not found`;
  return `cannot reach ${host}: ${err.message}`;
}

/** Turns the library's wrapping back into our errors; an abort stays an abort. */
function unwrap(err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return abortError();
  // a TokenError keeps its type (and whether it is transient) for the caller
  if (err instanceof GraphTransportError) return err.fromTokenSource ? err.cause : err;
  if (err instanceof GraphApiError) return err;
  return new GraphTransportError((err as { message?: string }).message ?? String(err), err);
}

export function abortError(): Error {
  const err = new Error("stopped");
  err.name = "AbortError";
  return err;
}

export function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === "AbortError" || (err instanceof GraphTransportError && err.aborted);
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Retry-After in seconds (Graph's form) or as an HTTP date. */
export function retryAfterMs(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The mailbox a URL addresses (lower case): /users/{m}/ or /users('{m}')/; "" outside /users. */
export function mailboxOf(url: string): string {
  const path = safeDecode(new URL(url).pathname);
  const m = /\/users(?:\('([^']+)'\)|\/([^/]+))/i.exec(path);
  return (m?.[1] ?? m?.[2] ?? "").toLowerCase();
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function pathOf(url: string): string {
  const u = new URL(url);
  return safeDecode(u.pathname.replace(new RegExp(`^/${GRAPH_VERSION.replace(".", "\\.")}`), ""));
}

async function errorOf(response: Answer, url: string, retryAfter?: number): Promise<GraphApiError> {
  const text = await response.text().catch(() => "");
  let code = "";
  let serverMessage = "";
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code ?? "";
    serverMessage = parsed.error?.message ?? "";
  } catch {
    serverMessage = text.slice(0, 200);
  }
  return explain(
    response.status,
    code || response.statusText || String(response.status),
    serverMessage,
    url,
    retryAfter,
  );
}

/** What a Graph refusal means for the person who set up the node. */
export function explain(
  status: number,
  code: string,
  serverMessage: string,
  url: string,
  retryAfter?: number,
): GraphApiError {
  const mailbox = mailboxOf(url);
  const path = pathOf(url);
  const said = serverMessage ? `: ${serverMessage}` : "";
  const make = (message: string, hint: string) =>
    new GraphApiError(status, code, message, hint, serverMessage, retryAfter);
  if (status === 401) {
    return make(
      `Graph refused the token (${code})${said}`,
      "A renewed token was refused too. Check that the config node's Graph host belongs to the app's cloud " +
        "(the token audience) and that the app has the Graph permissions Mail.ReadWrite / Mail.Send with admin consent.",
    );
  }
  if (status === 403) {
    return make(
      `Graph denied access to mailbox ${mailbox || "?"} (${code}): an Application Access Policy or RBAC for ` +
        "Applications limits which mailboxes the app may read",
      `Ask the Exchange administrator to add ${mailbox || "the mailbox"} to the app's allowed scope ` +
        "(Test-ApplicationAccessPolicy, or the management scope of its RBAC role assignment), " +
        "and check admin consent for Mail.ReadWrite and Mail.Send.",
    );
  }
  if (status === 404 && MAILBOX_MISSING.has(code)) {
    return make(
      `mailbox ${mailbox || "?"} not found in Exchange Online (${code})${said}`,
      "Check the address. A mailbox that is on-premises, inactive, soft-deleted or without a licence cannot be read through Graph.",
    );
  }
  if (
    status === 404 &&
    FOLDER_MISSING.has(code) &&
    /\/mailFolders\/[^/]+(\/messages(\/delta)?|\/childFolders)?\/?$/i.test(path)
  ) {
    const folder = /\/mailFolders\/([^/]+)/i.exec(path)?.[1] ?? "?";
    return make(
      `folder ${folder} not found in mailbox ${mailbox || "?"} (${code})`,
      "Create the folder or correct its name in the node.",
    );
  }
  if (status === 429 || status === 503) {
    return make(
      `Graph keeps throttling requests to ${mailbox || "Graph"} (${status} ${code})${said}`,
      "Exchange allows about 10,000 requests per 10 minutes and 4 at a time per app and mailbox: " +
        "other applications may be using the same mailbox heavily, or raise the poll interval.",
    );
  }
  if (status >= 500) {
    return make(`Graph answered ${status} ${code}${said}`, "A temporary problem at Microsoft; retried.");
  }
  return make(`Graph refused ${path} (${status} ${code})${said}`, "");
}

/** Counts the bytes that pass, for the size of a streamed message. */
export class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void) {
    this.bytes += chunk.length;
    done(null, chunk);
  }
}
