// Shared mode: several active gateways watch one mailbox, and the mailbox is the durable queue.
// Each email is claimed by one gateway (moved into its claim folder) before it goes downstream,
// and leaves that folder only once its alarm was ACKed (settled). A gateway whose lease expires
// has its claim folder released back into the watched folder by the live gateway with the lowest
// id, and its emails are claimed again. Transport-independent: the protocol is a SharedTransport.
//
// Time: a lease's age is always server time minus a server time stamp; this process's own fence
// (may an alarm go out?) is local monotonic time since it sent its last successful renewal. The
// two clocks are never compared with each other.

import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import type { BackoffPolicy } from "../backoff";
import { discardSpool, type ParsedEmail, UnreadableEmailError, unreadableEmail } from "../mail/parse-email";
import { type ServerAction, settlementAction } from "../mail/progress-store";
import { isPermanentTokenError, isTransientTokenError } from "../oauth/token-errors";
import { parseFetched } from "../watch/parse-fetched";
import { describe, type Failure, SessionLoop, tokenRetryPolicy } from "../watch/session-loop";
import {
  ConfigurationError,
  type DeliveryClearance,
  type EmailRef,
  type Outcome,
  type WatchedEmail,
  type Watcher,
  type WatcherState,
} from "../watch/watcher";
import { loadOrCreateIdentity, renewIdentity } from "./identity";
import { sameMembers, viewLeases } from "./lease-view";
import { ownerOf } from "./partition";
import type { ClaimedItem, SharedTransport } from "./transport";

export interface SharedWatcherOptions {
  transport: SharedTransport;
  /** Where identity.ts keeps instance-id. */
  identityDir: string;
  onAccepted: ServerAction;
  reviewFolder: string | null;
  /** Emitted but neither settled nor held within this: offered again. */
  redeliverAfterMs: number;
  /** Safety poll of the watched folder (and of this gateway's claim folder). */
  pollIntervalMs: number;
  maxInFlight: number;
  maxInMemoryAttachmentBytes: number;
  spoolDir: string;
  backoff: BackoffPolicy;
  leaseMs?: number;
  renewMs?: number;
  tieBreakDelayMs?: number;
  orphanAfterMs?: number;
  emit(email: WatchedEmail): void;
  onState(state: SharedWatcherState): void;
  log(level: "info" | "warn" | "error", message: string): void;
}

export type SharedWatcherState = WatcherState & { shared?: { instance: string; live: number; holding: number } };

type ClaimState =
  /** Contested: waits for the tie-break check before it may be emitted. */
  | "checking"
  /** To be fetched and emitted. */
  | "ready"
  | "emitted"
  /** Its alarm is durable downstream: kept claimed, never offered again by timer. */
  | "held"
  /** Settled by the flow; the server action is pending (pendingSettlements). */
  | "settling";

interface Claim {
  uid: number;
  /** Its id in this gateway's claim folder. */
  claimedId: string;
  messageId: string | null;
  state: ClaimState;
  contested: boolean;
  /** performance.now() when it was claimed (or found in the claim folder). */
  claimedAt: number;
  /** performance.now() when it was last seen in the claim folder. */
  seenAt: number;
  emittedAt: number;
  /** Parsed copies handed out (a redelivery adds one): their spools go when it is settled. */
  copies: ParsedEmail[];
  /** Moved out of the claim folder by someone while this gateway's lease stayed fresh. */
  movedAway: boolean;
}

interface PendingSettlement {
  claim: Claim;
  action: ServerAction;
  /** Not before this (performance.now()): a higher-id gateway's tie-break check must still see it. */
  notBefore: number;
}

/** A session ended so that the next starts at once, under the new id. */
const IDENTITY_RENEWED = "identity renewed";
const DEFAULT_LEASE_MS = 20_000;
const DEFAULT_RENEW_MS = 5_000;
const DEFAULT_TIE_BREAK_MS = 1_000;
const DEFAULT_ORPHAN_MS = 15_000;
/** Candidates listed per round at least: this gateway's share of them is about 1/n. */
const LIST_LIMIT = 500;
/** Lost refs remembered for mayDeliver (an outbox may ask about them for a long time). */
const LOST_MEMORY = 10_000;

