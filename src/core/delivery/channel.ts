// What the line-driver needs from a protocol (SIA DC-09, Sur-Gard): turn an alarm into what the
// outbox keeps, deliver it until acknowledged or refused, keep the line supervised. The outbox,
// the pump, settlement and the node's status are shared; only this part differs.
import type { AlarmEvent } from "../datamap";
import type { PumpOutcome } from "./outbox-pump";

export type LineState =
  | { kind: "ok"; via: string; lastAckAt: number }
  | { kind: "failing"; reason: string; retryInMs: number };

/** The alarm cannot be expressed in the chosen protocol; the message says which field and why. */
export class AlarmNotExpressibleError extends Error {
  override readonly name = "AlarmNotExpressibleError";
}

/** Durable key/value next to the outbox (e.g. the NULL message sequence). */
export interface ChannelMeta {
  get(key: string): string | undefined;
  set(key: string, value: string): Promise<void>;
}

export interface ChannelContext {
  /** True while alarms wait in the outbox: supervision is not needed then. */
  busy(): boolean;
  meta: ChannelMeta;
}

export interface AlarmChannel<Prepared = unknown> {
  readonly protocol: "dc09" | "surgard";
  /** Throws AlarmNotExpressibleError when the alarm cannot be sent as it is (never truncated). */
  prepare(alarm: AlarmEvent): Prepared;
  /** Resolves with the outcome; rejects only when stopped. `outboxId` keeps sequence numbers stable. */
  deliver(prepared: Prepared, outboxId: number): Promise<PumpOutcome>;
  start(context: ChannelContext): Promise<void>;
  stop(): void;
}
