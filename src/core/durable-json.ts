// A small JSON document kept on disk durably: written to a temp file, fsynced, renamed over the
// old one and the directory fsynced, so a crash leaves either the old or the new version, whole.
// Concurrent saves share writes. The connectors' progress files are built on it.
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, privateDirOf } from "./private-files";
import { syncDir } from "./sync-dir";

export class DurableJson<T> {
  private value: T;
  private writing: Promise<void> | undefined;
  /** Bumped by every change; `saved` is the version last on disk. */
  private version = 0;
  private saved = 0;
  private dirChecked = false;

  /** `normalize` turns what was read (any JSON) into a valid T, filling what is missing. */
  constructor(
    readonly path: string,
    private readonly empty: () => T,
    private readonly normalize: (parsed: Partial<T>) => T,
  ) {
    this.value = empty();
  }

  /** Reads the file; a missing file is a first start, an unreadable one is reported, not ignored. */
  async load(): Promise<{ progress: T; problem?: string }> {
    try {
      this.value = this.normalize(JSON.parse(await readFile(this.path, "utf8")) as Partial<T>);
      return { progress: this.value };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.value = this.empty();
      if (code === "ENOENT") return { progress: this.value };
      return {
        progress: this.value,
        problem: `progress file ${this.path} unreadable (${String(err)}): starting afresh`,
      };
    }
  }

  get current(): T {
    return this.value;
  }

  /** Changes the document in memory; `save()` makes it durable. */
  update(change: (value: T) => void): void {
    change(this.value);
    this.version++;
  }

  /**
   * Changes the document in memory without asking for a write: the next save of another change carries it.
   * For what may be lost in a crash without harm (a newer equivalent of what is on disk).
   */
  updateLazily(change: (value: T) => void): void {
    change(this.value);
  }

  /**
   * Resolves once every change made before the call is on disk; concurrent callers share writes.
   * Waits for at most the write under way and one more: changes made later are not its business,
   * so a steady stream of settlements cannot keep one caller waiting.
   */
  async save(): Promise<void> {
    const wanted = this.version;
    while (this.saved < wanted) {
      if (this.writing) {
        await this.writing; // its failure is ours too: the change is not on disk
        continue;
      }
      const writing = this.version;
      this.writing = this.write(JSON.stringify(this.value))
        .then(() => {
          this.saved = Math.max(this.saved, writing);
        })
        .finally(() => {
          this.writing = undefined;
        });
      await this.writing; // a failed write rejects here; the version stays unsaved for the next save
    }
  }

  private async write(text: string): Promise<void> {
    if (this.dirChecked) await mkdir(dirname(this.path), { recursive: true, mode: PRIVATE_DIR_MODE });
    else await privateDirOf(this.path);
    this.dirChecked = true;
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, "w", PRIVATE_FILE_MODE);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    await syncDir(dirname(this.path));
  }
}
