// Where is this alarm? Every email's stages (picked up, mapped or rejected, accepted, sent, ACKed or refused,
// settled) appended as JSON lines to one file per UTC day, kept for the set days and under a total size,
// and searched by Message-ID, account, sender or subject text. Not the alarm's safety (the outbox is):
// written in batches without fsync, so a crash may lose the last fraction of a second of trace.
import { appendFile, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PRIVATE_FILE_MODE, privateDir } from "../private-files";

export type TraceStage = "picked-up" | "mapped" | "rejected" | "accepted" | "sent" | "acked" | "refused" | "settled";

export interface TraceEvent {
  at: number;
  stage: TraceStage;
  /** The email: its Message-ID, or `<connector>/<uidvalidity>/<uid>` when it has none. */
  key: string;
  /** The node that saw the stage. */
  node: string;
  messageId?: string;
  account?: string;
  from?: string;
  subject?: string;
  /** When the mail server received the email (ms). */
  arrivedAt?: number;
  detail?: string;
  receiver?: string;
  seq?: number;
}

export interface TracedEmail {
  key: string;
  messageId: string | null;
  account: string | null;
  from: string | null;
  subject: string | null;
  arrivedAt: number | null;
  stages: { stage: TraceStage; at: number; node: string; detail?: string; receiver?: string; seq?: number }[];
}

export interface TraceLogOptions {
  dir: string;
  keepDays: number;
  maxBytes: number;
  log?: (message: string) => void;
}

const FILE = /^trace-(\d{4}-\d{2}-\d{2})\.jsonl$/;
const FLUSH_MS = 250;
const MAX_BUFFERED = 5000;
const CLEANUP_EVERY_MS = 60 * 60 * 1000;

export class TraceLog {
  private buffer: string[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private ready: Promise<unknown> | undefined;
  private lastCleanup = 0;
  private dropped = 0;

  constructor(private readonly opts: TraceLogOptions) {}

  record(event: TraceEvent): void {
    if (this.buffer.length >= MAX_BUFFERED) {
      this.dropped++; // a disk that cannot keep up loses trace, never slows the alarms
      return;
    }
    this.buffer.push(JSON.stringify(event));
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, FLUSH_MS);
  }

  /** Writes what is buffered; resolves when it is in the file (not fsynced). */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const lines = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      if (lines.length === 0) return;
      try {
        this.ready ??= privateDir(this.opts.dir);
        await this.ready;
        const day = new Date().toISOString().slice(0, 10);
        await appendFile(join(this.opts.dir, `trace-${day}.jsonl`), `${lines.join("\n")}\n`, {
          mode: PRIVATE_FILE_MODE,
        });
        if (this.dropped > 0) {
          this.opts.log?.(`alarm trace: ${this.dropped} stages not recorded (the disk did not keep up)`);
          this.dropped = 0;
        }
        if (Date.now() - this.lastCleanup > CLEANUP_EVERY_MS) await this.cleanup();
      } catch (err) {
        this.opts.log?.(`alarm trace not written: ${String(err)}`);
      }
    });
    return this.flushing;
  }

  /** Removes days past retention, then the oldest days beyond the size cap (today's file is never removed). */
  async cleanup(now = Date.now()): Promise<void> {
    this.lastCleanup = now;
    const files = await this.files();
    const oldest = new Date(now - this.opts.keepDays * 86_400_000).toISOString().slice(0, 10);
    let total = 0;
    const sizes: { name: string; day: string; size: number }[] = [];
    for (const f of files) {
      const size = (await stat(join(this.opts.dir, f.name)).catch(() => null))?.size ?? 0;
      sizes.push({ ...f, size });
      total += size;
    }
    for (const f of sizes.sort((a, b) => a.day.localeCompare(b.day))) {
      if (f.day >= oldest && total <= this.opts.maxBytes) break;
      if (f === sizes.at(-1)) break;
      await rm(join(this.opts.dir, f.name), { force: true });
      total -= f.size;
    }
  }

  /**
   * The emails whose Message-ID, account, sender or subject contain `query` (case-insensitive), newest first,
   * each with every stage recorded for it.
   */
  async search(query: string, limit = 50): Promise<TracedEmail[]> {
    await this.flush();
    const q = query.trim().toLowerCase();
    if (!q) return [];
    const days = (await this.files()).sort((a, b) => b.day.localeCompare(a.day));
    const texts: string[] = [];
    for (const d of days) texts.push(await readFile(join(this.opts.dir, d.name), "utf8").catch(() => ""));
    const found = new Map<string, TracedEmail>();
    const matches = (e: TraceEvent) =>
      [e.messageId, e.account, e.from, e.subject, e.key].some((v) => v?.toLowerCase().includes(q));
    // First the emails that match (newest first), then every stage of theirs, wherever it was written.
    for (const text of texts) {
      const lines = text.split("\n");
      for (let i = lines.length - 1; i >= 0 && found.size < limit; i--) {
        const line = lines[i];
        if (!line?.toLowerCase().includes(q)) continue;
        const e = parse(line);
        if (e && matches(e) && !found.has(e.key)) found.set(e.key, emptyEmail(e.key));
      }
    }
    if (found.size === 0) return [];
    for (const text of [...texts].reverse()) {
      for (const line of text.split("\n")) {
        if (!line) continue;
        const e = parse(line);
        const email = e && found.get(e.key);
        if (!e || !email) continue;
        email.messageId ??= e.messageId ?? null;
        email.account ??= e.account ?? null;
        email.from ??= e.from ?? null;
        email.subject ??= e.subject ?? null;
        email.arrivedAt ??= e.arrivedAt ?? null;
        email.stages.push({
          stage: e.stage,
          at: e.at,
          node: e.node,
          ...(e.detail ? { detail: e.detail } : {}),
          ...(e.receiver ? { receiver: e.receiver } : {}),
          ...(e.seq !== undefined ? { seq: e.seq } : {}),
        });
      }
    }
    for (const email of found.values()) email.stages.sort((a, b) => a.at - b.at);
    return [...found.values()];
  }

  async close(): Promise<void> {
    await this.flush();
  }

  private async files(): Promise<{ name: string; day: string }[]> {
    const names = await readdir(this.opts.dir).catch(() => [] as string[]);
    return names.flatMap((name) => {
      const m = FILE.exec(name);
      return m?.[1] ? [{ name, day: m[1] }] : [];
    });
  }
}

function parse(line: string): TraceEvent | null {
  try {
    const e = JSON.parse(line) as TraceEvent;
    return typeof e.key === "string" && typeof e.stage === "string" ? e : null;
  } catch {
    return null;
  }
}

function emptyEmail(key: string): TracedEmail {
  return { key, messageId: null, account: null, from: null, subject: null, arrivedAt: null, stages: [] };
}
