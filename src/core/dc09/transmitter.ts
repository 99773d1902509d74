// Delivers one DC-09 message at a time: retries on the active receiver, fails over to the
// backup, returns to the primary once it answers a link test again; corrects its clock from
// a NAK once per message. It never gives up on a message that got no answer: the caller's
// outbox keeps it, and this keeps trying with growing pauses until stopped.

import { type BackoffPolicy, backoffDelay } from "../backoff";
import { Pause } from "../pause";
import { type Dc09Message, type Dc09Response, encodeDc09 } from "./frame";
import { Dc09Link, type LinkTransport, type ReceiverAddress } from "./link";

export type ReceiverRole = "primary" | "backup";

export interface TransmitterOptions {
  primary: ReceiverAddress;
  backup?: ReceiverAddress;
  transport: LinkTransport;
  key?: Buffer;
  receiver?: string;
  prefix: string;
  ackTimeoutMs: number;
  /** Sends per receiver before failing over (1 = no retry). */
  attemptsPerReceiver: number;
  backoff: BackoffPolicy;
  log(level: "info" | "warn" | "error", message: string): void;
  onState(state: TransmitterState): void;
}

export type TransmitterState =
  | { kind: "ok"; via: ReceiverRole; lastAckAt: number }
  | { kind: "failing"; reason: string; retryInMs: number };

export type DeliveryResult =
  | { kind: "ack"; via: ReceiverRole; address: string; latencyMs: number; sends: number }
  | { kind: "duh"; via: ReceiverRole; address: string; reason: string };

export type MessageBody = Omit<Dc09Message, "seq" | "receiver" | "prefix" | "timestamp">;

export class Dc09Transmitter {
  private readonly links: Record<ReceiverRole, Dc09Link | undefined>;
  private active: ReceiverRole = "primary";
  private clockOffsetMs = 0;
  private stopped = false;
  private readonly pausing = new Pause();
  lastSentAt = 0;

  constructor(private readonly opts: TransmitterOptions) {
    this.links = {
      primary: new Dc09Link(opts.primary, opts.transport, opts.key),
      backup: opts.backup ? new Dc09Link(opts.backup, opts.transport, opts.key) : undefined,
    };
  }

  get activeReceiver(): ReceiverRole {
    return this.active;
  }

  /** Resolves with ACK or DUH; rejects only when stopped. */
  async deliver(body: MessageBody, seq: number): Promise<DeliveryResult> {
    let sends = 0;
    for (let round = 0; !this.stopped; round++) {
      const order: ReceiverRole[] = this.active === "primary" ? ["primary", "backup"] : ["backup", "primary"];
      let lastReason = "";
      for (const role of order) {
        const link = this.links[role];
        if (!link) continue;
        for (let attempt = 0; attempt < this.opts.attemptsPerReceiver && !this.stopped; attempt++) {
          sends++;
          const outcome = await this.sendOnce(link, body, seq);
          if (outcome.kind === "answer") {
            const r = outcome.response;
            const address = `${link.address.host}:${link.address.port}`;
            if (r.kind === "DUH")
              return { kind: "duh", via: role, address, reason: "receiver answered DUH (unknown account or event?)" };
            if (r.kind === "ACK") {
              if (role !== this.active) this.opts.log("warn", `switched to the ${role} receiver ${address}`);
              this.active = role;
              this.opts.onState({ kind: "ok", via: role, lastAckAt: Date.now() });
              return { kind: "ack", via: role, address, latencyMs: outcome.latencyMs, sends };
            }
            lastReason = `${role} answered ${r.kind}`;
          } else lastReason = `${role} ${link.address.host}:${link.address.port}: ${outcome.reason}`;
        }
      }
      if (this.stopped) break;
      const retryInMs = backoffDelay(round, this.opts.backoff);
      this.opts.onState({ kind: "failing", reason: lastReason, retryInMs });
      this.opts.log(
        "warn",
        `alarm seq ${seq} not acknowledged (${lastReason}); trying again in ${Math.round(retryInMs / 1000)} s`,
      );
      await this.pausing.for(retryInMs);
    }
    throw new Error("transmitter stopped");
  }

  /**
   * Link test (NULL). While on the backup, also asks the primary, and goes back to it when it
   * answers: the primary is where the centre expects the alarms.
   */
  async supervise(seq: number, account: string): Promise<boolean> {
    const role = this.active === "backup" && this.links.primary ? "primary" : this.active;
    const link = this.links[role];
    if (!link) return false;
    const outcome = await this.sendOnce(link, { id: "NULL", account }, seq);
    const ok = outcome.kind === "answer" && outcome.response.kind === "ACK";
    if (ok) {
      if (role !== this.active) this.opts.log("info", `primary receiver answers again: switching back`);
      this.active = role;
      this.opts.onState({ kind: "ok", via: role, lastAckAt: Date.now() });
    }
    return ok;
  }

  stop(): void {
    this.stopped = true;
    this.pausing.wake();
    this.links.primary?.close();
    this.links.backup?.close();
  }

  private async sendOnce(
    link: Dc09Link,
    body: MessageBody,
    seq: number,
  ): Promise<{ kind: "answer"; response: Dc09Response; latencyMs: number } | { kind: "none"; reason: string }> {
    // A NAK says our clock is off: take the receiver's time and resend once, same seq.
    for (let resync = 0; resync < 2; resync++) {
      const frame = encodeDc09(
        {
          ...body,
          seq,
          receiver: this.opts.receiver,
          prefix: this.opts.prefix,
          timestamp: new Date(Date.now() + this.clockOffsetMs),
        },
        { key: this.opts.key },
      );
      const started = performance.now();
      this.lastSentAt = Date.now();
      try {
        const response = await link.exchange(frame, seq, this.opts.ackTimeoutMs);
        if (response.kind === "NAK" && response.timestamp && resync === 0) {
          this.clockOffsetMs = response.timestamp.getTime() - Date.now();
          this.opts.log(
            "warn",
            `receiver NAKed the time: correcting the clock by ${Math.round(this.clockOffsetMs / 1000)} s`,
          );
          continue;
        }
        return { kind: "answer", response, latencyMs: performance.now() - started };
      } catch (err) {
        return { kind: "none", reason: err instanceof Error ? err.message : String(err) };
      }
    }
    return { kind: "none", reason: "NAKed twice" };
  }
}
