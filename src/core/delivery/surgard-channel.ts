// Sur-Gard automation output as a line-driver channel: the gateway plays the receiver that
// Manitou, MASterMind, Patriot... already have a line driver for. Packets are built when the
// alarm is accepted, so what was checked is exactly what is sent, also after a restart.
import type { AlarmEvent } from "../datamap";
import type { AllowList } from "../surgard/allow-list";
import {
  type ContactIdAccountDigits,
  checkSurgardLine,
  heartbeatPacket,
  SurgardDataError,
  type SurgardLine,
  surgardPacket,
} from "../surgard/packet";
import type { SurgardRole } from "../surgard/surgard-link";
import { SurgardTransmitter } from "../surgard/surgard-transmitter";
import { type AlarmChannel, AlarmNotExpressibleError, type LineState } from "./channel";
import type { PumpOutcome } from "./outbox-pump";

export interface SurgardChannelOptions {
  role: SurgardRole;
  host: string;
  port: number;
  /** server role: who may take the line (default loopback only). */
  allow?: AllowList;
  line: SurgardLine;
  format: "auto" | "SIA" | "CID";
  accountDigits: ContactIdAccountDigits;
  ackTimeoutMs: number;
  attempts: number;
  heartbeatMs: number;
  log(level: "info" | "warn" | "error", message: string): void;
  onState(state: LineState): void;
}

/** The packet as latin1 text: plain JSON in the outbox, byte-exact on the wire. */
export type SurgardPrepared = string;

export class SurgardChannel implements AlarmChannel<SurgardPrepared> {
  readonly protocol = "surgard";
  readonly transmitter: SurgardTransmitter;

  constructor(private readonly opts: SurgardChannelOptions) {
    checkSurgardLine(opts.line);
    this.transmitter = new SurgardTransmitter({
      link: {
        role: opts.role,
        host: opts.host,
        port: opts.port,
        allow: opts.allow,
      },
      heartbeat: heartbeatPacket(opts.line),
      ackTimeoutMs: opts.ackTimeoutMs,
      attempts: opts.attempts,
      heartbeatMs: opts.heartbeatMs,
      log: opts.log,
      onState: opts.onState,
    });
  }

  prepare(alarm: AlarmEvent): SurgardPrepared {
    const format = this.opts.format === "SIA" || this.opts.format === "CID" ? this.opts.format : alarm.eventFormat;
    const forSurgard = {
      ...alarm,
      eventFormat: format,
      eventCode: format === "CID" ? (alarm.cidEvent ?? alarm.eventCode) : (alarm.siaCode ?? alarm.eventCode),
    };
    try {
      return surgardPacket(forSurgard, this.opts.line, this.opts.accountDigits).toString("latin1");
    } catch (err) {
      if (err instanceof SurgardDataError) throw new AlarmNotExpressibleError(err.message);
      throw err;
    }
  }

  deliver(packet: SurgardPrepared): Promise<PumpOutcome> {
    return this.transmitter.deliver(Buffer.from(packet, "latin1"));
  }

  start(): Promise<void> {
    return this.transmitter.start();
  }

  stop(): void {
    this.transmitter.stop();
  }
}
