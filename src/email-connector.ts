// Node-RED adapter for the email-connector node: one watcher per node (IMAP or Microsoft Graph,
// same semantics), one message per email, settlement through the node's input or by data-map /
// line-driver (see settle.ts). Shared mode (several gateways on one mailbox) runs the
// SharedMailboxWatcher over a shared transport instead, and offers the line-driver hold/mayDeliver.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { GraphWatcherState } from "./core/graph/graph-mailbox-watcher";
import { GraphProgressStore } from "./core/graph/graph-progress-store";
import { ConnectorHealth } from "./core/health/registry";
import { MailboxWatcher } from "./core/mail/mailbox-watcher";
import { ProgressStore, type ServerAction } from "./core/mail/progress-store";
import { REQUIRED_ROLES, type ResourceKind } from "./core/oauth/cloud";
import type { SharedWatcherState } from "./core/shared/shared-watcher";
import { DEFAULT_COORDINATION_FOLDER, type SharedTransport } from "./core/shared/transport";
import type { EmailRef, Outcome, TakeMode, WatchedEmail, Watcher } from "./core/watch/watcher";
import { gatewayHealth, trace, traceKey } from "./health";
import type { O365OAuthConfigNode, TokenUser } from "./o365-oauth-config";
import { type EmailConnectorNode, type EmailRefInMsg, settlementOf } from "./settle";

interface EmailConnectorDef extends NodeDef {
  oauth: string;
  transport: "imap" | "graph";
  /** Graph: seconds between delta queries. */
  graphPoll: string | number;
  mailbox: string;
  folder: string;
  take: TakeMode;
  onAccepted: "seen" | "move" | "delete";
  moveFolder: string;
  reviewFolder: string;
  redeliverAfter: string | number;
  pollInterval: string | number;
  maxInMemoryMB: string | number;
  caFile: string;
  /** Share this mailbox with other gateways (claim folders, leases, settle on ACK); absent in older flows: off. */
  shared?: boolean;
  /** Shared mode's coordination folder at the top of the mailbox. */
  sharedFolder?: string;
  /** Shared mode: seconds after its last renewal that a silent gateway's emails are taken over (default 20). */
  leaseSeconds?: string | number;
}

/**
 * Graph: seconds between delta queries when the node does not say. 1 s picks up an email within about a
 * second and costs 600 requests per 10 minutes per mailbox when idle, against Outlook's 10,000 per app and
 * mailbox (docs/graph-limits.md).
 */
const GRAPH_POLL_S = 1;

/** One watcher per mailbox folder in this Node-RED: two would process the same email twice. */
const watchedFolders = new Map<string, string>();

