// Node-RED adapter for the line-driver (SIA DC-09 or Sur-Gard): an alarm is accepted once it is in the
// durable outbox, and only then is its email settled upstream; a pump delivers the outbox in
// order to the receiver and reports each outcome on the output. An email of a shared connector
// (several gateways on one mailbox) is held instead, and settled only on the receiver's ACK.
import { join } from "node:path";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { AlarmMediaNode } from "./alarm-media";
import type { AlarmEvent } from "./core/datamap";
import { type Dc09Key, parseDc09Key } from "./core/dc09";
import { type AlarmChannel, AlarmNotExpressibleError, type LineState } from "./core/delivery/channel";
import { Dc09Channel, dc09Seq } from "./core/delivery/dc09-channel";
import { type Clearance, OutboxPump, type PumpOutcome, type PumpReport } from "./core/delivery/outbox-pump";
import { SurgardChannel } from "./core/delivery/surgard-channel";
import { LineDriverHealth } from "./core/health/registry";
import type { Evidence } from "./core/media/evidence";
import type { MediaSource } from "./core/media/media-store";
import { Outbox, type OutboxEntry, type RefusedEntry } from "./core/outbox/outbox";
import { type AllowList, parseAllowList } from "./core/surgard/allow-list";
import type { Outcome } from "./core/watch/watcher";
import { gatewayHealth, trace, traceKeyOf } from "./health";
import { registerLineDriverTest } from "./line-driver-test";
import { type EmailConnectorNode, type EmailRefInMsg, settleEmail, settlementOf } from "./settle";

interface LineDriverDef extends NodeDef {
  protocol: "dc09" | "surgard";
  format: "auto" | "SIA" | "CID";
  // SIA DC-09
  host: string;
  port: string | number;
  backupHost: string;
  backupPort: string | number;
  transport: "tcp" | "udp";
  receiver: string;
  prefix: string;
  ackTimeout: string | number;
  attempts: string | number;
  supervision: string | number;
  supervisionAccount: string;
  sendText: boolean;
  sendTime: boolean;
  sendLink: boolean;
  /** How the AES key text is read; absent in flows saved before it existed: "auto" (today's rule). */
  keyForm?: "auto" | "hex" | "ascii";
  /** SIA `ri`/`id` modifier order; absent in older flows: "ri-id". */
  modifierOrder?: "ri-id" | "id-ri";
  /** Receiver preset chosen in the editor (informational: the settings it filled in are what count). */
  receiverProfile?: string;
  /**
   * Account for a trouble event (Contact ID 354 "failure to communicate event", SIA YC) queued when the
   * receiver refuses an alarm; empty or absent: none (the default).
   */
  troubleAccount?: string;
  /** An alarm-media config node: the alarm's pictures and clips are kept, and linked, before it is accepted. */
  media?: string;
  // Sur-Gard
  sgRole: "server" | "client";
  sgHost: string;
  sgPort: string | number;
  /** Server role: the automation software's addresses (IPs, CIDRs); empty = loopback only. Absent in flows saved before it existed. */
  sgAllow?: string;
  sgReceiver: string | number;
  sgLine: string | number;
  sgLineDigits: string | number;
  sgAccountDigits: "auto" | "4" | "10";
  sgHeartbeat: string | number;
  sgAckTimeout: string | number;
  sgAttempts: string | number;
}

interface LineDriverCredentials {
  key?: string;
}

/** What the outbox keeps per alarm: what goes on the wire, ready to send, and what the output reports. */
interface QueuedAlarm {
  /** Absent in outboxes written before Sur-Gard existed: those are DC-09. */
  protocol?: AlarmChannel["protocol"];
  body: unknown;
  alarm: AlarmEvent;
  /** A trouble event about a refused alarm: its own refusal raises no further one. */
  trouble?: true;
  /**
   * The email of a shared connector, held (not settled) until the receiver ACKs the alarm. The ref
   * is the one of the process that accepted it: after a restart the connector offers the email
   * again under a new ref, which replaces it (in memory, see `held`).
   */
  email?: EmailRefInMsg;
  /** The email's key in the alarm trace (absent for alarms without an email, and in older outboxes). */
  trace?: string;
}

