// Delivers Sur-Gard packets to the automation software the way a receiver does
// (surgard.md "Timing and roles"): one packet outstanding, in order; resend on NAK or silence;
// after `attempts` sends the line is failing and only heartbeats go out until one is ACKed,
// then the packet is sent again. It never gives up on a packet that got no answer: the outbox
// keeps it. A packet NAKed 26 times while heartbeats are ACKed is refused (System 5 keeps an
// event "until ACKed or NAKed 26 times"), so one unacceptable packet cannot block the line.

import { backoffDelay } from "../backoff";
import type { LineState } from "../delivery/channel";
import type { PumpOutcome } from "../delivery/outbox-pump";
import { Pause } from "../pause";
import { SurgardLink, type SurgardLinkOptions } from "./surgard-link";

export interface SurgardTransmitterOptions {
  link: Omit<SurgardLinkOptions, "onConnected" | "onDisconnected" | "onRefused" | "stillAnswering">;
  heartbeat: Buffer;
  ackTimeoutMs: number;
  /** Sends of one packet before the line is marked failing (1 = no resend). */
  attempts: number;
  /** Heartbeat when nothing was sent for this long. */
  heartbeatMs: number;
  log(level: "info" | "warn" | "error", message: string): void;
  onState(state: LineState): void;
}

export const REFUSE_AFTER_NAKS = 26;
const VIA = "automation";
/** A refused address is logged at most this often: a host that keeps dialling must not flood the log. */
const REFUSAL_LOG_EVERY_MS = 60_000;

type SendResult = { kind: "ACK"; latencyMs: number } | { kind: "NAK" } | { kind: "none"; reason: string };

export class SurgardTransmitter {
  readonly link: SurgardLink;
  private chain: Promise<unknown> = Promise.resolve();
  private delivering = false;
  private stopped = false;
  private lineOk: boolean | undefined;
  private readonly pausing = new Pause();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private beating: Promise<boolean> | undefined;
  /** Per refused IP: when it was last logged and how many refusals since. */
  private readonly refusals = new Map<string, { loggedAt: number; since: number }>();
  lastSentAt = 0;

  constructor(private readonly opts: SurgardTransmitterOptions) {
    this.link = new SurgardLink({
      ...opts.link,
      // A newcomer takes a live line only if a heartbeat on it gets no answer within the ACK timeout
      // (surgard.md); a NAK is an answer too: the automation is there. One packet outstanding still holds.
      stillAnswering: async () => (await this.sendOnce(this.opts.heartbeat)).kind !== "none",
      onRefused: (remote, reason, kind) => this.refused(remote, reason, kind),
      onConnected: (remote, replaced) => {
        opts.log(
          "info",
          replaced
            ? `automation software connected from ${remote}; it takes the line from ${replaced}, which no longer answered`
            : `automation software connected from ${remote}`,
        );
        this.pausing.wake();
        // Prove the new line at once rather than at the next idle heartbeat.
        if (!this.delivering) void this.heartbeat();
      },
      onDisconnected: (remote) => {
        opts.log("warn", `automation software at ${remote} disconnected`);
        if (opts.link.role === "server") this.markFailing("no automation software connected", 0);
      },
    });
  }

  async start(): Promise<void> {
    if (this.opts.link.role === "server") {
      await this.link.listen();
      this.opts.log(
        "info",
        `listening on ${this.link.listening} for the automation software; accepted from: ${this.link.allowed}`,
      );
      this.markFailing(`waiting for the automation software to connect to port ${this.opts.link.port}`, 0);
    }
    const tick = Math.max(50, Math.min(this.opts.heartbeatMs / 5, 1000));
    this.heartbeatTimer = setInterval(() => {
      if (this.delivering || Date.now() - this.lastSentAt < this.opts.heartbeatMs) return;
      if (this.opts.link.role === "server" && !this.link.connected) return;
      void this.heartbeat();
    }, tick);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.pausing.wake();
    this.link.close();
  }

  /** Resolves with ACK or refusal; rejects only when stopped. */
  async deliver(packet: Buffer): Promise<PumpOutcome> {
    this.delivering = true;
    try {
      return await this.deliverUntilAnswered(packet);
    } finally {
      this.delivering = false;
    }
  }

