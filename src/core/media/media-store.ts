// The evidence of an alarm (a camera's snapshot, a short clip) kept on the gateway's disk, so that the
// link sent to the receiver never points at nothing: each file is written, fsynced and renamed into
// place, its description beside it, before the alarm is accepted. Files are 0600 in a 0700
// directory, named by a random id (never by the sender's file name). Retention: files older than
// the set days go, then the oldest until the total is under the cap.
import { copyFile, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PRIVATE_FILE_MODE, privateDir } from "../private-files";
import { syncDir } from "../sync-dir";
import { MEDIA_ID, newMediaId } from "./signed-link";

export interface MediaStoreOptions {
  dir: string;
  /** Content types kept, e.g. "image/jpeg", "image/*", "video/mp4". */
  types: readonly string[];
  /** Larger files are not kept (said in `skipped`). */
  maxFileBytes: number;
  retentionDays: number;
  /** Total bytes kept; the oldest files go first beyond it. */
  maxTotalBytes: number;
}

/** An attachment as the data-map's alarm or the parsed email has it. */
export interface MediaSource {
  filename: string;
  contentType: string;
  size: number;
  content?: Buffer | null;
  path?: string;
}

export interface StoredMedia {
  id: string;
  contentType: string;
  size: number;
  /** The sender's file name, for display only (sanitised by the parser). */
  filename: string;
  storedAt: string;
}

export interface KeepResult {
  stored: StoredMedia[];
  skipped: { filename: string; why: string }[];
}

/** Writes the bytes (or copies the spooled file) to `path`, 0600, fsynced; resolves to the size written. */
async function writeSynced(path: string, a: Pick<MediaSource, "content" | "path">): Promise<number> {
  if (!a.content) await copyFile(a.path as string, path);
  const file = await open(path, a.content ? "w" : "r+", PRIVATE_FILE_MODE);
  try {
    if (a.content) await file.writeFile(a.content);
    else await file.chmod(PRIVATE_FILE_MODE);
    await file.sync();
    return (await file.stat()).size;
  } finally {
    await file.close();
  }
}

const SAFE_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

export class MediaStore {
  private ready: Promise<unknown> | undefined;
  private newest: StoredMedia | undefined;

  constructor(private readonly opts: MediaStoreOptions) {}

  get dir(): string {
    return this.opts.dir;
  }

  /** Whether a content type is one the store keeps. */
  keeps(contentType: string): boolean {
    const type = contentType.trim().toLowerCase();
    if (!SAFE_TYPE.test(type)) return false;
    return this.opts.types.some((t) => {
      const want = t.trim().toLowerCase();
      return want.endsWith("/*") ? type.startsWith(want.slice(0, -1)) : type === want;
    });
  }

  /**
   * Keeps the attachments of the types and sizes set; resolves only once each kept file and its
   * description are on disk (fsync of the files and the directory). Throws when the disk refuses:
   * the caller must not accept the alarm then.
   */
  async keep(attachments: readonly MediaSource[]): Promise<KeepResult> {
    this.ready ??= privateDir(this.opts.dir);
    await this.ready;
    const result: KeepResult = { stored: [], skipped: [] };
    for (const a of attachments) {
      if (!this.keeps(a.contentType)) {
        result.skipped.push({ filename: a.filename, why: `type ${a.contentType || "unknown"} is not kept` });
        continue;
      }
      if (a.size > this.opts.maxFileBytes) {
        result.skipped.push({
          filename: a.filename,
          why: `${a.size} bytes, over the limit of ${this.opts.maxFileBytes}`,
        });
        continue;
      }
      if (!a.content && !a.path) {
        result.skipped.push({ filename: a.filename, why: "its bytes were not kept by the parser" });
        continue;
      }
      result.stored.push(await this.write(a));
    }
    if (result.stored.length > 0) await syncDir(this.opts.dir);
    return result;
  }

  /**
   * The file and its description are written and fsynced side by side (one disk round instead of two), then
   * renamed into place; keep() fsyncs the directory once for all of an alarm's files.
   */
  private async write(a: MediaSource): Promise<StoredMedia> {
    const id = newMediaId();
    const final = join(this.opts.dir, id);
    const meta: StoredMedia = {
      id,
      contentType: a.contentType.trim().toLowerCase(),
      size: a.content ? a.content.length : a.size,
      filename: a.filename,
      storedAt: new Date().toISOString(),
    };
    const [size] = await Promise.all([
      writeSynced(`${final}.part`, a),
      writeSynced(`${final}.json.part`, { content: Buffer.from(JSON.stringify(meta)) }),
    ]);
    if (size !== meta.size) {
      meta.size = size;
      await writeSynced(`${final}.json.part`, { content: Buffer.from(JSON.stringify(meta)) });
    }
    await rename(`${final}.part`, final);
    await rename(`${final}.json.part`, `${final}.json`);
    this.newest = meta;
    return meta;
  }

  /** A stored file and its description; null when there is none (unknown id, removed by retention). */
  async find(id: string): Promise<{ meta: StoredMedia; path: string } | null> {
    if (!MEDIA_ID.test(id)) return null;
    const path = join(this.opts.dir, id);
    try {
      const meta = JSON.parse(await readFile(`${path}.json`, "utf8")) as StoredMedia;
      if (meta.id !== id || !this.keeps(meta.contentType)) return null;
      await stat(path);
      return { meta, path };
    } catch {
      return null;
    }
  }

  /** The file kept last by this process, for the editor's "open the last picture". */
  get last(): StoredMedia | undefined {
    return this.newest;
  }

  /** Removes files past retention, then the oldest beyond the total cap, and half-written leftovers. */
  async cleanup(nowMs = Date.now()): Promise<{ removed: number; bytes: number }> {
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
    } catch {
      return { removed: 0, bytes: 0 };
    }
    const files: { id: string; size: number; storedAtMs: number }[] = [];
    let removed = 0;
    let bytes = 0;
    for (const name of names) {
      if (name.endsWith(".part")) {
        await rm(join(this.opts.dir, name), { force: true }); // a crash while writing
        continue;
      }
      if (!MEDIA_ID.test(name)) continue;
      const found = await this.find(name);
      const st = await stat(join(this.opts.dir, name)).catch(() => null);
      if (!st) continue;
      const storedAtMs = found ? Date.parse(found.meta.storedAt) : st.mtimeMs;
      files.push({ id: name, size: st.size, storedAtMs: Number.isNaN(storedAtMs) ? st.mtimeMs : storedAtMs });
    }
    const oldest = nowMs - this.opts.retentionDays * 86_400_000;
    files.sort((a, b) => a.storedAtMs - b.storedAtMs);
    let total = files.reduce((n, f) => n + f.size, 0);
    for (const f of files) {
      if (f.storedAtMs >= oldest && total <= this.opts.maxTotalBytes) break;
      await this.remove(f.id);
      total -= f.size;
      removed++;
      bytes += f.size;
    }
    return { removed, bytes };
  }

  private async remove(id: string): Promise<void> {
    const path = join(this.opts.dir, id);
    await rm(`${path}.json`, { force: true });
    await rm(path, { force: true });
    if (this.newest?.id === id) this.newest = undefined;
  }
}