/**
 * How long an alarm whose email a shared connector held waits for that connector (gone after a
 * redeploy, not yet started, or not offering the email again) before it is sent anyway: a
 * possible duplicate with another gateway, never a lost alarm.
 */
const CONNECTOR_WAIT_MS = 10 * 60 * 1000;

/**
 * What makes a second copy of an alarm a duplicate in the outbox: its email's Message-ID; for an
 * email without one, the email itself as its connector knows it (folder UIDVALIDITY + UID), which is
 * what comes again when a restart offers an email whose alarm was accepted but not yet settled.
 */
function dedupeKey(alarm: AlarmEvent, msg: object): string | null {
  if (alarm.source?.messageId) return alarm.source.messageId;
  const ref = settlementOf(msg)?.ref;
  return ref ? `email:${ref.connector}/${ref.uidValidity}/${ref.uid}` : null;
}

/** Shortest time between two status updates of a line-driver. */
const STATUS_EVERY_MS = 200;

/** What the editor may see of a deployed line-driver: never the key, only how it was read. */
interface LineDriverView {
  protocol: AlarmChannel["protocol"];
  key?: { form: Dc09Key["form"]; bits: Dc09Key["bits"] };
  linkTestAccount?: string;
  learnedForms?: Record<string, string>;
  refused: RefusedView[];
}

interface RefusedView {
  id: number;
  seq?: number;
  account: string;
  eventCode: string;
  zone?: number | null;
  area?: number | null;
  text?: string;
  acceptedAt: number;
  refusedAt: number;
  reason: string;
  answer?: string;
  receiver?: string;
}

interface LineDriverHandle {
  view(): LineDriverView;
  /** Queues a refused alarm again; false when the node has no such refused alarm. */
  resend(entryId: number): Promise<boolean>;
  /** The DC-09 receivers the node was deployed with: the only ones its stored AES key is used with. */
  receivers(): { host: string; port: number }[];
}

/** Deployed line-drivers by node id, for the admin routes. */
const deployed = new Map<string, LineDriverHandle>();

