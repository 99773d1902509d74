// Lines appended to a file and flushed (fdatasync) before the caller hears "done": the cheap way
// to make many small records durable, instead of rewriting a whole document for each. Appends
// made while a write is under way share the next write + fdatasync (group commit). A write that
// fails is cut off again, so a later record never follows half a line.
import { constants } from "node:fs";
import { type FileHandle, open, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { PRIVATE_FILE_MODE, privateDirOf, privateFile } from "./private-files";
import { syncDir } from "./sync-dir";

interface Queued {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class AppendJournal {
  private file: FileHandle | undefined;
  /** Bytes known to be whole lines; the next write goes here. */
  private size = 0;
  private queue: Queued[] = [];
  private draining: Promise<void> | undefined;
  private lineCount = 0;

  constructor(readonly path: string) {}

  /** The whole lines of a journal file; a missing file has none, a torn last line is left out. */
  static async readLines(path: string): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const end = text.lastIndexOf("\n");
    return end < 0 ? [] : text.slice(0, end).split("\n");
  }

  /** Lines appended through this object, plus those it found when opened. */
  get lines(): number {
    return this.lineCount;
  }

  /** Resolves once `line` (no newline in it) is on disk. */
  append(line: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      this.draining ??= this.drain().finally(() => {
        this.draining = undefined;
      });
    });
  }

  /** Waits for appends under way, then closes the file. */
  async close(): Promise<void> {
    await this.draining;
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const bytes = Buffer.from(batch.map((q) => `${q.line}\n`).join(""));
        const file = await this.opened();
        try {
          for (let done = 0; done < bytes.length; ) {
            const { bytesWritten } = await file.write(bytes, done, bytes.length - done, this.size + done);
            if (bytesWritten <= 0) throw new Error("write made no progress");
            done += bytesWritten;
          }
          await file.datasync();
        } catch (err) {
          // Nothing of this batch counts: cut what may have reached the file before the next write.
          await file.truncate(this.size).catch(() => undefined);
          throw err;
        }
        this.size += bytes.length;
        this.lineCount += batch.length;
        for (const q of batch) q.resolve();
      } catch (err) {
        for (const q of batch) q.reject(err as Error);
      }
    }
  }

  /** Opens the file on first use, cutting a torn last line left by a crash. */
  private async opened(): Promise<FileHandle> {
    if (this.file) return this.file;
    await privateDirOf(this.path);
    let file: FileHandle;
    let created = false;
    try {
      file = await open(this.path, constants.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      file = await open(this.path, constants.O_RDWR | constants.O_CREAT, PRIVATE_FILE_MODE);
      created = true;
    }
    try {
      if (created)
        await syncDir(dirname(this.path)); // a new file's name must survive a crash too
      else await privateFile(file);
      const text = await file.readFile("utf8");
      const whole = Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1));
      if (whole < Buffer.byteLength(text)) await file.truncate(whole);
      this.size = whole;
      this.lineCount = whole === 0 ? 0 : text.slice(0, text.lastIndexOf("\n")).split("\n").length;
    } catch (err) {
      await file.close();
      throw err;
    }
    this.file = file;
    return file;
  }
}
