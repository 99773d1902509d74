// SIA DC-09 as a line-driver channel: frames from alarms, the transmitter with failover, and
// NULL link tests when idle. The seq follows the outbox id, so it is stable across restarts and
// retransmissions (a receiver sees a repeat, not a new alarm).
import type { AlarmEvent } from "../datamap";
import { admCidData, Dc09DataError, type Dc09Id, formatDc09Time, type SiaModifierOrder, siaDcsData } from "../dc09";
import { Dc09Transmitter, type DeliveryResult, type MessageBody, type TransmitterOptions } from "../dc09/transmitter";
import { type AlarmChannel, AlarmNotExpressibleError, type ChannelContext, type LineState } from "./channel";
import type { PumpOutcome } from "./outbox-pump";

export interface Dc09ChannelOptions extends Omit<TransmitterOptions, "onState"> {
  format: "auto" | "SIA" | "CID";
  sendText: boolean;
  sendTime: boolean;
  sendLink: boolean;
  /** Order of the SIA `ri` (area) and `id` (user) modifiers; the transmitter falls back to the other one. */
  modifierOrder?: SiaModifierOrder;
  /** NULL link test after this long without traffic; 0 = none. */
  supervisionMs: number;
  /** "" = the account of the last alarm the receiver ACKed (one it knows), "0000" before there is one. */
  supervisionAccount: string;
  onState(state: LineState): void;
  /** The link test's answer changed (see linkTestProblem). */
  onLinkTest?(): void;
}

export class Dc09Channel implements AlarmChannel<MessageBody> {
  readonly protocol = "dc09";
  readonly transmitter: Dc09Transmitter;
  private supervisor: NodeJS.Timeout | undefined;
  /** The last link-test answer logged: a receiver that refuses every NULL is said once, not every minute. */
  private lastSupervision = "ACK";
  private meta: ChannelContext["meta"] | undefined;
  /** Account of the last ACKed alarm; kept on disk at most once a minute (it is only a link-test default). */
  private lastAccount: string | undefined;
  private lastAccountSavedAt = 0;

  constructor(private readonly opts: Dc09ChannelOptions) {
    this.transmitter = new Dc09Transmitter(opts);
  }

  prepare(alarm: AlarmEvent): MessageBody {
    try {
      return frameBody(alarm, this.opts);
    } catch (err) {
      if (err instanceof Dc09DataError) throw new AlarmNotExpressibleError(err.message);
      throw err;
    }
  }

  deliver(body: MessageBody, outboxId: number): Promise<PumpOutcome> {
    return this.transmitter.deliver(body, dc09Seq(outboxId)).then((result) => {
      if (result.kind === "ack" && !this.opts.supervisionAccount) this.rememberAccount(body.account);
      return toOutcome(result);
    });
  }

  /** Why the last link test was not ACKed (e.g. a receiver that refuses every NULL); undefined after an ACK. */
  get linkTestProblem(): string | undefined {
    return this.lastSupervision === "ACK" ? undefined : this.lastSupervision;
  }

  /** The account NULL link tests carry (see Dc09ChannelOptions.supervisionAccount). */
  get linkTestAccount(): string {
    return this.opts.supervisionAccount || this.lastAccount || this.meta?.get(LAST_ACCOUNT) || "0000";
  }

  private rememberAccount(account: string): void {
    this.lastAccount = account;
    if (!this.meta || this.meta.get(LAST_ACCOUNT) === account || Date.now() - this.lastAccountSavedAt < 60_000) return;
    this.lastAccountSavedAt = Date.now();
    this.meta.set(LAST_ACCOUNT, account).catch(() => undefined);
  }

  async start(context: ChannelContext): Promise<void> {
    this.meta = context.meta;
    const { supervisionMs } = this.opts;
    if (supervisionMs <= 0) return;
    this.supervisor = setInterval(
      () => {
        if (Date.now() - this.transmitter.lastSentAt < supervisionMs || context.busy()) return;
        const seq = Number(context.meta.get("nullSeq") ?? "0") + 1;
        context.meta
          .set("nullSeq", String(seq % 9999))
          .catch((err: unknown) => this.opts.log("warn", `outbox: ${String(err)}`));
        const account = this.linkTestAccount;
        void this.transmitter.supervise(((seq - 1) % 9999) + 1, account).then((result) => {
          if (result.detail === this.lastSupervision) return;
          this.lastSupervision = result.detail;
          this.opts.onLinkTest?.();
          if (result.ok) this.opts.log("info", "link test (NULL) acknowledged again");
          else this.opts.log("warn", `link test (NULL, account ${account}) not acknowledged: ${result.detail}`);
        });
      },
      Math.min(supervisionMs, 10_000),
    );
  }

  stop(): void {
    clearInterval(this.supervisor);
    this.transmitter.stop();
  }
}

const LAST_ACCOUNT = "lastAckedAccount";

export function dc09Seq(outboxId: number): number {
  return ((outboxId - 1) % 9999) + 1;
}

/**
 * The longest verification link sent in `[V...]`: receivers read at most 256 characters there (public
 * receiver code, issue #17); a longer one is left out rather than cut into a link to nothing.
 */
export const MAX_VERIFICATION_URL = 256;

/** The frame of an alarm as this channel is set up (exported for the tests of the frame's content). */
export function frameBody(
  alarm: AlarmEvent,
  opts: Pick<Dc09ChannelOptions, "format" | "sendText" | "sendTime" | "sendLink" | "modifierOrder">,
): MessageBody {
  const format = opts.format === "SIA" || opts.format === "CID" ? opts.format : alarm.eventFormat;
  const forDc09 = {
    ...alarm,
    eventFormat: format,
    eventCode: format === "CID" ? (alarm.cidEvent ?? alarm.eventCode) : (alarm.siaCode ?? alarm.eventCode),
  };
  const id: Dc09Id = format === "CID" ? "ADM-CID" : "SIA-DCS";
  const data = format === "CID" ? admCidData(forDc09) : siaDcsData(forDc09, opts.modifierOrder);
  const extended: { kind: string; value: string }[] = [];
  if (opts.sendText && alarm.text) extended.push({ kind: "I", value: asciiOnly(alarm.text).slice(0, 200) });
  if (opts.sendTime && alarm.occurredAt)
    extended.push({ kind: "H", value: formatDc09Time(new Date(alarm.occurredAt)) });
  const link = (alarm as { verificationUrl?: unknown }).verificationUrl;
  if (
    opts.sendLink &&
    typeof link === "string" &&
    link.length <= MAX_VERIFICATION_URL &&
    /^https?:\/\/[\x21-\x5a\x5c\x5e-\x7e]+$/.test(link)
  )
    extended.push({ kind: "V", value: link });
  return { id, account: alarm.account, data, extended };
}

/** DC-09 frames carry ASCII only: transliterate accents, drop the rest and the frame brackets. */
function asciiOnly(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^\x20-\x7e]|[[\]]/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

function toOutcome(result: DeliveryResult): PumpOutcome {
  if (result.kind === "ack") {
    const { via, address, latencyMs, sends, fallback } = result;
    return { kind: "delivered", via, address, latencyMs, sends, ...(fallback ? { fallback } : {}) };
  }
  const { via, address, reason, answer } = result;
  return { kind: "failed", via, address, reason, answer };
}
