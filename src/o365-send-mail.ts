// Node-RED adapter for o365-send-mail: sends a message as an Office 365 mailbox through Microsoft
// Graph sendMail (permission Mail.Send), e.g. to tell a site that its email could not be read.
import { readFileSync } from "node:fs";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { GraphApi } from "./core/graph/graph-api";
import type { MailAttachment, MailToSend } from "./core/graph/send-mail";
import { REQUIRED_ROLES } from "./core/oauth/cloud";
import type { O365OAuthConfigNode, TokenUser } from "./o365-oauth-config";

interface SendMailDef extends NodeDef {
  oauth: string;
  /** The mailbox the message is sent as. */
  from: string;
  to: string;
  toType: "str" | "msg" | "env";
  subject: string;
  subjectType: "str" | "msg" | "env";
  bodyType: "auto" | "Text" | "HTML";
  saveToSentItems: boolean;
}

module.exports = (RED: NodeAPI) => {
  function O365SendMail(this: Node & TokenUser, def: SendMailDef) {
    RED.nodes.createNode(this, def);
    const config = RED.nodes.getNode(def.oauth) as O365OAuthConfigNode | null;
    const from = def.from?.trim() ?? "";
    if (!config || !isAddress(from)) {
      const problem = !config ? "choose an o365-oauth-config" : "the From mailbox must be an email address";
      this.status({ fill: "red", shape: "ring", text: problem });
      this.error(`o365-send-mail not started: ${problem}`);
      return;
    }
    const role = REQUIRED_ROLES.graphSend.role;
    // The Graph client costs memory (~9 MB): loaded once a node uses it, not with the palette.
    const { GraphApi, GraphApiError } = require("./core/graph/graph-api") as typeof import("./core/graph/graph-api");
    const { sendMail } = require("./core/graph/send-mail") as typeof import("./core/graph/send-mail");
    const api: GraphApi = new GraphApi({
      host: config.graphHost(),
      tokens: {
        get: () => config.getToken("graph", role).then((t) => t.token),
        renewAfterRejection: (rejected) => config.renewAfterRejection("graph", rejected, role).then((t) => t.token),
      },
      backoff: { initialMs: 1000, maxMs: 60_000 },
      maxThrottleRetries: 5,
      onThrottled: (retryInMs) =>
        this.status({ fill: "yellow", shape: "ring", text: `throttled, retrying in ${Math.ceil(retryInMs / 1000)} s` }),
      log: (level, message) =>
        level === "info" ? this.log(message) : level === "warn" ? this.warn(message) : this.error(message),
    });
    config.register(this, "graph");
    let sent = 0;

    this.on("input", (msg: NodeMessageInFlow, send, done) => {
      let mail: MailToSend;
      try {
        mail = composeMail(RED, this, def, msg);
      } catch (err) {
        this.status({ fill: "red", shape: "ring", text: "nothing sent: message incomplete" });
        done(err as Error);
        return;
      }
      this.status({ fill: "blue", shape: "dot", text: "sending" });
      sendMail(api, from, mail).then(
        () => {
          sent++;
          this.status({ fill: "green", shape: "dot", text: `sent ${sent}, last to ${recipientText(mail)}` });
          const out = msg as NodeMessageInFlow & { sent?: object };
          out.sent = { from, to: mail.toRecipients, subject: mail.subject, at: new Date().toISOString() };
          send(out);
          done();
        },
        (err: unknown) => {
          const reason = err instanceof GraphApiError ? `${err.message}${err.hint ? ` ${err.hint}` : ""}` : String(err);
          this.status({ fill: "red", shape: "ring", text: `not sent: ${reason}`.slice(0, 80) });
          done(new Error(`email not sent as ${from}: ${reason}`));
        },
      );
    });

    this.on("close", (done: () => void) => {
      config.deregister(this);
      api.close();
      done();
    });
  }

  RED.nodes.registerType("o365-send-mail", O365SendMail);
};

/** msg.to / msg.cc (string with commas or list), msg.topic, msg.payload, msg.attachments, or the node's settings. */
function composeMail(RED: NodeAPI, node: Node, def: SendMailDef, msg: NodeMessageInFlow): MailToSend {
  const m = msg as NodeMessageInFlow & { to?: unknown; cc?: unknown; html?: unknown; attachments?: unknown };
  const to = addressList(def.to?.trim() ? RED.util.evaluateNodeProperty(def.to, def.toType || "str", node, msg) : m.to);
  const cc = addressList(m.cc);
  if (to.length + cc.length === 0) throw new Error("no recipient: set To in the node, or msg.to");
  const subjectValue = def.subject?.trim()
    ? RED.util.evaluateNodeProperty(def.subject, def.subjectType || "str", node, msg)
    : msg.topic;
  const subject = String(subjectValue ?? "").trim();
  if (!subject) throw new Error("no subject: set Subject in the node, or msg.topic");
  const payload = msg.payload;
  const content = typeof payload === "string" ? payload : payload === undefined ? "" : JSON.stringify(payload, null, 2);
  const html =
    def.bodyType === "HTML" || (def.bodyType !== "Text" && (m.html === true || /^\s*<(!doctype|html)/i.test(content)));
  return {
    subject,
    body: { contentType: html ? "HTML" : "Text", content },
    toRecipients: to,
    ccRecipients: cc,
    attachments: attachmentsOf(m.attachments),
    saveToSentItems: def.saveToSentItems !== false,
  };
}

function addressList(value: unknown): string[] {
  if (value == null || value === "") return [];
  const items = Array.isArray(value) ? value : String(value).split(/[,;]/);
  return items
    .map((v) => (typeof v === "object" && v !== null && "address" in v ? String(v.address) : String(v)).trim())
    .filter(Boolean);
}

/** Attachments as the email-connector emits them ({ filename, contentType, content }) or { name, content }. */
function attachmentsOf(value: unknown): MailAttachment[] {
  if (!Array.isArray(value)) return [];
  return value.map((a, i) => {
    const item = a as { filename?: string; name?: string; contentType?: string; content?: unknown; path?: string };
    // A large attachment the email-connector spooled to a file.
    const content = item.content == null && typeof item.path === "string" ? readFileSync(item.path) : item.content;
    if (!Buffer.isBuffer(content) && typeof content !== "string")
      throw new Error(`attachment ${i + 1} has no content (a Buffer or base64 text)`);
    return {
      name: item.filename ?? item.name ?? `attachment-${i + 1}`,
      contentType: item.contentType ?? "application/octet-stream",
      content,
    };
  });
}

function recipientText(mail: MailToSend): string {
  const first = mail.toRecipients[0];
  const text = typeof first === "string" ? first : (first?.address ?? "");
  return mail.toRecipients.length > 1 ? `${text} +${mail.toRecipients.length - 1}` : text;
}

function isAddress(text: string): boolean {
  return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(text);
}
