// Where a Graph connector stands in one folder, on disk: the delta link, the emails it has taken
// on but not settled yet (`pending`), and the settlements still to carry out or to remember.
// The delta link only ever moves on in the same write that puts the emails it passed into
// `pending`, and a settlement is written before the server is touched, so a restart neither
// re-raises settled alarms nor skips unsettled ones. Written atomically (durable-json.ts).
import { DurableJson } from "../durable-json";
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

function normalizeGraphProgress(parsed: Partial<GraphFolderProgress>): GraphFolderProgress {
  const pending = Array.isArray(parsed.pending) ? parsed.pending : [];
  const settled = Array.isArray(parsed.settled) ? parsed.settled : [];
  const highest = Math.max(0, ...pending.map((p) => p.uid), ...settled.map((s) => s.uid));
  return {
    folderId: typeof parsed.folderId === "string" ? parsed.folderId : null,
    deltaLink: typeof parsed.deltaLink === "string" ? parsed.deltaLink : null,
    newSince: typeof parsed.newSince === "string" ? parsed.newSince : null,
    oldIds: Array.isArray(parsed.oldIds) ? parsed.oldIds.filter((id) => typeof id === "string") : [],
    // never hand out a number twice, even from a file edited by hand
    nextUid: Math.max(typeof parsed.nextUid === "number" ? parsed.nextUid : 1, highest + 1),
    pending,
    settled,
  };
}

export class GraphProgressStore extends DurableJson<GraphFolderProgress> {
  constructor(path: string) {
    super(path, emptyGraphProgress, normalizeGraphProgress);
  }
}