export class SharedMailboxWatcher implements Watcher {
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly tieBreakMs: number;
  private readonly orphanAfterMs: number;
  /** Local time a renewal stays good for mayDeliver: a margin below the lease the peers judge by. */
  private readonly freshMs: number;
  private me = "";
  private nonce = "";
  private connected = false;
  /** This gateway's claim folder has been listed since the session began. */
  private resumed = false;
  private resumeWanted = true;
  private readonly loop: SessionLoop;
  private running: Promise<void> | undefined;
  private sessionEnd: ((reason: string) => void) | undefined;

  private readonly claims = new Map<number, Claim>();
  private readonly byClaimedId = new Map<string, Claim>();
  private readonly pendingSettlements: PendingSettlement[] = [];
  private readonly lost = new Set<string>();
  /** First ref uid of this process: above any uid a previous process handed out (time based). */
  private nextUid = Date.now() * 1000;

  // lease state
  private live: string[] = [];
  private folders: string[] = [];
  /** Peers whose claim folder this gateway released at least once (their empty folders stay). */
  private readonly releasedPeers = new Set<string>();
  private unleasedSince = new Map<string, number>();
  private myFirstRenewal: number | undefined;
  private lastRenewSent = Number.NEGATIVE_INFINITY;
  /** Last time this gateway's lease went from stale to fresh (performance.now()). */
  private lastStaleEnd = Number.NEGATIVE_INFINITY;
  /** Partition claims only from then: every peer has read this gateway's lease by that time. */
  private claimFrom = Number.POSITIVE_INFINITY;
  /** Claims before then are contested: the live set changed lately. */
  private contestUntil = Number.NEGATIVE_INFINITY;
  /** When each candidate was first listed (performance.now()), for the orphan rule. */
  private readonly firstListed = new Map<string, number>();

  // timers and rounds
  private leaseTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private redeliverTimer: NodeJS.Timeout | undefined;
  private readonly wakeTimers = new Set<NodeJS.Timeout>();
  private checking: Promise<void> | undefined;
  private checkAgain = false;
  private leaseRunning: Promise<void> | undefined;
  /** Settlements being carried out beside the rounds. */
  private flushing: Promise<void> | undefined;
  private lastState = "";

  constructor(private readonly opts: SharedWatcherOptions) {
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.renewMs = opts.renewMs ?? DEFAULT_RENEW_MS;
    this.tieBreakMs = opts.tieBreakDelayMs ?? DEFAULT_TIE_BREAK_MS;
    this.orphanAfterMs = opts.orphanAfterMs ?? DEFAULT_ORPHAN_MS;
    // max(2 s, lease/4) as designed, but never more than half the lease, so short leases still work.
    this.freshMs = this.leaseMs - Math.min(Math.max(2000, this.leaseMs / 4), this.leaseMs / 2);
    opts.transport.onChange(() => this.requestRound());
    opts.transport.onClosed((err) => this.endSession(`connection closed: ${describe(err)}`));
    this.loop = new SessionLoop({
      backoff: opts.backoff,
      session: async (working) => {
        const reason = await this.session(working);
        return { reason, atOnce: reason === IDENTITY_RENEWED };
      },
      cleanup: () => this.cleanupSession(),
      classify: (err): Failure => ({
        permanent: err instanceof ConfigurationError || isPermanentTokenError(err),
        policy: isTransientTokenError(err) ? tokenRetryPolicy(opts.backoff) : undefined,
      }),
      onState: (state) => this.setState(state as WatcherState),
      log: opts.log,
    });
  }

  private get stopped(): boolean {
    return this.loop.stopped;
  }

  start(): void {
    this.running ??= this.run();
    const every = Math.min(Math.max(this.opts.redeliverAfterMs / 4, 50), 30_000);
    this.redeliverTimer = setInterval(() => this.releaseOverdue(), every);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    // Settlements due soon are carried out first: else the email is offered again after a restart.
    if (this.connected) {
      await this.checking;
      await this.flushing;
      await this.flushSettlements(true).catch(() => undefined);
    }
    clearInterval(this.redeliverTimer);
    const stopping = this.loop.stop();
    this.endSession("stopped");
    await stopping;
    await this.running;
    for (const c of this.claims.values()) for (const e of c.copies) await discardSpool(e);
  }

  get instance(): string {
    return this.me;
  }

