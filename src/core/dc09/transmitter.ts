// Delivers one DC-09 message at a time: retries on the active receiver, fails over to the
// backup, returns to the primary once it answers a link test again; corrects its clock from
// a NAK about time once per message. It never gives up on a message that got no answer: the
// caller's outbox keeps it, and this keeps trying with growing pauses until stopped. A message
// a receiver answers with refusals gets plainer forms, then comes back "refused" with the answer,
// so that one alarm a receiver cannot take does not hold back the others.

import { type BackoffPolicy, backoffDelay } from "../backoff";
import { Pause } from "../pause";
import { swapSiaModifiers } from "./event-data";
import { type Dc09Message, type Dc09Response, encodeDc09 } from "./frame";
import { Dc09Link, Dc09LinkError, type LinkTransport, type ReceiverAddress } from "./link";

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
  | {
      kind: "ack";
      via: ReceiverRole;
      address: string;
      latencyMs: number;
      sends: number;
      /** Set when the receiver took only a plainer form than configured: which one. */
      fallback?: string;
    }
  | {
      kind: "refused";
      via: ReceiverRole;
      address: string;
      reason: string;
      /** The receiver's last answer as it arrived (frame text without LF/CR), for the user to see. */
      answer: string;
      sends: number;
    };

export type MessageBody = Omit<Dc09Message, "seq" | "receiver" | "prefix" | "timestamp">;

/** One way to write the same event: as configured, or plainer (dc09.md "Dialects observed..."). */
interface FrameForm {
  body: MessageBody;
  dropExtended: boolean;
  swapModifiers: boolean;
  label: string;
}

type SendOutcome =
  | { kind: "ack"; latencyMs: number }
  | { kind: "refused"; answer: string; reason: string; final: boolean }
  | { kind: "none"; reason: string };

export interface SuperviseResult {
  ok: boolean;
  /** The receiver's answer in words, e.g. "ACK" or "NAK (its time agrees with ours...)". */
  detail: string;
}

/**
 * A NAK's time within this of the time we sent is not a clock problem (timestamps have 1 s resolution, plus
 * the round trip): correcting the clock cannot help, so the NAK refuses the message itself.
 */
const CLOCK_AGREES_MS = 2000;

/** The forms of one event, plainest last: no extended blocks, `ri`/`id` in the other order, both. */
function formsOf(body: MessageBody): FrameForm[] {
  const swapped = body.id === "SIA-DCS" && body.data ? swapSiaModifiers(body.data) : undefined;
  const plain = { ...body, extended: [] };
  const forms: FrameForm[] = [{ body, dropExtended: false, swapModifiers: false, label: "as configured" }];
  if (swapped)
    forms.push({
      body: { ...body, data: swapped },
      dropExtended: false,
      swapModifiers: true,
      label: "with the ri/id modifiers in the other order",
    });
  if ((body.extended?.length ?? 0) > 0) {
    forms.push({ body: plain, dropExtended: true, swapModifiers: false, label: "without extended blocks" });
    if (swapped)
      forms.push({
        body: { ...plain, data: swapped },
        dropExtended: true,
        swapModifiers: true,
        label: "without extended blocks, ri/id modifiers in the other order",
      });
  }
  return forms;
}

/** The receiver's answer for people: from its id on (`"NAK"0000R0L0A0[]_...`), without CRC and length. */
function answerText(raw: string): string {
  return /^[0-9A-Fa-f]{4}0[0-9A-Fa-f]{3}"/.test(raw) ? raw.slice(8) : raw;
}

export class Dc09Transmitter {
  private readonly links: Record<ReceiverRole, Dc09Link | undefined>;
  private active: ReceiverRole = "primary";
  private clockOffsetMs = 0;
  private stopped = false;
  private readonly pausing = new Pause();
  /** Per receiver and message id, the form it last accepted after refusing the configured one. */
  private readonly accepts = new Map<string, { dropExtended: boolean; swapModifiers: boolean }>();
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

