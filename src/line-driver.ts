// Node-RED adapter for the line-driver (SIA DC-09): an alarm is accepted once it is in the
// durable outbox, and only then is its email settled upstream; a pump delivers the outbox in
// order to the receiver and reports each outcome on the output.
import { join } from "node:path";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { AlarmEvent } from "./core/datamap";
import { admCidData, Dc09DataError, type Dc09Id, formatDc09Time, parseDc09Key, siaDcsData } from "./core/dc09";
import { Dc09Transmitter, type DeliveryResult, type MessageBody, type TransmitterState } from "./core/dc09/transmitter";
import { OutboxPump, type PumpOutcome } from "./core/delivery/outbox-pump";
import { Outbox } from "./core/outbox/outbox";
import { settleEmail } from "./settle";

interface LineDriverDef extends NodeDef {
  host: string;
  port: string | number;
  backupHost: string;
  backupPort: string | number;
  transport: "tcp" | "udp";
  receiver: string;
  prefix: string;
  format: "auto" | "SIA" | "CID";
  ackTimeout: string | number;
  attempts: string | number;
  supervision: string | number;
  supervisionAccount: string;
  sendText: boolean;
  sendTime: boolean;
  sendLink: boolean;
}

interface LineDriverCredentials {
  key?: string;
}

/** What the outbox keeps per alarm: the frame body, ready to send, and what the output reports. */
interface QueuedAlarm {
  body: MessageBody;
  alarm: AlarmEvent;
}

module.exports = (RED: NodeAPI) => {
  function LineDriver(this: Node<LineDriverCredentials>, def: LineDriverDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    let key: Buffer | undefined;
    try {
      key = node.credentials?.key ? parseDc09Key(node.credentials.key).key : undefined;
    } catch (err) {
      node.status({ fill: "red", shape: "ring", text: "AES key invalid" });
      node.error(`line-driver not started: ${String((err as Error).message)}`);
      return;
    }
    const port = Number(def.port);
    if (!def.host?.trim() || !(port > 0 && port < 65536)) {
      node.status({ fill: "red", shape: "ring", text: "receiver host/port missing" });
      node.error("line-driver not started: enter the receiver's host and port");
      return;
    }
    const backupPort = Number(def.backupPort);
    const transmitter = new Dc09Transmitter({
      primary: { host: def.host.trim(), port },
      backup: def.backupHost?.trim() && backupPort > 0 ? { host: def.backupHost.trim(), port: backupPort } : undefined,
      transport: def.transport === "udp" ? "udp" : "tcp",
      key,
      receiver: def.receiver?.trim() || undefined,
      prefix: def.prefix?.trim() || "0",
      ackTimeoutMs: positive(def.ackTimeout, 5) * 1000,
      attemptsPerReceiver: Math.round(positive(def.attempts, 3)),
      backoff: { initialMs: 1000, maxMs: 60_000 },
      log: (level, message) =>
        level === "info" ? node.log(message) : level === "warn" ? node.warn(message) : node.error(message),
      onState: (state) => {
        transmitterState = state;
        showStatus();
      },
    });
    let transmitterState: TransmitterState | undefined;
    let outbox: Outbox<QueuedAlarm> | undefined;
    let pump: OutboxPump<QueuedAlarm> | undefined;
    const userDir = RED.settings.userDir ?? process.cwd();
    const opened = Outbox.open<QueuedAlarm>({
      dir: join(userDir, "alarm-gateway", `line-driver-${node.id}`),
      onProblem: (problem) => node.warn(`outbox: ${problem}`),
    }).then(({ outbox: o, problems }) => {
      for (const p of problems) node.warn(`outbox: ${p}`);
      outbox = o;
      pump = new OutboxPump<QueuedAlarm>({
        outbox: o,
        // The seq follows the outbox id: stable across restarts and retransmissions.
        deliver: (entry) => transmitter.deliver(entry.payload.body, dc09Seq(entry.id)).then(toOutcome),
        onOutcome: (entry, outcome) => {
          report(entry.payload.alarm, dc09Seq(entry.id), outcome);
          showStatus();
        },
        onError: (message) => node.error(message),
      });
      pump.start();
      showStatus();
      return o;
    });
    opened.catch((err: unknown) => {
      node.status({ fill: "red", shape: "ring", text: "outbox unusable" });
      node.error(`outbox cannot be opened, no alarm is accepted: ${String(err)}`);
    });

    const statusTimer = setInterval(showStatus, 10_000); // keeps "last ACK N s ago" true

    function showStatus(): void {
      const queued = outbox?.size ?? 0;
      const s = transmitterState;
      if (!s) node.status({ fill: "grey", shape: "dot", text: `queued ${queued}` });
      else if (s.kind === "ok") {
        const age = Math.round((Date.now() - s.lastAckAt) / 1000);
        node.status({ fill: "green", shape: "dot", text: `${s.via}: last ACK ${age} s ago, queued ${queued}` });
      } else node.status({ fill: "red", shape: "ring", text: `failing: ${s.reason}; queued ${queued}`.slice(0, 90) });
    }

    function report(alarm: AlarmEvent, seq: number, outcome: PumpOutcome): void {
      if (outcome.kind === "delivered") {
        const { via, address, sends } = outcome;
        const latencyMs = Math.round(outcome.latencyMs);
        node.send({
          topic: "delivered",
          payload: { status: "delivered", receiver: via, address, latencyMs, seq, sends },
          alarm,
        } as never);
        return;
      }
      node.error(`alarm ${alarm.account}/${alarm.eventCode} refused by the receiver: ${outcome.reason}`);
      const { via, address, reason } = outcome;
      node.send({
        topic: "failed",
        payload: { status: "failed", receiver: via, address, reason, seq },
        alarm,
      } as never);
    }

    const supervisionMs = positive(def.supervision, 0) * 1000;
    const supervisor =
      supervisionMs > 0
        ? setInterval(
            () => {
              if (Date.now() - transmitter.lastSentAt < supervisionMs || (outbox?.size ?? 0) > 0) return;
              const seq = Number(outbox?.getMeta("nullSeq") ?? "0") + 1;
              outbox
                ?.setMeta("nullSeq", String(seq % 9999))
                .catch((err: unknown) => node.warn(`outbox: ${String(err)}`));
              void transmitter
                .supervise(((seq - 1) % 9999) + 1, def.supervisionAccount?.trim() || "0000")
                .then((ok) => {
                  if (!ok) node.warn("link test (NULL) not acknowledged");
                });
            },
            Math.min(supervisionMs, 10_000),
          )
        : undefined;

    node.on("input", (msg: NodeMessageInFlow, _send, done) => {
      accept(msg).then(
        () => done(),
        (err: Error) => done(err),
      );
    });

    async function accept(msg: NodeMessageInFlow): Promise<void> {
      const alarm = (msg as { alarm?: AlarmEvent }).alarm;
      if (!alarm || typeof alarm !== "object")
        throw new Error("msg.alarm is missing: connect a data-map before the line-driver");
      let body: MessageBody;
      try {
        body = frameBody(alarm, def);
      } catch (err) {
        if (!(err instanceof Dc09DataError)) throw err;
        // It can never be sent as it is: say why, send it to review, never truncate it.
        await settleEmail(RED, msg, "rejected");
        node.send({ topic: "failed", payload: { status: "refused", reason: err.message }, alarm } as never);
        throw new Error(`alarm refused: ${err.message}`);
      }
      const box = await opened;
      // Accepted = on disk. Only then is the email settled (marked read / moved) upstream.
      await box.accept({ body, alarm }, alarm.source?.messageId ?? null);
      await settleEmail(RED, msg, "accepted");
      showStatus();
      pump?.wake();
    }

    node.on("close", (done: () => void) => {
      clearInterval(supervisor);
      clearInterval(statusTimer);
      transmitter.stop();
      Promise.resolve(pump?.stop())
        .then(() => opened)
        .then((o) => o.close())
        .then(done, done);
    });
  }

  RED.nodes.registerType<Node<LineDriverCredentials>, LineDriverDef, object, LineDriverCredentials>(
    "line-driver",
    LineDriver,
    {
      credentials: { key: { type: "password" } },
    },
  );
};