  /** One heartbeat (joins one already going); true when ACKed. */
  heartbeat(): Promise<boolean> {
    this.beating ??= this.beat().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beat(): Promise<boolean> {
    const result = await this.sendOnce(this.opts.heartbeat);
    if (result.kind === "ACK") return true;
    const reason = result.kind === "NAK" ? "heartbeat NAKed" : `heartbeat not acknowledged: ${result.reason}`;
    if (!this.delivering) this.markFailing(reason, this.opts.heartbeatMs);
    return false;
  }

  private async deliverUntilAnswered(packet: Buffer): Promise<PumpOutcome> {
    let sends = 0;
    let naks = 0;
    for (let round = 0; !this.stopped; round++) {
      let reason = "";
      for (let attempt = 0; attempt < this.opts.attempts && !this.stopped; attempt++) {
        sends++;
        const result = await this.sendOnce(packet);
        if (result.kind === "ACK")
          return { kind: "delivered", via: VIA, address: this.address, latencyMs: result.latencyMs, sends };
        if (result.kind === "NAK") {
          naks++;
          reason = "automation software answered NAK";
        } else reason = result.reason;
        if (!this.link.connected && this.opts.link.role === "server") break; // resending into nothing
      }
      if (this.stopped) break;
      if (naks >= REFUSE_AFTER_NAKS && (await this.heartbeat())) {
        return {
          kind: "failed",
          via: VIA,
          address: this.address,
          reason:
            `the automation software NAKed this packet ${naks} times while it acknowledges heartbeats: ` +
            "it cannot take it (check the receiver and line numbers and the account format it expects)",
        };
      }
      await this.heartbeatsUntilAcked(round, reason, sends);
    }
    throw new Error("transmitter stopped");
  }

  // The line is failing: heartbeats only, with growing pauses, until one is ACKed.
  private async heartbeatsUntilAcked(round: number, reason: string, sends: number): Promise<void> {
    for (let beat = round; !this.stopped; beat++) {
      const retryInMs = backoffDelay(beat, { initialMs: 1000, maxMs: Math.max(1000, this.opts.heartbeatMs) });
      this.markFailing(reason, retryInMs);
      this.opts.log(
        "warn",
        `alarm not acknowledged after ${sends} sends (${reason}); heartbeat in ${Math.round(retryInMs / 1000)} s`,
      );
      await this.pausing.for(retryInMs);
      if (this.stopped) return;
      const result = await this.sendOnce(this.opts.heartbeat);
      if (result.kind === "ACK") return;
      reason = result.kind === "NAK" ? "heartbeat NAKed" : result.reason;
    }
  }

  // One packet outstanding: a heartbeat never overlaps an alarm.
  private sendOnce(packet: Buffer): Promise<SendResult> {
    const run = this.chain.then(async (): Promise<SendResult> => {
      if (this.stopped) return { kind: "none", reason: "line closed" };
      const started = performance.now();
      this.lastSentAt = Date.now();
      try {
        const answer = await this.link.exchange(packet, this.opts.ackTimeoutMs);
        if (answer === "NAK") return { kind: "NAK" };
        this.markOk();
        return { kind: "ACK", latencyMs: performance.now() - started };
      } catch (err) {
        return { kind: "none", reason: err instanceof Error ? err.message : String(err) };
      }
    });
    this.chain = run;
    return run;
  }

  private refused(remote: string, reason: string, kind: "not-allowed" | "line-held"): void {
    const ip = remote.slice(0, remote.lastIndexOf(":"));
    // Nobody holds the line and someone tried: the status shows who, so a missing allow-list entry is seen.
    if (kind === "not-allowed" && !this.link.connected)
      this.markFailing(`connection from ${ip} refused: not an allowed automation address`, 0);
    const now = Date.now();
    const seen = this.refusals.get(ip);
    if (seen && now - seen.loggedAt < REFUSAL_LOG_EVERY_MS) {
      seen.since++;
      return;
    }
    if (this.refusals.size >= 1000) this.refusals.clear();
    const more = seen?.since ? ` (${seen.since} more from ${ip} since the last report)` : "";
    this.refusals.set(ip, { loggedAt: now, since: 0 });
    this.opts.log("warn", `connection from ${remote} refused: ${reason}${more}`);
  }

  private markOk(): void {
    if (this.lineOk === false) this.opts.log("info", `line to the automation software at ${this.address} is up`);
    this.lineOk = true;
    this.opts.onState({ kind: "ok", via: VIA, lastAckAt: Date.now() });
  }

  private markFailing(reason: string, retryInMs: number): void {
    this.lineOk = false;
    this.opts.onState({ kind: "failing", reason, retryInMs });
  }

  private get address(): string {
    return this.link.remote ?? this.link.where;
  }
}