  get inFlightCount(): number {
    let n = 0;
    for (const c of this.claims.values()) if (c.state !== "held" && c.state !== "settling") n++;
    return n;
  }

  private get holdingCount(): number {
    let n = 0;
    for (const c of this.claims.values()) if (c.state === "held") n++;
    return n;
  }

  // ---- the flow's side ----

  async settle(ref: EmailRef, outcome: Outcome): Promise<boolean> {
    const claim = this.resolve(ref);
    if (!claim || claim.state === "settling" || claim.state === "checking") {
      this.opts.log("warn", `settle(${outcome}) for ${describeRef(ref)} ignored: not in flight (already settled?)`);
      return false;
    }
    for (const e of claim.copies) await discardSpool(e);
    claim.copies = [];
    if (outcome === "retry") {
      claim.state = "ready"; // fetched afresh from the claim folder
      this.requestRound();
      return true;
    }
    if (claim.movedAway) {
      this.forget(claim);
      this.opts.log(
        "info",
        `${describeRef(ref)} settled; it had been moved out of the claim folder, nothing to do there`,
      );
      return true;
    }
    claim.state = "settling";
    // Every claim, not only contested ones, stays in the claim folder a while: a peer that claimed the
    // same email in a race this gateway could not see lists the folder one tie-break delay after its
    // claim (plus a round trip), so an uncontested claim waits 1.5 delays, a contested one 3. Not
    // longer: an alarm ACKed but not yet settled is raised again if this gateway dies now.
    const notBefore = claim.claimedAt + (claim.contested ? 3 : 1.5) * this.tieBreakMs;
    this.pendingSettlements.push({
      claim,
      action: settlementAction(outcome, this.opts.onAccepted, this.opts.reviewFolder),
      notBefore,
    });
    this.wakeAt(notBefore);
    return true;
  }

  async hold(ref: EmailRef): Promise<boolean> {
    const claim = this.resolve(ref);
    if (!claim || (claim.state !== "emitted" && claim.state !== "held")) return false;
    claim.state = "held";
    this.report();
    return true;
  }

  mayDeliver(ref: EmailRef): DeliveryClearance {
    if (this.lost.has(refKey(ref))) return "lost";
    const claim = this.resolve(ref);
    if (claim && performance.now() - this.lastRenewSent > this.freshMs) return "wait";
    if (claim) return "yes";
    // Unknown: until the claim folder was listed it may still be there; after that it is not ours.
    return this.connected && this.resumed ? "lost" : "wait";
  }

  /** By uid; a ref of a previous process (the line-driver's outbox keeps refs) by its Message-ID. */
  private resolve(ref: EmailRef): Claim | undefined {
    if (ref.uidValidity === this.uidValidity) {
      const claim = this.claims.get(ref.uid);
      if (claim) return claim;
    }
    if (!ref.messageId || this.lost.has(refKey(ref))) return undefined;
    for (const c of this.claims.values()) if (c.messageId === ref.messageId && c.state !== "checking") return c;
    return undefined;
  }

  private get uidValidity(): string {
    return `shared:${this.me}`;
  }

  // ---- connection and lease ----

  private async run(): Promise<void> {
    try {
      this.me = await loadOrCreateIdentity(this.opts.identityDir);
    } catch (err) {
      this.opts.log("error", `cannot keep the instance id in ${this.opts.identityDir}: ${describe(err)}`);
      this.setState({ kind: "error", reason: describe(err), inMs: 0 });
      return;
    }
    await this.loop.start();
  }

  /** One connection: resolves with why it ended. */
  private async session(working: () => void): Promise<string> {
    const ended = new Promise<string>((resolve) => {
      this.sessionEnd = resolve;
    });
    this.nonce = randomBytes(8).toString("hex");
    this.myFirstRenewal = undefined;
    await this.opts.transport.open(this.me);
    if (this.stopped) return "stopped";
    await this.leaseRound();
    this.connected = true;
    this.resumed = false;
    this.resumeWanted = true;
    working();
    this.scheduleLease(this.renewMs);
    this.pollTimer = setInterval(() => {
      this.resumeWanted = true;
      this.requestRound();
    }, this.opts.pollIntervalMs);
    this.setState({ kind: "watching", inFlight: this.inFlightCount });
    this.requestRound();
    return ended;
  }