module.exports = (RED: NodeAPI) => {
  function LineDriver(this: Node<LineDriverCredentials>, def: LineDriverDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    let lineState: LineState | undefined;
    const log = (level: "info" | "warn" | "error", message: string) =>
      level === "info" ? node.log(message) : level === "warn" ? node.warn(message) : node.error(message);
    const health = new LineDriverHealth(node.id, def.name ?? "", def.protocol === "surgard" ? "surgard" : "dc09");
    gatewayHealth.lineDrivers.set(node.id, health);
    const onState = (state: LineState) => {
      lineState = state;
      health.lineOk = state.kind === "ok";
      health.lineReason = state.kind === "ok" ? "" : state.reason;
      if (state.kind !== "ok") health.problem(state.reason);
      showStatus();
    };
    let channel: AlarmChannel;
    let keyInfo: LineDriverView["key"];
    try {
      channel =
        def.protocol === "surgard"
          ? surgardChannel(def, log, onState)
          : dc09Channel(def, node, log, onState, showStatus, (k) => {
              keyInfo = { form: k.form, bits: k.bits };
            });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      node.status({ fill: "red", shape: "ring", text: message.slice(0, 60) });
      node.error(`line-driver not started: ${message}`);
      gatewayHealth.lineDrivers.delete(node.id);
      return;
    }
    let outbox: Outbox<QueuedAlarm> | undefined;
    let pump: OutboxPump<QueuedAlarm> | undefined;
    const userDir = RED.settings.userDir ?? process.cwd();
    const opened = Outbox.open<QueuedAlarm>({
      dir: join(userDir, "alarm-gateway", `line-driver-${node.id}`),
      onProblem: (problem) => node.warn(`outbox: ${problem}`),
    }).then(({ outbox: o, problems }) => {
      for (const p of problems) node.warn(`outbox: ${p}`);
      outbox = o;
      health.outbox = () => ({ depth: o.size, oldestAcceptedAt: o.peek()?.acceptedAt, refused: o.refusedCount });
      pump = new OutboxPump<QueuedAlarm>({
        outbox: o,
        deliver: (entry) => deliver(entry.payload, entry.id),
        clearance,
        onOutcome: (entry, outcome) => {
          traceOutcome(entry, outcome);
          settleHeld(entry, outcome);
          report(entry.payload.alarm, entry.id, outcome);
          if (outcome.kind === "failed" && !entry.payload.trouble) raiseTrouble(entry.payload.alarm, entry.id, outcome);
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
    opened
      .then((o) =>
        channel.start({
          busy: () => o.size > 0,
          meta: { get: (k) => o.getMeta(k), set: (k, v) => o.setMeta(k, v) },
        }),
      )
      .catch((err: unknown) => {
        node.status({ fill: "red", shape: "ring", text: "line cannot start" });
        node.error(`line-driver: ${String(err)}; alarms are kept in the outbox`);
      });

    const statusTimer = setInterval(showStatus, 10_000); // keeps "last ACK N s ago" true

    /** Set while alarms cannot be written to the outbox (disk full, I/O error): nothing is accepted. */
    let outboxProblem: string | undefined;

    // A burst changes the counts a thousand times a second; the editor is told at most every
    // STATUS_EVERY_MS (the last change always shows), which keeps the status true and cheap.
    let statusDue: NodeJS.Timeout | undefined;
    let statusShownAt = 0;
    function showStatus(): void {
      if (statusDue) return;
      const wait = statusShownAt + STATUS_EVERY_MS - Date.now();
      if (wait <= 0) renderStatus();
      else
        statusDue = setTimeout(() => {
          statusDue = undefined;
          renderStatus();
        }, wait);
    }

    function renderStatus(): void {
      statusShownAt = Date.now();
      const queued = `queued ${outbox?.size ?? 0}${outbox?.refusedCount ? `, refused ${outbox.refusedCount}` : ""}`;
      const s = lineState;
      if (outboxProblem) node.status({ fill: "red", shape: "ring", text: outboxProblem.slice(0, 90) });
      else if (!s) node.status({ fill: "grey", shape: "dot", text: queued });
      else if (s.kind === "ok") {
        const age = Math.round((Date.now() - s.lastAckAt) / 1000);
        // Refused alarms wait for someone to look at them (editor: Refused alarms): not green.
        const fill = outbox?.refusedCount ? "yellow" : "green";
        // Alarms are ACKed but link tests are not (e.g. a receiver that refuses NULL): say so, the log says why.
        const nullNote = channel instanceof Dc09Channel && channel.linkTestProblem ? ", link test not ACKed" : "";
        node.status({ fill, shape: "dot", text: `${s.via}: last ACK ${age} s ago, ${queued}${nullNote}` });
      } else node.status({ fill: "red", shape: "ring", text: `failing: ${s.reason}; ${queued}`.slice(0, 90) });
    }

    // An entry queued under the other protocol (the node was reconfigured) is built again from its alarm.
    async function deliver(queued: QueuedAlarm, id: number): Promise<PumpOutcome> {
      if (queued.trace)
        trace(RED, {
          stage: "sent",
          key: queued.trace,
          node: node.id,
          ...(channel.protocol === "dc09" ? { seq: dc09Seq(id) } : {}),
        });
      let body = queued.body;
      if ((queued.protocol ?? "dc09") !== channel.protocol) {
        try {
          body = channel.prepare(queued.alarm);
        } catch (err) {
          if (!(err instanceof AlarmNotExpressibleError)) throw err;
          return {
            kind: "failed",
            via: channel.protocol,
            address: "",
            reason: `queued before a reconfiguration: ${err.message}`,
          };
        }
      }
      return channel.deliver(body, id);
    }

    /** The receiver's answer in the health registry and the alarm's trace. */
    function traceOutcome(entry: OutboxEntry<QueuedAlarm>, outcome: PumpReport): void {
      const seq = channel.protocol === "dc09" ? dc09Seq(entry.id) : undefined;
      if (outcome.kind === "delivered") health.deliveredIn(outcome.latencyMs, outcome.via, outcome.address);
      else if (outcome.kind === "failed") {
        health.failed++;
        health.problem(`refused: ${outcome.answer ?? outcome.reason}`);
      }
      const key = entry.payload.trace;
      if (!key || outcome.kind === "taken-over") return;
      trace(RED, {
        stage: outcome.kind === "delivered" ? "acked" : "refused",
        key,
        node: node.id,
        account: entry.payload.alarm.account,
        receiver: `${outcome.via} ${outcome.address}`.trim(),
        ...(seq !== undefined ? { seq } : {}),
        ...(outcome.kind === "delivered"
          ? { detail: `${Math.round(outcome.latencyMs)} ms` }
          : { detail: outcome.answer ?? outcome.reason }),
      });
    }

    /** Emails held for alarms not yet ACKed, by outbox id: the ref this process was given for each. */
    const held = new Map<number, EmailRefInMsg>();
    /** When an entry with a held email was first found without its connector able to fence it. */
    const waitingSince = new Map<number, number>();

    function sharedConnector(id: string): EmailConnectorNode | undefined {
      const connector = RED.nodes.getNode(id) as EmailConnectorNode | null;
      return connector?.shared ? connector : undefined;
    }

    /**
     * The fence of shared mode: an alarm goes on the wire only while this gateway's claim on its email
     * is current. An entry read back from disk (ref of an earlier process) waits for the connector to
     * offer the email again, unless the connector still knows its ref (only the line-driver restarted).
     */
    function clearance(entry: OutboxEntry<QueuedAlarm>): Clearance {
      const stored = entry.payload.email;
      if (!stored) return "yes";
      const ref = held.get(entry.id) ?? stored;
      const connector = sharedConnector(ref.connector);
      const answer = connector?.shared?.mayDeliver(ref);
      if (held.has(entry.id) && answer) {
        waitingSince.delete(entry.id);
        return answer;
      }
      if (answer === "yes") {
        held.set(entry.id, ref);
        waitingSince.delete(entry.id);
        return "yes";
      }
      // No connector now, or a ref that may be stale: "lost" is only believed once the email was not offered again in time.
      const since = waitingSince.get(entry.id) ?? Date.now();
      waitingSince.set(entry.id, since);
      if (Date.now() - since < CONNECTOR_WAIT_MS) return "wait";
      waitingSince.delete(entry.id);
      if (answer === "lost") return "lost";
      node.warn(
        `alarm ${entry.payload.alarm.account}/${entry.payload.alarm.eventCode} (outbox id ${entry.id}) waited ` +
          `${CONNECTOR_WAIT_MS / 60_000} min for email-connector ${ref.connector} to confirm its claim on the email; ` +
          "sending it anyway (another gateway may raise it too)",
      );
      return "yes";
    }

    /** ACK: the held email is settled "accepted"; refused: "rejected" (review folder); taken over: not ours. */
    function settleHeld(entry: OutboxEntry<QueuedAlarm>, outcome: PumpReport): void {
      const stored = entry.payload.email;
      if (!stored) return;
      const ref = held.get(entry.id) ?? stored;
      held.delete(entry.id);
      waitingSince.delete(entry.id);
      if (outcome.kind === "taken-over") return;
      settleThrough(ref, outcome.kind === "delivered" ? "accepted" : "rejected", entry.id);
    }

    function settleThrough(ref: EmailRefInMsg, outcome: Outcome, id: number): void {
      const connector = RED.nodes.getNode(ref.connector) as EmailConnectorNode | null;
      // Connector gone (redeploy, restart): the email stays in its claim folder and is offered again; the dedupe settles it then.
      if (!connector?.settle) return;
      connector.settle(ref, outcome).catch((err: unknown) => {
        node.warn(`email of outbox id ${id} not settled "${outcome}": ${String(err)}; it is offered again`);
      });
    }

    function report(alarm: AlarmEvent, id: number, outcome: PumpReport): void {
      const seq = channel.protocol === "dc09" ? dc09Seq(id) : undefined;
      if (outcome.kind === "taken-over") {
        node.log(`alarm ${alarm.account}/${alarm.eventCode} (outbox id ${id}) taken over by another gateway`);
        node.send({
          topic: "taken-over",
          payload: { status: "taken-over", protocol: channel.protocol, outboxId: id },
          alarm,
        } as never);
        return;
      }
      if (outcome.kind === "delivered") {
        const { via, address, sends, fallback } = outcome;
        const latencyMs = Math.round(outcome.latencyMs);
        node.send({
          topic: "delivered",
          payload: {
            status: "delivered",
            protocol: channel.protocol,
            receiver: via,
            address,
            latencyMs,
            seq,
            sends,
            ...(fallback ? { form: fallback } : {}),
          },
          alarm,
        } as never);
        return;
      }
      // Not dropped: the outbox keeps it as refused; the editor lists it and can resend it.
      node.error(
        `alarm ${alarm.account}/${alarm.eventCode} refused by the receiver: ${outcome.reason}` +
          `${outcome.answer ? ` (answer ${JSON.stringify(outcome.answer)})` : ""}; kept as refused (outbox id ${id}), ` +
          "resend it from the line-driver's dialog",
      );
      const { via, address, reason, answer } = outcome;
      node.send({
        topic: "failed",
        payload: {
          status: "failed",
          protocol: channel.protocol,
          receiver: via,
          address,
          reason,
          answer,
          seq,
          outboxId: id,
          kept: true,
        },
        alarm,
      } as never);
    }

    /**
     * Tells the centre that an alarm was refused, as an alarm of its own on the configured account, through the
     * same outbox (durable, deduplicated by the refused entry). Off unless an account is set: a receiver that
     * refuses an alarm may refuse this too, and a centre must expect the account.
     */
    function raiseTrouble(refused: AlarmEvent, id: number, outcome: Extract<PumpOutcome, { kind: "failed" }>): void {
      const account = def.troubleAccount?.trim();
      if (!account || !outbox) return;
      const trouble: AlarmEvent = {
        account,
        eventCode: "354",
        eventFormat: "CID",
        qualifier: "new",
        siaCode: "YC",
        cidEvent: "354",
        zone: 0,
        area: null,
        user: null,
        text: `alarm ${refused.account}/${refused.eventCode} refused by the receiver: ${outcome.answer ?? outcome.reason}`,
        occurredAt: new Date().toISOString(),
        attachments: [],
        source: { messageId: null, from: "", subject: "", receivedAt: null },
        extra: {},
      };
      let body: unknown;
      try {
        body = channel.prepare(trouble);
      } catch (err) {
        node.warn(`trouble event for refused alarm ${id} not raised: ${(err as Error).message}`);
        return;
      }
      outbox
        .accept({ protocol: channel.protocol, body, alarm: trouble, trouble: true }, `trouble:${node.id}:${id}`)
        .then(
          () => pump?.wake(),
          (err: unknown) => node.error(`trouble event for refused alarm ${id} not queued: ${String(err)}`),
        );
    }

    deployed.set(node.id, {
      view: () => ({
        protocol: channel.protocol,
        ...(keyInfo ? { key: keyInfo } : {}),
        ...(channel instanceof Dc09Channel
          ? { linkTestAccount: channel.linkTestAccount, learnedForms: channel.transmitter.learnedForms }
          : {}),
        refused: (outbox?.refusedEntries() ?? []).map((e) => refusedView(e, channel.protocol)),
      }),
      resend: async (entryId) => {
        const box = await opened;
        if (!(await box.requeue(entryId))) return false;
        node.log(`refused alarm (outbox id ${entryId}) queued again from the editor`);
        pump?.wake();
        showStatus();
        return true;
      },
      receivers: () => {
        if (def.protocol === "surgard") return [];
        const list = [{ host: def.host?.trim() ?? "", port: Number(def.port) }];
        if (def.backupHost?.trim()) list.push({ host: def.backupHost.trim(), port: Number(def.backupPort) });
        return list;
      },
    });

    node.on("input", (msg: NodeMessageInFlow, _send, done) => {
      accept(msg).then(
        () => done(),
        (err: Error) => done(err),
      );
    });

    async function accept(msg: NodeMessageInFlow): Promise<void> {
      const given = (msg as { alarm?: AlarmEvent }).alarm;
      if (!given || typeof given !== "object")
        throw new Error("msg.alarm is missing: connect a data-map before the line-driver");
      const box = await opened;
      const alarm = await withMedia(given, msg, box);
      let body: unknown;
      try {
        body = channel.prepare(alarm);
      } catch (err) {
        if (!(err instanceof AlarmNotExpressibleError)) throw err;
        // It can never be sent as it is: say why, send it to review, never truncate it.
        await settleEmail(RED, msg, "rejected");
        node.send({
          topic: "failed",
          payload: { status: "refused", protocol: channel.protocol, reason: err.message },
          alarm,
        } as never);
        throw new Error(`alarm refused: ${err.message}`);
      }
      const ref = settlementOf(msg)?.ref;
      const shared = ref ? sharedConnector(ref.connector)?.shared : undefined;
      const traceId = traceKeyOf(msg, alarm.source?.messageId);
      // Accepted = on disk. Only then is the email settled (marked read / moved) upstream, or, shared, held.
      let accepted: { id: number; duplicate: boolean };
      try {
        const queued: QueuedAlarm = {
          protocol: channel.protocol,
          body,
          alarm,
          ...(shared && ref ? { email: ref } : {}),
          ...(traceId ? { trace: traceId } : {}),
        };
        accepted = await box.accept(queued, dedupeKey(alarm, msg));
      } catch (err) {
        // Not on disk: the email is not settled, so it stays unread and is offered again.
        outboxProblem = `outbox write failed${errnoOf(err)}: alarms not accepted, emails stay unread`;
        showStatus();
        throw err;
      }
      if (!accepted.duplicate) health.accepted++;
      if (traceId)
        trace(RED, {
          stage: "accepted",
          key: traceId,
          node: node.id,
          account: alarm.account,
          detail: accepted.duplicate ? `already in the outbox (id ${accepted.id})` : `outbox id ${accepted.id}`,
        });
      if (outboxProblem?.startsWith("outbox")) {
        outboxProblem = undefined;
        node.log("outbox writes again: accepting alarms");
      }
      if (shared && ref) {
        await holdShared(shared, ref, accepted, box);
        showStatus();
        return;
      }
      // Durable now: delivery need not wait for the connector to record its settlement.
      pump?.wake();
      await settleEmail(RED, msg, "accepted");
      showStatus();
    }

    /**
     * With an alarm-media node: the alarm's pictures and clips are on disk before the alarm is, so a link in
     * a frame never points at nothing; the alarm then carries their links (msg.alarm.media, `[V...]`).
     * When they cannot be kept, the alarm is not accepted (its email stays unread and comes again).
     * An alarm the outbox already has (its email offered again) keeps nothing a second time.
     */
    async function withMedia(alarm: AlarmEvent, msg: NodeMessageInFlow, box: Outbox<QueuedAlarm>): Promise<AlarmEvent> {
      if (!def.media || !Array.isArray(alarm.attachments) || alarm.attachments.length === 0) return alarm;
      if (box.knows(dedupeKey(alarm, msg))) return alarm;
      const config = RED.nodes.getNode(def.media) as AlarmMediaNode | null;
      let kept: Awaited<ReturnType<Evidence["keep"]>>;
      try {
        if (!config?.evidence) throw new Error("its alarm media node is not deployed");
        const evidence = await config.evidence;
        kept = await evidence.keep(mediaSources(alarm, msg));
      } catch (err) {
        outboxProblem = `media not kept${errnoOf(err)}: alarms with pictures not accepted, emails stay unread`;
        showStatus();
        throw new Error(`alarm ${alarm.account}/${alarm.eventCode} not accepted, its media not kept: ${String(err)}`);
      }
      if (outboxProblem?.startsWith("media")) outboxProblem = undefined;
      for (const why of kept.skipped) node.log(`alarm ${alarm.account}/${alarm.eventCode}: not kept: ${why}`);
      if (kept.media.length === 0) return alarm;
      const linked: AlarmEvent = { ...alarm, media: kept.media, verificationUrl: kept.media[0]?.url };
      (msg as { alarm?: AlarmEvent }).alarm = linked;
      return linked;
    }

    /**
     * The same email offered again (the connector restarted, a redeploy) finds its alarm ACKed (settle now),
     * refused (to review) or still queued: then the new ref replaces the old one and is held in its place.
     */
    async function holdShared(
      shared: NonNullable<EmailConnectorNode["shared"]>,
      ref: EmailRefInMsg,
      accepted: { id: number; duplicate: boolean },
      box: Outbox<QueuedAlarm>,
    ): Promise<void> {
      const state = accepted.duplicate ? box.stateOf(accepted.id) : "pending";
      if (state !== "pending") {
        settleThrough(ref, state === "done" ? "accepted" : "rejected", accepted.id);
        return;
      }
      held.set(accepted.id, ref);
      waitingSince.delete(accepted.id);
      pump?.wake();
      // An ACK faster than hold() settles first: then hold() has nothing left to hold, rightly.
      if (!(await shared.hold(ref)) && box.stateOf(accepted.id) === "pending")
        node.warn(`email of outbox id ${accepted.id} could not be held: its connector no longer has it`);
    }

    node.on("close", (done: () => void) => {
      deployed.delete(node.id);
      if (gatewayHealth.lineDrivers.get(node.id) === health) gatewayHealth.lineDrivers.delete(node.id);
      clearInterval(statusTimer);
      clearTimeout(statusDue);
      channel.stop();
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
  registerLineDriverTest(RED, {
    linkTestAccountOf: (id) => deployed.get(id)?.view().linkTestAccount,
    receiversOf: (id) => deployed.get(id)?.receivers(),
  });

  // The dialog's "Refused alarms": what the deployed node keeps as refused, and "Resend".
  RED.httpAdmin.get("/line-driver/:id/state", RED.auth.needsPermission("line-driver.read"), (req, res) => {
    const handle = deployed.get(String(req.params.id));
    if (!handle) {
      res.status(404).json({ error: "not deployed" });
      return;
    }
    res.json(handle.view());
  });
  RED.httpAdmin.post(
    "/line-driver/:id/refused/:entry/resend",
    RED.auth.needsPermission("line-driver.write"),
    (req, res) => {
      const handle = deployed.get(String(req.params.id));
      const entry = Number(req.params.entry);
      if (!handle || !Number.isSafeInteger(entry)) {
        res.status(404).json({ ok: false, error: "no such line-driver or alarm" });
        return;
      }
      handle.resend(entry).then(
        (ok) => res.status(ok ? 200 : 404).json(ok ? { ok } : { ok, error: "no such refused alarm" }),
        (err: unknown) => res.status(500).json({ ok: false, error: `not queued again: ${String(err)}` }),
      );
    },
  );
};

/** The bytes of each attachment the alarm names: from msg.email (same index), or the spooled file it names. */
function mediaSources(alarm: AlarmEvent, msg: NodeMessageInFlow): MediaSource[] {
  const parsed = (msg as { email?: { attachments?: unknown } }).email?.attachments;
  const list = Array.isArray(parsed) ? (parsed as Partial<MediaSource>[]) : [];
  return alarm.attachments.map((ref) => {
    const a = list[ref.index];
    const content = a?.content;
    return {
      filename: String(ref.filename ?? a?.filename ?? ""),
      contentType: String(ref.contentType ?? a?.contentType ?? ""),
      size: Number(ref.size ?? a?.size ?? 0),
      content: Buffer.isBuffer(content) ? content : null,
      ...(typeof (a?.path ?? ref.path) === "string" ? { path: (a?.path ?? ref.path) as string } : {}),
    };
  });
}

/** " (ENOSPC)" from an error or its cause, "" when it has no code. */
function errnoOf(err: unknown): string {
  const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as NodeJS.ErrnoException).code;
  return code ? ` (${code})` : "";
}

function refusedView(e: RefusedEntry<QueuedAlarm>, protocol: AlarmChannel["protocol"]): RefusedView {
  const a = e.payload.alarm;
  return {
    id: e.id,
    ...(protocol === "dc09" ? { seq: dc09Seq(e.id) } : {}),
    account: a.account,
    eventCode: a.eventCode,
    zone: a.zone,
    area: a.area,
    ...(a.text ? { text: a.text.slice(0, 120) } : {}),
    acceptedAt: e.acceptedAt,
    refusedAt: e.refusedAt,
    reason: e.reason,
    ...(e.answer === undefined ? {} : { answer: e.answer }),
    ...(e.detail === undefined ? {} : { receiver: e.detail }),
  };
}

type Log = (level: "info" | "warn" | "error", message: string) => void;

function dc09Channel(
  def: LineDriverDef,
  node: Node<LineDriverCredentials>,
  log: Log,
  onState: (s: LineState) => void,
  onLinkTest: () => void,
  onKey: (key: Dc09Key) => void,
): Dc09Channel {
  let key: Buffer | undefined;
  const keyForm = def.keyForm === "hex" || def.keyForm === "ascii" ? def.keyForm : "auto";
  try {
    if (node.credentials?.key) {
      const parsed = parseDc09Key(node.credentials.key, keyForm);
      key = parsed.key;
      onKey(parsed);
      // Says how the key was read, never the key: a receiver that reads it the other way stays silent.
      log("info", `AES key read as ${parsed.form === "hex" ? "hex digits" : "ASCII characters"}, AES-${parsed.bits}`);
    }
  } catch (err) {
    throw new Error(`AES key invalid: ${String((err as Error).message)}`);
  }
  const port = Number(def.port);
  if (!def.host?.trim() || !(port > 0 && port < 65536)) throw new Error("enter the receiver's host and port");
  const backupPort = Number(def.backupPort);
  return new Dc09Channel({
    primary: { host: def.host.trim(), port },
    backup: def.backupHost?.trim() && backupPort > 0 ? { host: def.backupHost.trim(), port: backupPort } : undefined,
    transport: def.transport === "udp" ? "udp" : "tcp",
    key,
    receiver: def.receiver?.trim() || undefined,
    prefix: def.prefix?.trim() || "0",
    ackTimeoutMs: positive(def.ackTimeout, 5) * 1000,
    attemptsPerReceiver: Math.round(positive(def.attempts, 3)),
    backoff: { initialMs: 1000, maxMs: 60_000 },
    format: def.format,
    sendText: def.sendText,
    sendTime: def.sendTime,
    sendLink: def.sendLink,
    modifierOrder: def.modifierOrder === "id-ri" ? "id-ri" : "ri-id",
    supervisionMs: positive(def.supervision, 0) * 1000,
    supervisionAccount: def.supervisionAccount?.trim() ?? "0000",
    log,
    onState,
    onLinkTest,
  });
}

function surgardChannel(def: LineDriverDef, log: Log, onState: (s: LineState) => void): SurgardChannel {
  const role = def.sgRole === "client" ? "client" : "server";
  const port = Number(def.sgPort || (role === "server" ? 1025 : ""));
  if (!(port > 0 && port < 65536)) throw new Error("enter the automation software's port");
  if (role === "client" && !def.sgHost?.trim()) throw new Error("enter the automation software's host");
  const ackTimeout = positive(def.sgAckTimeout, 4);
  if (ackTimeout > 10) throw new Error("ACK timeout is at most 10 s");
  const digits = Number(def.sgLineDigits) === 1 ? 1 : 3;
  let allow: AllowList | undefined;
  if (role === "server") {
    try {
      allow = parseAllowList(def.sgAllow);
    } catch (err) {
      throw new Error(`allowed automation addresses: ${(err as Error).message}`);
    }
    // Flows saved before the allow-list existed listened on every interface and took any caller;
    // they now take this machine only, and say what to set.
    if (def.sgAllow === undefined)
      log(
        "warn",
        "Sur-Gard: only automation software on this machine may connect now (listening on " +
          `${def.sgHost?.trim() || "127.0.0.1"} port ${port}). If it runs on another host, open this line-driver and ` +
          "enter its address under 'Allowed automation' (and the address to listen on, if not all interfaces).",
      );
  }
  return new SurgardChannel({
    role,
    host: def.sgHost?.trim() ?? "",
    port,
    allow,
    line: { receiver: wholeNumber(def.sgReceiver, 1), line: wholeNumber(def.sgLine, 1), lineDigits: digits },
    format: def.format,
    accountDigits: def.sgAccountDigits === "4" ? 4 : def.sgAccountDigits === "10" ? 10 : "auto",
    ackTimeoutMs: ackTimeout * 1000,
    attempts: Math.round(positive(def.sgAttempts, 3)),
    heartbeatMs: positive(def.sgHeartbeat, 30) * 1000,
    log,
    onState,
  });
}

function wholeNumber(value: string | number | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  return Number.isInteger(n) ? n : Number.NaN;
}

function positive(value: string | number | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
