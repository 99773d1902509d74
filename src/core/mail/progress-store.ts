// What a connector has settled in one folder, keyed by UIDVALIDITY + UID, on disk so that
// a restart neither re-raises settled alarms nor skips unsettled ones. Written atomically
// (temp file, fsync, rename) and written before the IMAP action it records is carried out.
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

function normalizeProgress(parsed: Partial<FolderProgress>): FolderProgress {
  return {
    uidValidity: typeof parsed.uidValidity === "string" ? parsed.uidValidity : null,
    watermark: typeof parsed.watermark === "number" ? parsed.watermark : 0,
    settled: Array.isArray(parsed.settled) ? parsed.settled : [],
  };
}

export class ProgressStore extends DurableJson<FolderProgress> {
  constructor(path: string) {
    super(path, emptyProgress, normalizeProgress);
  }
}