  private endSession(reason: string): void {
    const end = this.sessionEnd;
    this.sessionEnd = undefined;
    end?.(reason);
  }

  private async cleanupSession(): Promise<void> {
    this.connected = false;
    this.sessionEnd = undefined;
    clearTimeout(this.leaseTimer);
    clearInterval(this.pollTimer);
    for (const t of this.wakeTimers) clearTimeout(t);
    this.wakeTimers.clear();
    await this.checking;
    await this.flushing;
    await this.leaseRunning;
    await this.opts.transport.close().catch(() => undefined);
  }

  private scheduleLease(inMs: number): void {
    clearTimeout(this.leaseTimer);
    this.leaseTimer = setTimeout(() => {
      this.leaseRunning = this.leaseRound()
        .catch((err: unknown) => this.endSession(`lease renewal failed: ${describe(err)}`))
        .finally(() => {
          this.leaseRunning = undefined;
        });
    }, inMs);
  }

  /** Renews this gateway's lease, reads everybody's, and releases what the dead left behind. */
  private async leaseRound(): Promise<void> {
    const t = this.opts.transport;
    const sentAt = performance.now();
    const serverNow = await t.renewLease(this.me, this.nonce);
    if (this.stopped) return;
    this.myFirstRenewal ??= serverNow;
    if (sentAt - this.lastRenewSent > this.freshMs) {
      // Fresh again after a gap (or the first time): peers may have counted this gateway out and
      // taken its keys; they see it again within one renewal, so it claims by partition only then.
      this.lastStaleEnd = sentAt;
      this.claimFrom = sentAt + this.renewMs + this.tieBreakMs;
      this.wakeAt(this.claimFrom);
    }
    this.lastRenewSent = sentAt;
    const [leases, folders] = await Promise.all([t.readLeases(), t.listInstances()]);
    const view = viewLeases({
      leases,
      folders,
      serverNow,
      me: this.me,
      nonce: this.nonce,
      myFirstRenewal: this.myFirstRenewal,
      leaseMs: this.leaseMs,
      unleasedSince: this.unleasedSince,
    });
    this.unleasedSince = view.unleasedSince;
    this.folders = folders;
    if (view.clash && view.clash.nonce < this.nonce) {
      // Both processes see the clash; the one with the greater nonce takes a new id, the other keeps it.
      await this.renewOwnIdentity(view.clash.nonce);
      return;
    }
    if (!sameMembers(view.live, this.live)) {
      const before = this.live;
      this.live = view.live;
      // A peer whose view has not caught up may claim the same emails for a while: contested.
      this.contestUntil = performance.now() + 2 * this.renewMs;
      if (before.length > 0) this.opts.log("info", `gateways live: ${view.live.join(", ")}`);
      this.requestRound();
    }
    if (view.live[0] === this.me) {
      for (const peer of view.release) {
        const moved = await t.release(peer);
        // Its (empty) folder stays and is looked at again each round: say so once, and whenever it held emails.
        if (moved > 0 || !this.releasedPeers.has(peer)) {
          this.opts.log(
            moved > 0 ? "warn" : "info",
            `released ${moved} email(s) of gateway ${peer}: it is gone (lease expired); they are claimed again`,
          );
        }
        this.releasedPeers.add(peer);
        this.unleasedSince.delete(peer);
        if (moved > 0) this.requestRound();
      }
    }
    this.report();
    if (this.connected && !this.stopped) {
      // Look again just after the first peer would expire: takeover within a lease and a little.
      const next = view.nextExpiryInMs === undefined ? this.renewMs : Math.min(this.renewMs, view.nextExpiryInMs + 20);
      this.scheduleLease(Math.max(20, next));
    }
  }

  /** A copied user directory: continue under a new id; the old claim folder is released by a peer. */
  private async renewOwnIdentity(otherNonce: string): Promise<void> {
    const old = this.me;
    // ACKed alarms' emails leave the shared folder now, or the twin would raise them again.
    await this.flushSettlements(true).catch(() => undefined);
    this.me = await renewIdentity(this.opts.identityDir);
    this.opts.log(
      "error",
      `another gateway process runs as ${old} (nonce ${otherNonce}): this user directory was copied; ` +
        `continuing as ${this.me}. Its claimed emails are left to the other process, which resumes them.`,
    );
    for (const claim of [...this.claims.values()]) this.loseClaim(claim);
    this.live = [];
    this.lastRenewSent = Number.NEGATIVE_INFINITY;
    this.endSession(IDENTITY_RENEWED);
  }

