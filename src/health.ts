// What the adapters share for the gateway's picture of itself: the health registry (live panel, metrics,
// self-supervision) and the alarm trace on disk, one of each per Node-RED process.
import { join } from "node:path";
import type { NodeAPI } from "node-red";
import { gatewayHealth } from "./core/health/registry";
import { type TraceEvent, TraceLog } from "./core/health/trace-log";
import type { EmailRef } from "./core/watch/watcher";
import { settlementOf } from "./settle";

export { gatewayHealth };

/** settings.js `alarmGateway: { traceDays, traceMB, metricsOnHttpNode }`; all optional. */
export interface AlarmGatewaySettings {
  traceDays?: number;
  traceMB?: number;
  /** Also serve the metrics on Node-RED's HTTP server (httpNodeAuth applies): true for /metrics, or a path. */
  metricsOnHttpNode?: boolean | string;
}

export function gatewaySettings(RED: NodeAPI): AlarmGatewaySettings {
  return ((RED.settings as unknown as { alarmGateway?: AlarmGatewaySettings }).alarmGateway ??
    {}) as AlarmGatewaySettings;
}

const traces = new Map<string, TraceLog>();
/** Each node module's RED to its trace: found once, not per stage (a burst records thousands). */
const byRuntime = new WeakMap<NodeAPI, TraceLog>();

/** The process's alarm trace, under `<userDir>/alarm-gateway/trace/` (7 days, 100 MB unless set). */
export function traceLogOf(RED: NodeAPI): TraceLog {
  const known = byRuntime.get(RED);
  if (known) return known;
  const dir = join(RED.settings.userDir ?? process.cwd(), "alarm-gateway", "trace");
  let log = traces.get(dir);
  if (!log) {
    const s = gatewaySettings(RED);
    log = new TraceLog({
      dir,
      keepDays: positive(s.traceDays, 7),
      maxBytes: positive(s.traceMB, 100) * 1024 * 1024,
      log: (message) => RED.log.warn(message),
    });
    traces.set(dir, log);
  }
  byRuntime.set(RED, log);
  return log;
}

/** An email's key in the trace: its Message-ID, else the connector's identity of it. */
export function traceKey(connector: string, ref: Pick<EmailRef, "messageId" | "uidValidity" | "uid">): string {
  return ref.messageId || `${connector}/${ref.uidValidity}/${ref.uid}`;
}

/**
 * The trace key of a message: its email as its connector recorded it (msg.emailRef), else the Message-ID the
 * message carries (an email or alarm from elsewhere); undefined when it has neither.
 */
export function traceKeyOf(msg: object, messageId: string | null | undefined): string | undefined {
  const ref = settlementOf(msg)?.ref;
  return ref ? traceKey(ref.connector, ref) : messageId || undefined;
}

export function trace(RED: NodeAPI, event: Omit<TraceEvent, "at"> & { at?: number }): void {
  traceLogOf(RED).record({ at: Date.now(), ...event });
}

function positive(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
