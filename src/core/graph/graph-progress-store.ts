// Where a Graph connector stands in one folder, on disk: the delta link, the emails it has taken
// on but not settled yet (`pending`), and the settlements still to carry out or to remember.
// The delta link only ever moves on in the same write that puts the emails it passed into
// `pending`, and a settlement is written before the server is touched, so a restart neither
// re-raises settled alarms nor skips unsettled ones. Written atomically like progress-store.ts.
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import type { ServerAction } from "../mail/progress-store";

/** An email taken on (seen in a delta round or the unread listing) and not settled yet. */
export interface GraphPendingEmail {
  /** Our serial number for it: `msg.email.uid`, the same on every offer. */
  uid: number;
  graphId: string;
  messageId: string | null;
  /** receivedDateTime, ISO 8601. */
  receivedAt: string | null;
}

export interface GraphSettledEmail {
  uid: number;
  graphId: string;
  messageId: string | null;
  outcome: "accepted" | "rejected";
  action: ServerAction;
  /** The action was confirmed by Graph; until then it is retried on every round. */
  applied: boolean;
  /** When it was confirmed (ms since epoch): an unread listing started later no longer needs it. */
  appliedAt?: number;
}

export interface GraphFolderProgress {
  /** Id (or well-known name) of the folder the delta link belongs to. */
  folderId: string | null;
  deltaLink: string | null;
  /** "new" mode: emails received before this (server time, ISO 8601) are not taken. */
  newSince: string | null;
  /** "new" mode: emails received at `newSince` that were already there at the first start. */
  oldIds: string[];
  nextUid: number;
  pending: GraphPendingEmail[];
  settled: GraphSettledEmail[];
}

export function emptyGraphProgress(): GraphFolderProgress {
  return { folderId: null, deltaLink: null, newSince: null, oldIds: [], nextUid: 1, pending: [], settled: [] };
}

export class GraphProgressStore {
  private progress: GraphFolderProgress = emptyGraphProgress();
  private writing: Promise<void> | undefined;
  private dirty = false;

  constructor(readonly path: string) {}

  /** Reads the file; a missing file is a first start, an unreadable one is reported, not ignored. */
  async load(): Promise<{ progress: GraphFolderProgress; problem?: string }> {
    try {
      const parsed = JSON.parse(await readFile(this.path, "utf8")) as Partial<GraphFolderProgress>;
      const pending = Array.isArray(parsed.pending) ? parsed.pending : [];
      const settled = Array.isArray(parsed.settled) ? parsed.settled : [];
      const highest = Math.max(0, ...pending.map((p) => p.uid), ...settled.map((s) => s.uid));
      this.progress = {
        folderId: typeof parsed.folderId === "string" ? parsed.folderId : null,
        deltaLink: typeof parsed.deltaLink === "string" ? parsed.deltaLink : null,
        newSince: typeof parsed.newSince === "string" ? parsed.newSince : null,
        oldIds: Array.isArray(parsed.oldIds) ? parsed.oldIds.filter((id) => typeof id === "string") : [],
        // never hand out a number twice, even from a file edited by hand
        nextUid: Math.max(typeof parsed.nextUid === "number" ? parsed.nextUid : 1, highest + 1),
        pending,
        settled,
      };
      return { progress: this.progress };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.progress = emptyGraphProgress();
      if (code === "ENOENT") return { progress: this.progress };
      return {
        progress: this.progress,
        problem: `progress file ${this.path} unreadable (${String(err)}): starting afresh`,
      };
    }
  }

  get current(): GraphFolderProgress {
    return this.progress;
  }

  /** Changes the progress in memory; `save()` makes it durable. */
  update(change: (p: GraphFolderProgress) => void): void {
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