module.exports = (RED: NodeAPI) => {
  function EmailConnector(this: EmailConnectorNode & TokenUser, def: EmailConnectorDef) {
    RED.nodes.createNode(this, def);
    const config = RED.nodes.getNode(def.oauth) as O365OAuthConfigNode | null;
    const problems = checkDef(def, config);
    if (problems.length > 0 || !config) {
      this.status({ fill: "red", shape: "ring", text: problems[0] ?? "no o365-oauth-config" });
      this.error(`email-connector not started: ${problems.join(" ")}`);
      return;
    }
    const transport = def.transport === "graph" ? "graph" : "imap";
    const serverHost = transport === "graph" ? config.graphHost() : config.outlookHost();
    const [host, portText] = serverHost.split(":");
    const mailbox = def.mailbox.trim();
    const folder = def.folder.trim() || "INBOX";
    const folderKey = `${transport === "graph" ? "graph|" : ""}${host}|${mailbox.toLowerCase()}|${folder}`;
    const owner = watchedFolders.get(folderKey);
    if (owner && owner !== this.id) {
      const text = `${mailbox}/${folder} is already watched by email-connector ${owner}`;
      this.status({ fill: "red", shape: "ring", text: "folder already watched" });
      this.error(`${text}: two connectors on one folder would raise each alarm twice. Use one connector.`);
      return;
    }
    watchedFolders.set(folderKey, this.id);

    let ca: string | undefined;
    if (def.caFile?.trim()) {
      try {
        ca = readFileSync(def.caFile.trim(), "utf8");
      } catch (err) {
        this.status({ fill: "red", shape: "ring", text: "extra CA file unreadable" });
        this.error(`extra CA file ${def.caFile}: ${String(err)}`);
        watchedFolders.delete(folderKey);
        return;
      }
    }
    const userDir = RED.settings.userDir ?? process.cwd();
    const nodeId = this.id;
    const health = new ConnectorHealth(this.id, def.name ?? "", mailbox, transport, folder, !!def.shared, def.oauth);
    gatewayHealth.connectors.set(this.id, health);
    const onState = (state: GraphWatcherState | SharedWatcherState) => {
      const reason = state.kind === "reconnecting" || state.kind === "error" ? state.reason : "";
      health.setState(state.kind, reason, "inFlight" in state ? state.inFlight : health.inFlight);
      this.status(statusOf(state, folder));
    };
    const settled = (ref: EmailRef, outcome: Outcome) =>
      trace(RED, { stage: "settled", key: traceKey(nodeId, ref), node: nodeId, detail: outcome });
    const common = {
      folder,
      take: def.take === "new" ? ("new" as const) : ("unseen" as const),
      onAccepted: acceptedAction(def),
      reviewFolder: def.reviewFolder?.trim() || null,
      redeliverAfterMs: seconds(def.redeliverAfter, 600) * 1000,
      maxInFlight: 1000,
      maxInMemoryAttachmentBytes: seconds(def.maxInMemoryMB, 10) * 1024 * 1024,
      spoolDir: join(userDir, "alarm-gateway", "spool", this.id),
      backoff: { initialMs: 1000, maxMs: 60_000 },
      emit: ({ ref, email, receivedAt }: WatchedEmail) => {
        const emailRef: EmailRefInMsg = { connector: this.id, ...ref };
        const payload = { uid: ref.uid, ...email, receivedAt };
        health.emailed();
        const arrivedAt = receivedAt ? Date.parse(receivedAt) : Number.NaN;
        trace(RED, {
          stage: "picked-up",
          key: traceKey(nodeId, ref),
          node: nodeId,
          ...(ref.messageId ? { messageId: ref.messageId } : {}),
          from: email.from[0]?.address ?? "",
          subject: email.subject.slice(0, 200),
          ...(Number.isFinite(arrivedAt) ? { arrivedAt } : {}),
          detail: `${mailbox}/${folder}`,
        });
        this.send({ topic: email.subject, payload: email.text, email: payload, emailRef } as never);
      },
      onState,
      log: (level: "info" | "warn" | "error", message: string) =>
        level === "info" ? this.log(message) : level === "warn" ? this.warn(message) : this.error(message),
    };
    // Keyed by what is watched too: pointing the node at another folder starts afresh.
    const progressFile = join(userDir, "alarm-gateway", `email-connector-${this.id}-${shortHash(folderKey)}.json`);
    const resource: ResourceKind = transport === "graph" ? "graph" : "outlook";
    const role = transport === "graph" ? REQUIRED_ROLES.graphRead.role : REQUIRED_ROLES.imap.role;
    const tokens = {
      get: () => config.getToken(resource, role).then((t) => t.token),
      renewAfterRejection: (rejected: string) =>
        config.renewAfterRejection(resource, rejected, role).then((t) => t.token),
    };
    const watcher: Watcher = def.shared
      ? sharedWatcher()
      : transport === "graph"
        ? new (loadGraph().GraphMailboxWatcher)({
            ...common,
            host: serverHost,
            mailbox,
            pollIntervalMs: seconds(def.graphPoll, GRAPH_POLL_S) * 1000,
            safetyCheckMs: seconds(def.pollInterval, 60) * 1000,
            ca,
            tokens,
            store: new GraphProgressStore(progressFile),
          })
        : new MailboxWatcher({
            ...common,
            endpoint: { host: host ?? "", port: Number(portText ?? 993) || 993, mailbox, ca },
            pollIntervalMs: seconds(def.pollInterval, 60) * 1000,
            commandTimeoutMs: 60_000,
            tokens,
            store: new ProgressStore(progressFile),
          });
    /** One SharedMailboxWatcher over the transport's shared flavour; its instance id survives restarts (identityDir). */
    function sharedWatcher(): Watcher & Required<Pick<Watcher, "hold" | "mayDeliver">> {
      const baseFolder = def.sharedFolder?.trim() || DEFAULT_COORDINATION_FOLDER;
      const sharedTransport: SharedTransport =
        transport === "graph"
          ? new (loadShared().graph.GraphSharedTransport)({
              host: serverHost,
              mailbox,
              folder,
              baseFolder,
              tokens,
              ca,
              pollIntervalMs: seconds(def.graphPoll, GRAPH_POLL_S) * 1000,
              log: common.log,
            })
          : new (loadShared().imap.ImapSharedTransport)({
              endpoint: { host: host ?? "", port: Number(portText ?? 993) || 993, mailbox, ca },
              tokens,
              folder,
              baseFolder,
              commandTimeoutMs: 60_000,
              log: common.log,
            });
      const { take: _take, folder: _folder, ...rest } = common;
      return new (loadShared().watcher.SharedMailboxWatcher)({
        ...rest,
        transport: sharedTransport,
        identityDir: join(userDir, "alarm-gateway", "shared-identity", nodeId),
        // Renewed four times per lease: one lost renewal (a slow server) does not make a gateway look dead.
        leaseMs: leaseSeconds(def.leaseSeconds) * 1000,
        renewMs: (leaseSeconds(def.leaseSeconds) * 1000) / 4,
        pollIntervalMs: seconds(def.pollInterval, 60) * 1000,
      });
    }
    config.register(this, resource);
    this.settle = (ref: EmailRef, outcome: Outcome) =>
      watcher.settle(ref, outcome).then((done) => {
        if (done) settled(ref, outcome);
        return done;
      });
    const { hold, mayDeliver } = watcher;
    if (hold && mayDeliver) {
      this.shared = { hold: (ref) => hold.call(watcher, ref), mayDeliver: (ref) => mayDeliver.call(watcher, ref) };
    }
    watcher.start();

    this.on("input", (msg: NodeMessageInFlow, _send: unknown, done: (err?: Error) => void) => {
      const settlement = settlementOf(msg);
      if (!settlement || settlement.ref.connector !== this.id) {
        done(new Error("msg.emailRef is missing or belongs to another email-connector: nothing to settle"));
        return;
      }
      this.settle(settlement.ref, settlement.outcome).then(
        () => done(),
        (err: Error) => done(err),
      );
    });
    this.on("close", (done: () => void) => {
      config.deregister(this);
      if (gatewayHealth.connectors.get(nodeId) === health) gatewayHealth.connectors.delete(nodeId);
      if (watchedFolders.get(folderKey) === this.id) watchedFolders.delete(folderKey);
      watcher.stop().then(done, done);
    });
  }

  RED.nodes.registerType("email-connector", EmailConnector);
};

