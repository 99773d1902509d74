// What a connector has settled in one folder, keyed by UIDVALIDITY + UID, on disk so that
// a restart neither re-raises settled alarms nor skips unsettled ones. Written atomically
// (temp file, fsync, rename) and written before the IMAP action it records is carried out.
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";

/** What settling an email does to it on the server. */
export type ServerAction = { kind: "seen" } | { kind: "move"; folder: string } | { kind: "delete" } | { kind: "none" };

export interface SettledEmail {
  uid: number;
  messageId: string | null;
  outcome: "accepted" | "rejected";
  action: ServerAction;
  /** The action was confirmed on the server; until then it is retried on every connection. */
  applied: boolean;
}

export interface FolderProgress {
  uidValidity: string | null;
  /** "new since watching" mode: UIDs up to here are never candidates. */
  watermark: number;
  settled: SettledEmail[];
}

export function emptyProgress(): FolderProgress {
  return { uidValidity: null, watermark: 0, settled: [] };
}

export class ProgressStore {
  private progress: FolderProgress = emptyProgress();
  private writing: Promise<void> | undefined;
  private dirty = false;

  constructor(readonly path: string) {}

  /** Reads the file; a missing file is a first start, an unreadable one is reported, not ignored. */
  async load(): Promise<{ progress: FolderProgress; problem?: string }> {
    try {
      const parsed = JSON.parse(await readFile(this.path, "utf8")) as Partial<FolderProgress>;
      this.progress = {
        uidValidity: typeof parsed.uidValidity === "string" ? parsed.uidValidity : null,
        watermark: typeof parsed.watermark === "number" ? parsed.watermark : 0,
        settled: Array.isArray(parsed.settled) ? parsed.settled : [],
      };
      return { progress: this.progress };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.progress = emptyProgress();
      if (code === "ENOENT") return { progress: this.progress };
      return {
        progress: this.progress,
        problem: `progress file ${this.path} unreadable (${String(err)}): starting afresh`,
      };
    }
  }

  get current(): FolderProgress {
    return this.progress;
  }

  /** Changes the progress in memory; `save()` makes it durable. */
  update(change: (p: FolderProgress) => void): void {
    change(this.progress);
    this.dirty = true;
  }

  /** Resolves once every change made before the call is on disk; concurrent callers share writes. */
  async save(): Promise<void> {
    while (this.dirty || this.writing) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      this.dirty = false;
      this.writing = this.write(JSON.stringify(this.progress))
        .catch((err: unknown) => {
          this.dirty = true; // not on disk: the next save tries again
          throw err;
        })
        .finally(() => {
          this.writing = undefined;
        });
      await this.writing;
    }
  }

  private async write(text: string): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, "w");
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