function frameBody(alarm: AlarmEvent, def: LineDriverDef): MessageBody {
  const format = def.format === "SIA" || def.format === "CID" ? def.format : alarm.eventFormat;
  const forDc09 = {
    ...alarm,
    eventFormat: format,
    eventCode: format === "CID" ? (alarm.cidEvent ?? alarm.eventCode) : (alarm.siaCode ?? alarm.eventCode),
  };
  const id: Dc09Id = format === "CID" ? "ADM-CID" : "SIA-DCS";
  const data = format === "CID" ? admCidData(forDc09) : siaDcsData(forDc09);
  const extended: { kind: string; value: string }[] = [];
  if (def.sendText && alarm.text) extended.push({ kind: "I", value: asciiOnly(alarm.text).slice(0, 200) });
  if (def.sendTime && alarm.occurredAt) extended.push({ kind: "H", value: formatDc09Time(new Date(alarm.occurredAt)) });
  const link = (alarm as { verificationUrl?: unknown }).verificationUrl;
  if (def.sendLink && typeof link === "string" && /^https?:\/\/[\x21-\x7e]+$/.test(link))
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

function dc09Seq(outboxId: number): number {
  return ((outboxId - 1) % 9999) + 1;
}

function toOutcome(result: DeliveryResult): PumpOutcome {
  return result.kind === "ack"
    ? { kind: "delivered", via: result.via, address: result.address, latencyMs: result.latencyMs, sends: result.sends }
    : { kind: "failed", via: result.via, address: result.address, reason: result.reason };
}

function positive(value: string | number | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