  // ---- rounds ----

  requestRound(): void {
    if (!this.connected || this.stopped) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        if (!this.connected || this.stopped) break;
        try {
          await this.round();
        } catch (err) {
          // Nothing is half done: claimed emails stay in the claim folder and are resumed.
          this.opts.log("warn", `round failed: ${describe(err)}`);
          this.endSession(describe(err));
          break;
        }
      } while (this.checkAgain);
    })().finally(() => {
      this.checking = undefined;
    });
  }

  private async round(): Promise<void> {
    if (this.resumeWanted) {
      this.resumeWanted = false;
      await this.resume();
    }
    await this.checkContested();
    await this.claimNew();
    await this.offerReady();
    // Beside the rounds, on the claim connection: an email that arrives when earlier ones are due
    // to leave the claim folder is not kept waiting behind their SEARCH, STORE and MOVE (it set the
    // pickup p99). A failed settlement stays pending and ends the session, as a failed round does.
    this.flushing ??= this.flushSettlements(false)
      .catch((err: unknown) => {
        this.opts.log("warn", `settlement failed: ${describe(err)}`);
        this.endSession(describe(err));
      })
      .finally(() => {
        this.flushing = undefined;
      });
    this.report();
  }

  /** Carries out the settlements that are due; failed ones stay for the next round. */
  private async flushSettlements(ignoreDelay: boolean): Promise<void> {
    const now = performance.now();
    const due = this.pendingSettlements.filter((p) => ignoreDelay || p.notBefore <= now);
    for (const p of due) {
      if (!this.connected) return;
      const at = this.pendingSettlements.indexOf(p);
      if (at < 0) continue; // carried out meanwhile (stop() flushes beside a round)
      this.pendingSettlements.splice(at, 1);
      let found: boolean;
      try {
        found = await this.opts.transport.settle(p.claim.claimedId, p.action);
      } catch (err) {
        // Still in the claim folder: tried again on the next round (a crash offers it again instead).
        this.pendingSettlements.push(p);
        throw err;
      }
      this.forget(p.claim);
      if (!found) {
        this.opts.log(
          "info",
          `${p.claim.messageId ?? `claimed email ${p.claim.claimedId}`}: no longer in the claim folder when settled (moved by hand?)`,
        );
      }
    }
  }

  /** Lists this gateway's claim folder: offers what is not in flight, notices what left it. */
  private async resume(): Promise<void> {
    const items = await this.opts.transport.listClaimed(this.me);
    const now = performance.now();
    const present = new Set(items.map((i) => i.id));
    for (const item of items) {
      const known = this.byClaimedId.get(item.id);
      if (known) {
        known.seenAt = now;
        known.messageId ??= item.messageId;
        continue;
      }
      // A previous process's (or a twin's) claim: offered; the outbox dedupes by Message-ID.
      this.addClaim(item.id, item.messageId, false, "ready");
    }
    for (const claim of [...this.claims.values()]) {
      if (present.has(claim.claimedId) || claim.state === "settling" || claim.movedAway) continue;
      if (this.lastStaleEnd > claim.seenAt || now - this.lastRenewSent > this.freshMs) {
        // The lease lapsed since it was last seen: a peer may have released it and claimed it again.
        this.opts.log("warn", `${label(claim)} left the claim folder while this gateway's lease lapsed: taken over`);
        this.loseClaim(claim);
      } else if (claim.state === "emitted" || claim.state === "held") {
        claim.movedAway = true;
        this.opts.log(
          "warn",
          `${label(claim)} was moved out of the claim folder by someone else; its alarm is still delivered`,
        );
      } else {
        this.opts.log("info", `${label(claim)} was moved out of the claim folder before it was offered`);
        this.forget(claim);
      }
    }
    this.resumed = true;
  }

  private async claimNew(): Promise<void> {
    const room = this.opts.maxInFlight - this.inFlightCount;
    if (room <= 0) return;
    const now = performance.now();
    const candidates = await this.opts.transport.listWatched(Math.max(LIST_LIMIT, room * this.live.length));
    const listed = new Set<string>();
    const mine: string[] = [];
    const orphans = new Set<string>();
    const partitioning = now >= this.claimFrom;
    for (const c of candidates) {
      listed.add(c.id);
      const first = this.firstListed.get(c.id) ?? now;
      this.firstListed.set(c.id, first);
      if (mine.length >= room) continue;
      if (partitioning && ownerOf(c.key, this.live) === this.me) mine.push(c.id);
      else if (now - first >= this.orphanAfterMs) {
        // Its owner is live but has not taken it: anybody may, as a contested claim.
        mine.push(c.id);
        orphans.add(c.id);
      }
    }
    for (const id of this.firstListed.keys()) if (!listed.has(id)) this.firstListed.delete(id);
    if (mine.length === 0) return;
    const claimed = await this.opts.transport.claim(mine);
    const contestedWindow = performance.now() < this.contestUntil || now < this.contestUntil;
    for (const [from, to] of claimed) {
      this.firstListed.delete(from);
      const contested = contestedWindow || orphans.has(from);
      this.addClaim(to, null, contested, contested ? "checking" : "ready");
    }
    // From after the claim: a wake-up measured from before it would come a few ms early, find nothing due,
    // and leave the contested claims waiting for the next poll.
    if ([...claimed.keys()].some((id) => contestedWindow || orphans.has(id))) {
      this.wakeAt(performance.now() + this.tieBreakMs);
    }
  }

  /**
   * A MOVE that lost a race may be answered as won (Dovecot), so both gateways hold a copy. After
   * the tie-break delay, a copy also held by a LOWER id is discarded: the lower id keeps its own
   * without looking, so exactly one copy goes on. Emails without a Message-ID cannot be compared
   * and go on (a duplicate alarm is bad; a lost one is worse).
   */
  private async checkContested(): Promise<void> {
    const now = performance.now();
    const checking = [...this.claims.values()].filter((c) => c.state === "checking");
    const due = checking.filter((c) => now - c.claimedAt >= this.tieBreakMs);
    // Whatever is not due yet gets its own wake-up: no contested claim waits for a poll.
    const next = Math.min(...checking.filter((c) => !due.includes(c)).map((c) => c.claimedAt + this.tieBreakMs));
    if (Number.isFinite(next)) this.wakeAt(next);
    if (due.length === 0) return;
    const own = new Map((await this.opts.transport.listClaimed(this.me)).map((i) => [i.id, i.messageId]));
    const lower = [...new Set([...this.live, ...this.folders])].filter((p) => p < this.me);
    const theirs = new Map<string, string>();
    for (const peer of lower) {
      let items: ClaimedItem[];
      try {
        items = await this.opts.transport.listClaimed(peer);
      } catch (err) {
        // Undecided is not emitted: the check is made again shortly (a peer's folder may be mid-release).
        this.opts.log("warn", `cannot list the claim folder of ${peer}: ${describe(err)}; tie-break delayed`);
        this.wakeAt(now + this.tieBreakMs);
        return;
      }
      for (const item of items) if (item.messageId) theirs.set(item.messageId, peer);
    }
    for (const claim of due) {
      if (!own.has(claim.claimedId)) {
        this.opts.log("info", `${label(claim)} left the claim folder before it was offered`);
        this.forget(claim);
        continue;
      }
      claim.messageId ??= own.get(claim.claimedId) ?? null;
      const holder = claim.messageId ? theirs.get(claim.messageId) : undefined;
      if (holder) {
        await this.opts.transport.discard(claim.claimedId);
        this.opts.log("info", `${label(claim)} was claimed by ${holder} too: its copy is kept, this one discarded`);
        this.loseClaim(claim);
      } else claim.state = "ready";
    }
  }

  private async offerReady(): Promise<void> {
    const ready = [...this.claims.values()].filter((c) => c.state === "ready");
    if (ready.length === 0) return;
    const byId = new Map(ready.map((c) => [c.claimedId, c]));
    for await (const fetched of this.opts.transport.fetch(ready.map((c) => c.claimedId))) {
      const claim = byId.get(fetched.id);
      byId.delete(fetched.id);
      if (claim?.state !== "ready" || this.stopped) continue;
      const email = await this.parse(claim, fetched.source);
      if (claim.state !== "ready" || this.stopped) {
        await discardSpool(email);
        continue;
      }
      claim.messageId = email.messageId ?? claim.messageId;
      claim.state = "emitted";
      claim.emittedAt = performance.now();
      claim.copies.push(email);
      const ref: EmailRef = { uidValidity: this.uidValidity, uid: claim.uid, messageId: claim.messageId };
      this.opts.emit({ ref, email, size: fetched.size, receivedAt: fetched.receivedAt });
    }
    // Not fetched: gone from the claim folder meanwhile; the next look at the folder says why.
    if (byId.size > 0) this.resumeWanted = true;
  }

  private async parse(claim: Claim, source: Buffer | Readable): Promise<ParsedEmail> {
    const spoolDir = `${this.opts.spoolDir}/shared-${claim.uid}-${claim.copies.length}`;
    const email = await parseFetched(source, { maxInMemoryBytes: this.opts.maxInMemoryAttachmentBytes, spoolDir });
    if (!(email instanceof UnreadableEmailError)) return email;
    this.opts.log("warn", `${label(claim)}: ${describe(email)}`);
    return unreadableEmail(describe(email), { messageId: claim.messageId });
  }

  /** Emails emitted but neither settled nor held in time are offered again, never dropped. */
  private releaseOverdue(): void {
    const now = performance.now();
    let released = 0;
    for (const claim of this.claims.values()) {
      if (claim.state === "emitted" && now - claim.emittedAt >= this.opts.redeliverAfterMs) {
        claim.state = "ready";
        released++;
      }
    }
    if (released > 0) {
      this.opts.log(
        "warn",
        `${released} email(s) not settled within ${this.opts.redeliverAfterMs / 1000} s: offering again`,
      );
      this.requestRound();
    }
  }

  // ---- bookkeeping ----

  private addClaim(claimedId: string, messageId: string | null, contested: boolean, state: ClaimState): Claim {
    const now = performance.now();
    const claim: Claim = {
      uid: this.nextUid++,
      claimedId,
      messageId,
      state,
      contested,
      claimedAt: now,
      seenAt: now,
      emittedAt: 0,
      copies: [],
      movedAway: false,
    };
    this.claims.set(claim.uid, claim);
    this.byClaimedId.set(claimedId, claim);
    return claim;
  }

  private forget(claim: Claim): void {
    this.claims.delete(claim.uid);
    if (this.byClaimedId.get(claim.claimedId) === claim) this.byClaimedId.delete(claim.claimedId);
    for (const e of claim.copies) void discardSpool(e);
    claim.copies = [];
  }

  /** Another gateway raises this one's alarm: mayDeliver says "lost" from now on. */
  private loseClaim(claim: Claim): void {
    this.lost.add(`${this.uidValidity}\n${claim.uid}`);
    if (this.lost.size > LOST_MEMORY) this.lost.delete(this.lost.values().next().value as string);
    const pending = this.pendingSettlements.findIndex((p) => p.claim === claim);
    if (pending >= 0) this.pendingSettlements.splice(pending, 1);
    this.forget(claim);
  }

  private wakeAt(at: number): void {
    const timer = setTimeout(
      () => {
        this.wakeTimers.delete(timer);
        this.requestRound();
      },
      Math.max(0, at - performance.now()) + 1,
    );
    this.wakeTimers.add(timer);
  }

  private report(): void {
    if (this.connected) this.setState({ kind: "watching", inFlight: this.inFlightCount });
  }

  /** Tells the node once per change. */
  private setState(state: WatcherState): void {
    const full: SharedWatcherState = {
      ...state,
      shared: { instance: this.me, live: Math.max(1, this.live.length), holding: this.holdingCount },
    };
    const text = JSON.stringify(full);
    if (text === this.lastState) return;
    this.lastState = text;
    this.opts.onState(full);
  }
}

function refKey(ref: EmailRef): string {
  return `${ref.uidValidity}\n${ref.uid}`;
}

function describeRef(ref: EmailRef): string {
  return ref.messageId ? `<${ref.messageId}>` : `uid ${ref.uid}`;
}

function label(claim: Claim): string {
  return claim.messageId ? `<${claim.messageId}>` : `claimed email ${claim.claimedId}`;
}
