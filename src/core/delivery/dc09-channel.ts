// SIA DC-09 as a line-driver channel: frames from alarms, the transmitter with failover, and
// NULL link tests when idle. The seq follows the outbox id, so it is stable across restarts and
// retransmissions (a receiver sees a repeat, not a new alarm).
import type { AlarmEvent } from "../datamap";
import { admCidData, Dc09DataError, type Dc09Id, formatDc09Time, siaDcsData } from "../dc09";
import { Dc09Transmitter, type DeliveryResult, type MessageBody, type TransmitterOptions } from "../dc09/transmitter";
import { type AlarmChannel, AlarmNotExpressibleError, type ChannelContext, type LineState } from "./channel";
import type { PumpOutcome } from "./outbox-pump";

export interface Dc09ChannelOptions extends Omit<TransmitterOptions, "onState"> {
  format: "auto" | "SIA" | "CID";
  sendText: boolean;
  sendTime: boolean;
  sendLink: boolean;
  /** NULL link test after this long without traffic; 0 = none. */
  supervisionMs: number;
  supervisionAccount: string;
  onState(state: LineState): void;
}

export class Dc09Channel implements AlarmChannel<MessageBody> {
  readonly protocol = "dc09";
  readonly transmitter: Dc09Transmitter;
  private supervisor: NodeJS.Timeout | undefined;

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
    return this.transmitter.deliver(body, dc09Seq(outboxId)).then(toOutcome);
  }

  async start(context: ChannelContext): Promise<void> {
    const { supervisionMs } = this.opts;
    if (supervisionMs <= 0) return;
    this.supervisor = setInterval(
      () => {
        if (Date.now() - this.transmitter.lastSentAt < supervisionMs || context.busy()) return;
        const seq = Number(context.meta.get("nullSeq") ?? "0") + 1;
        context.meta
          .set("nullSeq", String(seq % 9999))
          .catch((err: unknown) => this.opts.log("warn", `outbox: ${String(err)}`));
        void this.transmitter.supervise(((seq - 1) % 9999) + 1, this.opts.supervisionAccount).then((ok) => {
          if (!ok) this.opts.log("warn", "link test (NULL) not acknowledged");
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

export function dc09Seq(outboxId: number): number {
  return ((outboxId - 1) % 9999) + 1;
}

function frameBody(alarm: AlarmEvent, opts: Dc09ChannelOptions): MessageBody {
  const format = opts.format === "SIA" || opts.format === "CID" ? opts.format : alarm.eventFormat;
  const forDc09 = {
    ...alarm,
    eventFormat: format,
    eventCode: format === "CID" ? (alarm.cidEvent ?? alarm.eventCode) : (alarm.siaCode ?? alarm.eventCode),
  };
  const id: Dc09Id = format === "CID" ? "ADM-CID" : "SIA-DCS";
  const data = format === "CID" ? admCidData(forDc09) : siaDcsData(forDc09);
  const extended: { kind: string; value: string }[] = [];
  if (opts.sendText && alarm.text) extended.push({ kind: "I", value: asciiOnly(alarm.text).slice(0, 200) });
  if (opts.sendTime && alarm.occurredAt)
    extended.push({ kind: "H", value: formatDc09Time(new Date(alarm.occurredAt)) });
  const link = (alarm as { verificationUrl?: unknown }).verificationUrl;
  if (opts.sendLink && typeof link === "string" && /^https?:\/\/[\x21-\x7e]+$/.test(link))
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
  return result.kind === "ack"
    ? { kind: "delivered", via: result.via, address: result.address, latencyMs: result.latencyMs, sends: result.sends }
    : { kind: "failed", via: result.via, address: result.address, reason: result.reason };
}
