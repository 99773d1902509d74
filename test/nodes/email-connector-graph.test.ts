// email-connector over Microsoft Graph (the Graph stand-in) next to IMAP (real Dovecot) on one
// tenant, and o365-send-mail through Graph sendMail: what a flow sees and what happens in the mailbox.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, type LoadedConnector, loadConnector, useUserDir } from "../helpers/connector-flow";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX, TENANT_ID } from "../helpers/tenant";
import { GraphStandin } from "../standin/graph";
import { freePort } from "../standin/ports";

const configNode = require("../../nodes/o365-oauth-config.js");
const sendNode = require("../../nodes/o365-send-mail.js");
const FIXTURES = join(__dirname, "..", "fixtures", "emails");

let folderCounter = 0;

describe("email-connector over Microsoft Graph, and o365-send-mail", () => {
  let stack: MailStack;
  let graph: GraphStandin;
  let graphHost: string;

  before(async () => {
    graphHost = `127.0.0.1:${await freePort()}`;
    stack = await startMailStack("graph-connector", {
      graphHost,
      extraFolders: Array.from({ length: 10 }, (_, i) => `g${i + 1}`),
    });
    graph = new GraphStandin({
      certs: stack.tenant.certs,
      signingKey: { kid: stack.tenant.entra.kid, publicKeyPem: stack.tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: graphHost,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review", ...Array.from({ length: 10 }, (_, i) => `g${i + 1}`)],
      port: Number(graphHost.split(":")[1]),
    });
    await graph.start();
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await graph.stop();
    await stack.stop();
  });
  afterEach(async () => {
    graph.failWith(undefined);
    await helper.unload();
  });

  function nextFolder(): string {
    const folder = `g${++folderCounter}`;
    useUserDir(`graph-${folder}`);
    return folder;
  }
  const viaGraph = (folder: string, props: Record<string, unknown> = {}) =>
    loadConnector(stack, { transport: "graph", graphPoll: 0.2, folder, ...props });

  /** What a flow reads, minus what names the transport (uid, receivedAt) and the connector. */
  function comparable(c: LoadedConnector) {
    return c.sent
      .map((s) => {
        const { uid: _uid, receivedAt: _at, ...email } = s.msg.email;
        return { topic: s.msg.topic, payload: s.msg.payload, email };
      })
      .sort((a, b) => String(a.email.messageId).localeCompare(String(b.email.messageId)));
  }

  it("emits the same msg.email for the same MIME whether IMAP or Graph delivered it", async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".eml"));
    const folder = nextFolder();
    for (const f of files) {
      const mime = readFileSync(join(FIXTURES, f));
      await stack.dovecot.append(MAILBOX, mime, { folder });
      graph.deliver(MAILBOX, mime, folder);
    }
    // Not "imap": Node-RED takes a property whose value is a node's id (transport "imap") for a reference to it.
    const imap = await loadConnector(stack, { folder }, { id: "conn-imap" });
    await imap.waitForSent(files.length, 15_000);
    await helper.unload();
    useUserDir(`graph-${folder}-graph`);
    const viaG = await viaGraph(folder);
    await viaG.waitForSent(files.length, 15_000);
    assert.equal(viaG.sent.length, files.length);
    assert.deepEqual(comparable(viaG), comparable(imap));
    assert.equal(viaG.sent[0]?.msg.emailRef.uidValidity, "graph");
  });

  it("marks the email read in the mailbox only once it was settled", async () => {
    const folder = nextFolder();
    const c = await viaGraph(folder);
    await c.waitForStatus(/watching/);
    const stored = graph.deliver(MAILBOX, alarmEmail("Graph alarm"), folder);
    const [first] = await c.waitForSent(1, 5000);
    assert.equal(first?.msg.topic, "Graph alarm");
    await sleep(600);
    assert.equal(
      graph.messages(MAILBOX, folder).find((m) => m.id === stored.id)?.isRead,
      false,
      "unread until settled",
    );
    assert.equal(c.sent.length, 1, "not emitted twice while in flight");
    await c.settle(first?.msg);
    const deadline = Date.now() + 5000;
    while (!graph.messages(MAILBOX, folder).find((m) => m.id === stored.id)?.isRead) {
      if (Date.now() > deadline) assert.fail("never marked read");
      await sleep(50);
    }
    await sleep(600);
    assert.equal(c.sent.length, 1, "a settled email is not offered again");
  });

  it("shows throttling on its status and delivers once Graph lets it", async () => {
    const folder = nextFolder();
    graph.deliver(MAILBOX, alarmEmail("While throttled"), folder);
    graph.failWith({ kind: "throttle", retryAfterSeconds: 2 });
    const c = await viaGraph(folder);
    const status = await c.waitForStatus(/throttled/, 5000);
    assert.match(status, /throttled, retrying in 2 s/);
    const throttledAt = Date.now();
    graph.failWith(undefined);
    const [first] = await c.waitForSent(1, 8000);
    assert.equal(first?.msg.topic, "While throttled");
    assert.ok(first!.at - throttledAt >= 1000, "waited for Retry-After");
  });

  it("over the mailbox's request limit: 429, waits as told, loses nothing and takes nothing twice", async () => {
    const folder = nextFolder();
    // Outlook allows 10,000 requests per app and mailbox in 10 minutes; here 12 in 3 s, polled every 0.1 s.
    graph.requestLimit = { requests: 12, windowMs: 3000 };
    try {
      const c = await viaGraph(folder, { graphPoll: 0.1 });
      const subjects = Array.from({ length: 6 }, (_, i) => `limited ${i}`);
      for (const [i, s] of subjects.entries()) {
        graph.deliver(MAILBOX, alarmEmail(s), folder);
        if (i === 2) await c.waitForStatus(/throttled, retrying in \d+ s/, 10_000);
      }
      const sent = await c.waitForSent(subjects.length, 20_000);
      for (const s of sent) await c.settle(s.msg);
      assert.deepEqual(sent.map((s) => s.msg.topic).sort(), subjects);
      const limited = graph.rateLimited.get(MAILBOX.toLowerCase()) ?? 0;
      assert.ok(limited >= 1, "the limit was reached");
      // After a 429 the connector waits for Retry-After instead of asking again at once.
      assert.ok(limited <= 6, `${limited} requests answered 429: it kept asking`);
      await sleep(500);
      assert.equal(c.sent.length, subjects.length, "each once");
    } finally {
      graph.requestLimit = { requests: 10_000, windowMs: 600_000 };
    }
  });

  it("names the application access policy when Graph denies the mailbox", async () => {
    const folder = nextFolder();
    graph.failWith({ kind: "access-denied" });
    const c = await viaGraph(folder);
    const status = await c.waitForStatus(/denied|access|policy/i, 8000);
    assert.ok(status.length > 0);
    const errors = callsOf(c.node, "error").map(String).join("\n");
    assert.match(errors, /application access polic|RBAC/i);
  });

  describe("o365-send-mail", () => {
    async function loadSender(props: Record<string, unknown>) {
      useUserDir(`graph-send-${++folderCounter}`);
      await helper.load(
        [configNode, sendNode],
        [
          { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
          {
            id: "send",
            type: "o365-send-mail",
            oauth: "cfg",
            from: MAILBOX,
            to: "",
            toType: "str",
            subject: "",
            subjectType: "str",
            bodyType: "auto",
            saveToSentItems: true,
            ...props,
            wires: [["out"]],
          } as never,
          { id: "out", type: "helper" },
        ],
        { cfg: { clientSecret: CLIENT_SECRET } },
      );
      const out: any[] = [];
      helper.getNode("out").on("input", (m: any) => out.push(m));
      return { node: helper.getNode("send") as any, out };
    }

    it("sends as the mailbox with the recipients, subject and body of the message", async () => {
      const before = graph.sent.length;
      const { node, out } = await loadSender({ to: "email.from[0].address", toType: "msg" });
      node.receive({
        topic: "Your alarm email could not be read",
        payload: "Zone missing in: Camera 7 alarm",
        email: { from: [{ address: "camera7@site.contoso.test", name: "Camera 7" }] },
        cc: "ops@centre.test, night@centre.test",
      });
      const deadline = Date.now() + 5000;
      while (out.length === 0) {
        if (Date.now() > deadline) assert.fail("nothing sent");
        await sleep(20);
      }
      const sent = graph.sent.slice(before);
      assert.equal(sent.length, 1);
      assert.equal(sent[0]?.mailbox.toLowerCase(), MAILBOX);
      const message = sent[0]?.body.message;
      assert.equal(message.subject, "Your alarm email could not be read");
      assert.deepEqual(message.body, { contentType: "Text", content: "Zone missing in: Camera 7 alarm" });
      assert.deepEqual(
        message.toRecipients.map((r: any) => r.emailAddress.address),
        ["camera7@site.contoso.test"],
      );
      assert.deepEqual(
        message.ccRecipients.map((r: any) => r.emailAddress.address),
        ["ops@centre.test", "night@centre.test"],
      );
      assert.equal(out[0].sent.from, MAILBOX);
    });

    it("sends nothing and says why when the message has no recipient", async () => {
      const before = graph.sent.length;
      const { node } = await loadSender({});
      node.receive({ topic: "x", payload: "y" });
      await sleep(300);
      assert.equal(graph.sent.length, before);
      assert.match(callsOf(node, "error").map(String).join("\n"), /no recipient/);
      assert.match(String((callsOf(node, "status").at(-1) as any)?.text), /nothing sent/);
    });
  });
});