  /** What each receiver was found to accept, e.g. { "primary ADM-CID": "without extended blocks" }. */
  get learnedForms(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, f] of this.accepts) {
      const parts = [f.dropExtended ? "no extended blocks" : "", f.swapModifiers ? "ri/id in the other order" : ""];
      out[key] = parts.filter(Boolean).join(", ") || "as configured";
    }
    return out;
  }

  /**
   * Resolves with ACK, or with "refused" once a receiver answered every form of the event with a refusal (NAK
   * not about time, DUH, an answer that cannot be read) and no receiver took it: the alarm behind it can go.
   * Silence is retried with growing pauses until stopped (the rejection), as the link may come back.
   */
  async deliver(body: MessageBody, seq: number): Promise<DeliveryResult> {
    const counter = { sends: 0 };
    for (let round = 0; !this.stopped; round++) {
      const order: ReceiverRole[] = this.active === "primary" ? ["primary", "backup"] : ["backup", "primary"];
      let lastReason = "";
      let refusal: Extract<DeliveryResult, { kind: "refused" }> | undefined;
      for (const role of order) {
        const link = this.links[role];
        if (!link || this.stopped) continue;
        const address = `${link.address.host}:${link.address.port}`;
        const outcome = await this.tryReceiver(role, link, body, seq, counter);
        if (outcome.kind === "ack") {
          if (role !== this.active) this.opts.log("warn", `switched to the ${role} receiver ${address}`);
          this.active = role;
          this.opts.onState({ kind: "ok", via: role, lastAckAt: Date.now() });
          return {
            kind: "ack",
            via: role,
            address,
            latencyMs: outcome.latencyMs,
            sends: counter.sends,
            ...outcome.form,
          };
        }
        if (outcome.kind === "refused") {
          refusal ??= { kind: "refused", via: role, address, reason: outcome.reason, answer: outcome.answer, sends: 0 };
          lastReason = `${role} refused it`;
        } else lastReason = `${role} ${address}: ${outcome.reason}`;
      }
      if (this.stopped) break;
      if (refusal) {
        this.opts.log("error", `alarm seq ${seq} refused by the ${refusal.via} receiver: ${refusal.reason}`);
        return { ...refusal, sends: counter.sends };
      }
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
   * One receiver: the form it is known to accept first, up to attemptsPerReceiver sends while it is silent or
   * NAKs (a NAK asks for a resend); after refusals the plainer forms, one send each.
   */
  private async tryReceiver(
    role: ReceiverRole,
    link: Dc09Link,
    body: MessageBody,
    seq: number,
    counter: { sends: number },
  ): Promise<
    | { kind: "ack"; latencyMs: number; form: { fallback?: string } }
    | { kind: "refused"; reason: string; answer: string }
    | { kind: "none"; reason: string }
  > {
    const key = `${role} ${body.id}`;
    const known = this.accepts.get(key);
    const all = formsOf(body);
    const preferred =
      (known &&
        (all.find((f) => f.dropExtended === known.dropExtended && f.swapModifiers === known.swapModifiers) ??
          all.find((f) => f.dropExtended === known.dropExtended))) ||
      all[0]!;
    const forms = [preferred, ...all.filter((f) => f !== preferred)];
    const refusals: string[] = [];
    let lastAnswer = "";
    let silence = "";
    for (let i = 0; i < forms.length && !this.stopped; i++) {
      const form = forms[i]!;
      if (i > 0 && refusals.length === 0) break; // silence, not refusal: fail over, not fall back
      if (i > 0) this.opts.log("warn", `alarm seq ${seq}: ${role} refused it; trying it ${form.label}`);
      const tries = i === 0 ? this.opts.attemptsPerReceiver : 1;
      for (let attempt = 0; attempt < tries && !this.stopped; attempt++) {
        counter.sends++;
        const outcome = await this.sendOnce(link, form.body, seq);
        if (outcome.kind === "ack") {
          const changed =
            form.dropExtended !== (known?.dropExtended ?? false) ||
            form.swapModifiers !== (known?.swapModifiers ?? false);
          if (changed) {
            this.accepts.set(key, { dropExtended: form.dropExtended, swapModifiers: form.swapModifiers });
            this.opts.log("warn", `the ${role} receiver accepts ${body.id} ${form.label}: sending it so from now on`);
          }
          const configured = form === all[0];
          return { kind: "ack", latencyMs: outcome.latencyMs, form: configured ? {} : { fallback: form.label } };
        }
        if (outcome.kind === "none") {
          silence = outcome.reason;
          continue;
        }
        refusals.push(`${form.label}: ${outcome.reason}`);
        lastAnswer = outcome.answer;
        if (outcome.final) break;
      }
    }
    if (refusals.length === 0) return { kind: "none", reason: silence || "no answer" };
    return { kind: "refused", reason: refusals.join("; "), answer: lastAnswer };
  }

  /**
   * Link test (NULL). While on the backup, also asks the primary, and goes back to it when it
   * answers: the primary is where the centre expects the alarms.
   */
  async supervise(seq: number, account: string): Promise<SuperviseResult> {
    const role = this.active === "backup" && this.links.primary ? "primary" : this.active;
    const link = this.links[role];
    if (!link) return { ok: false, detail: "no receiver" };
    const outcome = await this.sendOnce(link, { id: "NULL", account }, seq);
    if (outcome.kind === "ack") {
      if (role !== this.active) this.opts.log("info", `primary receiver answers again: switching back`);
      this.active = role;
      this.opts.onState({ kind: "ok", via: role, lastAckAt: Date.now() });
      return { ok: true, detail: "ACK" };
    }
    return { ok: false, detail: outcome.reason };
  }

  stop(): void {
    this.stopped = true;
    this.pausing.wake();
    this.links.primary?.close();
    this.links.backup?.close();
  }

  private async sendOnce(link: Dc09Link, body: MessageBody, seq: number): Promise<SendOutcome> {
    // A NAK whose time differs from ours says our clock is off: take the receiver's time and resend once,
    // same seq. A NAK whose time agrees (or that has none) refuses the message: a clock fix cannot help.
    for (let resync = 0; resync < 2; resync++) {
      const timestamp = new Date(Date.now() + this.clockOffsetMs);
      const frame = encodeDc09(
        { ...body, seq, receiver: this.opts.receiver, prefix: this.opts.prefix, timestamp },
        { key: this.opts.key },
      );
      const started = performance.now();
      this.lastSentAt = Date.now();
      let response: Dc09Response;
      try {
        response = await link.exchange(frame, seq, this.opts.ackTimeoutMs);
      } catch (err) {
        if (err instanceof Dc09LinkError && err.unreadable !== undefined)
          return {
            kind: "refused",
            answer: err.unreadable,
            reason: `answer cannot be read (${err.unreadable})`,
            final: false,
          };
        return { kind: "none", reason: err instanceof Error ? err.message : String(err) };
      }
      if (response.kind === "ACK") return { kind: "ack", latencyMs: performance.now() - started };
      const answer = answerText(response.raw);
      if (response.kind === "NAK") {
        if (!response.timestamp) return { kind: "refused", answer, reason: "NAK without a time", final: false };
        const sentAt = Math.floor(timestamp.getTime() / 1000) * 1000;
        const skewMs = response.timestamp.getTime() - sentAt;
        if (Math.abs(skewMs) <= CLOCK_AGREES_MS) {
          const reason =
            resync === 0
              ? "NAK, and its time agrees with ours: the receiver refuses the message, not the time"
              : "NAK again with the receiver's own time: the receiver refuses the message, not the time";
          return { kind: "refused", answer, reason, final: false };
        }
        if (resync === 0) {
          this.clockOffsetMs += skewMs;
          this.opts.log("warn", `receiver NAKed the time: correcting the clock by ${Math.round(skewMs / 1000)} s`);
          continue;
        }
        return { kind: "refused", answer, reason: "NAK twice, also after the clock correction", final: false };
      }
      if (response.kind === "DUH") {
        // DC-09: DUH = the receiver cannot process this message; the same bytes again would get the same.
        return { kind: "refused", answer, reason: "DUH (the receiver cannot process this message)", final: true };
      }
      return { kind: "refused", answer, reason: `answered ${response.kind}, not ACK`, final: true };
    }
    return { kind: "none", reason: "unreachable" };
  }
}
