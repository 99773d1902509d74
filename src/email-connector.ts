// Node-RED adapter for the email-connector node: a MailboxWatcher per node, one message per
// email, settlement through the node's input or by data-map / line-driver (see settle.ts).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import {
  type EmailRef,
  MailboxWatcher,
  type Outcome,
  type TakeMode,
  type WatcherState,
} from "./core/mail/mailbox-watcher";
import { ProgressStore, type ServerAction } from "./core/mail/progress-store";
import { REQUIRED_ROLES } from "./core/oauth/cloud";
import type { O365OAuthConfigNode, TokenUser } from "./o365-oauth-config";
import { type EmailConnectorNode, type EmailRefInMsg, settlementOf } from "./settle";

interface EmailConnectorDef extends NodeDef {
  oauth: string;
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
}

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
    const [host, portText] = config.outlookHost().split(":");
    const mailbox = def.mailbox.trim();
    const folder = def.folder.trim() || "INBOX";
    const folderKey = `${host}|${mailbox.toLowerCase()}|${folder}`;
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
    const role = REQUIRED_ROLES.imap.role;
    const watcher = new MailboxWatcher({
      endpoint: { host: host ?? "", port: Number(portText ?? 993) || 993, mailbox, ca },
      folder,
      take: def.take === "new" ? "new" : "unseen",
      onAccepted: acceptedAction(def),
      reviewFolder: def.reviewFolder?.trim() || null,
      redeliverAfterMs: seconds(def.redeliverAfter, 600) * 1000,
      pollIntervalMs: seconds(def.pollInterval, 60) * 1000,
      maxInFlight: 1000,
      maxInMemoryAttachmentBytes: seconds(def.maxInMemoryMB, 10) * 1024 * 1024,
      spoolDir: join(userDir, "alarm-gateway", "spool", this.id),
      backoff: { initialMs: 1000, maxMs: 60_000 },
      commandTimeoutMs: 60_000,
      tokens: {
        get: () => config.getToken("outlook", role).then((t) => t.token),
        renewAfterRejection: (rejected) => config.renewAfterRejection("outlook", rejected, role).then((t) => t.token),
      },
      // Keyed by what is watched too: pointing the node at another folder starts afresh.
      store: new ProgressStore(
        join(userDir, "alarm-gateway", `email-connector-${this.id}-${shortHash(folderKey)}.json`),
      ),
      emit: ({ ref, email, receivedAt }) => {
        const emailRef: EmailRefInMsg = { connector: this.id, ...ref };
        const payload = { uid: ref.uid, ...email, receivedAt };
        this.send({ topic: email.subject, payload: email.text, email: payload, emailRef } as never);
      },
      onState: (state) => this.status(statusOf(state, folder)),
      log: (level, message) =>
        level === "info" ? this.log(message) : level === "warn" ? this.warn(message) : this.error(message),
    });
    config.register(this, "outlook");
    this.settle = (ref: EmailRef, outcome: Outcome) => watcher.settle(ref, outcome);
    watcher.start();

    this.on("input", (msg: NodeMessageInFlow, _send: unknown, done: (err?: Error) => void) => {
      const settlement = settlementOf(msg);
      if (!settlement || settlement.ref.connector !== this.id) {
        done(new Error("msg.emailRef is missing or belongs to another email-connector: nothing to settle"));
        return;
      }
      watcher.settle(settlement.ref, settlement.outcome).then(
        () => done(),
        (err: Error) => done(err),
      );
    });
    this.on("close", (done: () => void) => {
      config.deregister(this);
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

function seconds(value: string | number | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

function statusOf(state: WatcherState, folder: string) {
  switch (state.kind) {
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
