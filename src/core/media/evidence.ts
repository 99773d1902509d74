// An alarm's evidence, as the line-driver uses it: keep the pictures and clips of an email in the media
// store, then hand back the signed links a receiver and an operator open (`[V<url>]`, msg.alarm.media).
// One of these per `alarm-media` config node: it owns the store, the listener and the cleanup timer.
import type { AlarmMediaLink } from "../datamap/types";
import { type MediaServer, startMediaServer } from "./media-server";
import { type MediaSource, MediaStore, type MediaStoreOptions, type StoredMedia } from "./media-store";
import { signedPath } from "./signed-link";

/** What msg.alarm.media lists for each kept file. */
export type AlarmMedia = AlarmMediaLink;

export interface EvidenceOptions {
  store: MediaStoreOptions;
  /** The address operators reach, e.g. "https://gateway.centre.example:8443" (see checkBaseUrl). */
  baseUrl: string;
  linkValidMs: number;
  /** Most files kept per alarm (a camera that attaches 50 frames fills the disk, not the operator's screen). */
  maxFilesPerAlarm: number;
  listen: { host: string; port: number; tls?: { cert: string; key: string } };
  signingKey: Buffer;
  log(level: "info" | "warn" | "error", message: string): void;
  now?: () => number;
}

/** Longest base URL: the path of a link adds 49 characters, and `[V...]` carries at most 256. */
export const MAX_BASE_URL = 200;
const BASE_URL = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$/;
const CLEANUP_EVERY_MS = 60 * 60 * 1000;

/** The base URL without a trailing slash; throws with what is wrong (the editor runs the same check). */
export function checkBaseUrl(text: string): string {
  const url = text.trim().replace(/\/+$/, "");
  if (!url) throw new Error("enter the base URL operators reach the gateway at, e.g. https://gateway.example:8443");
  if (!BASE_URL.test(url))
    throw new Error(`base URL "${url.slice(0, 80)}" is not http(s)://host[:port][/path] in plain ASCII`);
  if (url.length > MAX_BASE_URL)
    throw new Error(`base URL has ${url.length} characters; at most ${MAX_BASE_URL} leave room for the link`);
  return url;
}

export class Evidence {
  private cleanupTimer: NodeJS.Timeout | undefined;
  private keptSinceCleanup = 0;
  private cleaning: Promise<unknown> | undefined;

  private constructor(
    private readonly opts: EvidenceOptions,
    readonly store: MediaStore,
    private readonly server: MediaServer | undefined,
  ) {}

  /**
   * Opens the store and the listener. A listener that cannot start (address in use, no such address)
   * is logged and the store still keeps files: the alarm is not held back for a link that works again
   * once the listener is fixed and redeployed.
   */
  static async start(opts: EvidenceOptions): Promise<Evidence> {
    const baseUrl = checkBaseUrl(opts.baseUrl);
    const store = new MediaStore(opts.store);
    let server: MediaServer | undefined;
    try {
      server = await startMediaServer({
        host: opts.listen.host,
        port: opts.listen.port,
        tls: opts.listen.tls,
        signingKey: opts.signingKey,
        store,
        log: opts.log,
        now: opts.now,
      });
      const scheme = opts.listen.tls ? "https" : "http";
      opts.log("info", `alarm media served on ${scheme}://${opts.listen.host}:${server.port}, links ${baseUrl}/m/...`);
    } catch (err) {
      opts.log(
        "error",
        `alarm media listener not started on ${opts.listen.host}:${opts.listen.port}: ${(err as Error).message}; ` +
          "pictures are still kept, their links answer once it listens",
      );
    }
    const evidence = new Evidence({ ...opts, baseUrl }, store, server);
    evidence.cleanupTimer = setInterval(() => evidence.cleanup(), CLEANUP_EVERY_MS);
    evidence.cleanupTimer.unref();
    evidence.cleanup();
    return evidence;
  }

  get port(): number | undefined {
    return this.server?.port;
  }

  /**
   * Keeps the files of the types set and returns their links. Throws when the disk refuses: the
   * caller must then not accept the alarm (its email stays unread and is offered again).
   */
  async keep(sources: readonly MediaSource[]): Promise<{ media: AlarmMedia[]; skipped: string[] }> {
    const wanted = sources.filter((s) => this.store.keeps(s.contentType));
    const over = wanted.slice(this.opts.maxFilesPerAlarm);
    const result = await this.store.keep(wanted.slice(0, this.opts.maxFilesPerAlarm));
    const skipped = [
      ...result.skipped.map((s) => `${s.filename || "(no name)"}: ${s.why}`),
      ...over.map((s) => `${s.filename || "(no name)"}: more than ${this.opts.maxFilesPerAlarm} files in one alarm`),
    ];
    const bytes = result.stored.reduce((n, m) => n + m.size, 0);
    this.keptSinceCleanup += bytes;
    // A burst of clips must not run past the total cap until the hourly round: clean after each tenth of it.
    if (this.keptSinceCleanup > this.opts.store.maxTotalBytes / 10) this.cleanup();
    return { media: result.stored.map((m) => this.describe(m)), skipped };
  }

  /** A link to a stored file valid for the configured time from now (the editor's "last picture"). */
  describe(meta: StoredMedia, validMs = this.opts.linkValidMs): AlarmMedia {
    const expires = (this.opts.now ?? Date.now)() + validMs;
    return {
      url: `${this.opts.baseUrl}${signedPath(this.opts.signingKey, meta.id, expires)}`,
      contentType: meta.contentType,
      size: meta.size,
      filename: meta.filename,
      expiresAt: new Date(Math.ceil(expires / 1000) * 1000).toISOString(),
    };
  }

  /** Runs retention now (one round at a time); problems are logged, never thrown. */
  cleanup(): Promise<unknown> {
    this.cleaning ??= this.store
      .cleanup((this.opts.now ?? Date.now)())
      .then(
        ({ removed, bytes }) => {
          if (removed > 0) this.opts.log("info", `alarm media retention removed ${removed} files (${bytes} bytes)`);
        },
        (err: unknown) => this.opts.log("warn", `alarm media retention failed: ${String(err)}`),
      )
      .finally(() => {
        this.cleaning = undefined;
        this.keptSinceCleanup = 0;
      });
    return this.cleaning;
  }

  async close(): Promise<void> {
    clearInterval(this.cleanupTimer);
    await this.cleaning;
    await this.server?.close();
  }
}