function checkDef(def: EmailConnectorDef, config: O365OAuthConfigNode | null): string[] {
  const problems: string[] = [];
  if (!config) problems.push("choose an o365-oauth-config");
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(def.mailbox?.trim() ?? "")) problems.push("mailbox must be an email address");
  if (def.onAccepted === "move" && !def.moveFolder?.trim())
    problems.push("name the folder to move processed emails to");
  if (def.onAccepted === "move" && def.moveFolder?.trim() === (def.folder?.trim() || "INBOX")) {
    problems.push("the folder for processed emails must differ from the watched folder");
  }
  if (def.shared) {
    // Claims are moves of unread emails out of the watched folder: "new since start" would differ per gateway.
    if (def.take === "new") problems.push('a shared mailbox needs "Take: unread emails", not "new since start"');
    const base = def.sharedFolder?.trim() || DEFAULT_COORDINATION_FOLDER;
    if (/[/\\]/.test(base)) problems.push("the coordination folder is a top-level folder: no / or \\ in its name");
    const watched = (def.folder?.trim() || "INBOX").toLowerCase();
    if (
      [watched, def.moveFolder?.trim().toLowerCase(), def.reviewFolder?.trim().toLowerCase()].includes(
        base.toLowerCase(),
      )
    )
      problems.push("the coordination folder must differ from the watched, processed and review folders");
  }
  return problems;
}

function acceptedAction(def: EmailConnectorDef): ServerAction {
  if (def.onAccepted === "move") return { kind: "move", folder: def.moveFolder.trim() };
  if (def.onAccepted === "delete") return { kind: "delete" };
  return { kind: "seen" };
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

/** Lease of a shared gateway: 5 s at least (renewals every 1.25 s), 300 s at most; 20 s by default. */
function leaseSeconds(value: string | number | undefined): number {
  return Math.min(300, Math.max(5, seconds(value, 20)));
}

function seconds(value: string | number | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** The Graph client costs memory (~9 MB): loaded only by a node that uses Graph. */
function loadGraph(): typeof import("./core/graph/graph-mailbox-watcher") {
  return require("./core/graph/graph-mailbox-watcher");
}

/** Shared mode's classes, loaded only by a shared node (and Graph's only with Graph). */
function loadShared() {
  return {
    get watcher(): typeof import("./core/shared/shared-watcher") {
      return require("./core/shared/shared-watcher");
    },
    get imap(): typeof import("./core/shared/imap-shared-transport") {
      return require("./core/shared/imap-shared-transport");
    },
    get graph(): typeof import("./core/shared/graph-shared-transport") {
      return require("./core/shared/graph-shared-transport");
    },
  };
}

/** What the node needs of a watcher, whichever transport it uses; hold and mayDeliver in shared mode only. */
function statusOf(state: GraphWatcherState | SharedWatcherState, folder: string) {
  if (state.kind === "watching" && "shared" in state && state.shared) {
    const { live, holding } = state.shared;
    return {
      fill: "green",
      shape: "dot",
      text:
        `watching ${folder}, shared by ${live} gateway${live === 1 ? "" : "s"}, ${state.inFlight} in flight` +
        `${holding > 0 ? `, ${holding} awaiting ACK` : ""}`,
    } as const;
  }
  switch (state.kind) {
    case "throttled":
      return {
        fill: "yellow",
        shape: "ring",
        text: `throttled, retrying in ${Math.ceil(state.retryInMs / 1000)} s`,
      } as const;
    case "connecting":
      return { fill: "yellow", shape: "ring", text: "connecting" } as const;
    case "watching":
      return {
        fill: "green",
        shape: "dot",
        text: `watching ${folder}${state.inFlight > 0 ? `, ${state.inFlight} in flight` : ""}`,
      } as const;
    case "reconnecting":
      return {
        fill: "yellow",
        shape: "ring",
        text: `reconnecting in ${Math.ceil(state.inMs / 1000)} s: ${state.reason}`,
      } as const;
    case "error":
      return { fill: "red", shape: "ring", text: state.reason } as const;
  }
}
