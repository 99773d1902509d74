// What a connector has settled in one folder, keyed by UIDVALIDITY + UID, on disk so that
// a restart neither re-raises settled alarms nor skips unsettled ones, and on disk before the
// IMAP action it records is carried out. Each settlement is one line appended to a journal
// (a burst of them shares one fdatasync); the whole document is rewritten atomically (temp file,
// fsync, rename) only now and then, which starts the next journal generation.
import { readdir, rm } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { AppendJournal } from "../append-journal";
import { DurableJson } from "../durable-json";

/** What settling an email does to it on the server. */
export type ServerAction = { kind: "seen" } | { kind: "move"; folder: string } | { kind: "delete" } | { kind: "none" };

/** What settling does on the server: the configured action when accepted; review folder (or nothing) when rejected. */
export function settlementAction(
  outcome: "accepted" | "rejected",
  onAccepted: ServerAction,
  reviewFolder: string | null,
): ServerAction {
  if (outcome === "accepted") return onAccepted;
  return reviewFolder ? { kind: "move", folder: reviewFolder } : { kind: "none" };
}

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

/** The document on disk: the journal of `generation` (and any later one) holds what came after it. */
interface StoredProgress extends FolderProgress {
  generation: number;
}

function normalizeProgress(parsed: Partial<StoredProgress>): StoredProgress {
  return {
    uidValidity: typeof parsed.uidValidity === "string" ? parsed.uidValidity : null,
    watermark: typeof parsed.watermark === "number" ? parsed.watermark : 0,
    settled: Array.isArray(parsed.settled) ? parsed.settled : [],
    generation: typeof parsed.generation === "number" ? parsed.generation : 0,
  };
}

/** A journal line: a settlement as recorded, before its server action was confirmed. */
type JournalRecord = Omit<SettledEmail, "applied">;

export class ProgressStore {
  private readonly document: DurableJson<StoredProgress>;
  private journal: AppendJournal;
  private generation = 0;

  constructor(readonly path: string) {
    this.document = new DurableJson<StoredProgress>(
      path,
      () => ({ ...emptyProgress(), generation: 0 }),
      normalizeProgress,
    );
    this.journal = new AppendJournal(this.journalPath(0));
  }

  /** Reads the document and replays the journals written after it; an unreadable document is reported. */
  async load(): Promise<{ progress: FolderProgress; problem?: string }> {
    const { progress, problem } = await this.document.load();
    const problems = problem ? [problem] : [];
    const journals = await this.journalGenerations();
    let latest = progress.generation;
    for (const generation of journals) {
      if (generation < progress.generation) {
        await rm(this.journalPath(generation), { force: true }); // folded into the document already
        continue;
      }
      latest = generation;
      let torn = 0;
      for (const line of await AppendJournal.readLines(this.journalPath(generation))) {
        const record = parseRecord(line);
        if (!record) torn++;
        else replace(progress.settled, { ...record, applied: record.action.kind === "none" });
      }
      if (torn > 0) problems.push(`${torn} unreadable line(s) in ${this.journalPath(generation)} skipped`);
    }
    this.generation = latest;
    await this.journal.close();
    this.journal = new AppendJournal(this.journalPath(latest));
    return problems.length > 0 ? { progress, problem: problems.join("; ") } : { progress };
  }

  get current(): FolderProgress {
    return this.document.current;
  }

  /** Settlements recorded since the document was last rewritten. */
  get journalLength(): number {
    return this.journal.lines;
  }

  /** Changes the document in memory; `save()` makes it durable. */
  update(change: (progress: FolderProgress) => void): void {
    this.document.update(change);
  }

  /**
   * Records a settlement durably (one journal line). Resolves once it is on disk; if it cannot be
   * written it is taken out again and the error is thrown: the email is then not settled.
   */
  async record(settled: SettledEmail): Promise<void> {
    this.document.update((p) => p.settled.push(settled));
    const { applied: _, ...line } = settled;
    try {
      await this.journal.append(JSON.stringify(line satisfies JournalRecord));
    } catch (err) {
      this.document.update((p) => {
        p.settled = p.settled.filter((s) => s !== settled);
      });
      throw err;
    }
  }

  /** Rewrites the whole document (atomically) and starts a new, empty journal. */
  async save(): Promise<void> {
    const generation = ++this.generation;
    const previous = this.journal;
    // From here on settlements go to the new journal: whether or not the document below holds
    // them, a restart replays them (a settlement replayed twice is the same settlement).
    this.journal = new AppendJournal(this.journalPath(generation));
    this.document.update((p) => {
      (p as StoredProgress).generation = Math.max((p as StoredProgress).generation, generation);
    });
    await this.document.save();
    await previous.close();
    for (const old of await this.journalGenerations()) {
      if (old < generation) await rm(this.journalPath(old), { force: true });
    }
  }

  /** Waits for settlements being written and closes the journal. */
  async close(): Promise<void> {
    await this.journal.close();
  }

  private journalPath(generation: number): string {
    return `${this.path}.journal-${generation}`;
  }

  /** Generations of the journal files beside the document, oldest first. */
  private async journalGenerations(): Promise<number[]> {
    const prefix = `${basename(this.path)}.journal-`;
    let names: string[];
    try {
      names = await readdir(dirname(this.path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return names
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => Number(n.slice(prefix.length)))
      .sort((a, b) => a - b);
  }
}

function parseRecord(line: string): JournalRecord | null {
  try {
    const r = JSON.parse(line) as Partial<JournalRecord>;
    if (typeof r.uid !== "number" || (r.outcome !== "accepted" && r.outcome !== "rejected") || !r.action) return null;
    return {
      uid: r.uid,
      messageId: typeof r.messageId === "string" ? r.messageId : null,
      outcome: r.outcome,
      action: r.action,
    };
  } catch {
    return null;
  }
}

/** A later record of the same UID replaces the earlier one. */
function replace(settled: SettledEmail[], record: SettledEmail): void {
  const at = settled.findIndex((s) => s.uid === record.uid);
  if (at >= 0) settled[at] = record;
  else settled.push(record);
}
