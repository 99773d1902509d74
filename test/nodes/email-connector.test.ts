// email-connector against the real Dovecot, with tokens from the Entra ID stand-in.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, type LoadedConnector, loadConnector, useUserDir } from "../helpers/connector-flow";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { MAILBOX } from "../helpers/tenant";

let folderCounter = 0;

describe("email-connector against Dovecot", () => {
  let stack: MailStack;
  let folder: string;

  before(async () => {
    stack = await startMailStack("connector", {
      extraFolders: Array.from({ length: 30 }, (_, i) => `t${i + 1}`),
    });
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await stack.stop();
  });
  afterEach(async () => {
    await helper.unload();
  });

  /** Each test watches a folder of its own, so tests do not see each other's emails. */
  function nextFolder(): string {
    folder = `t${++folderCounter}`;
    useUserDir(folder);
    return folder;
  }
  const append = (subject: string, opts: { flags?: string[]; raw?: string } = {}) =>
    stack.dovecot.append(MAILBOX, opts.raw ?? alarmEmail(subject), { folder, flags: opts.flags });
  const listed = () => stack.dovecot.list(MAILBOX, folder);
  const subjects = (c: LoadedConnector) => c.sent.map((s) => s.msg.topic as string);

  it("picks up a new email through IDLE within a second, as one message with the email's fields", async () => {
    const c = await loadConnector(stack, { folder: nextFolder() });
    await c.waitForStatus(/watching/);
    await sleep(300);
    const t0 = Date.now();
    await append("Alarm");
    const [first] = await c.waitForSent(1, 3000);
    const latency = (first?.at ?? 0) - t0;
    assert.ok(latency < 1500, `picked up after ${latency} ms`);
    const msg = first?.msg;
    assert.equal(msg.topic, "Alarm");
    assert.equal(msg.payload.trim(), "123588\nBA\n1\n1");
    assert.equal(msg.email.from[0].address, "camera7@site.contoso.test");
    assert.match(msg.email.messageId, /^alarm-.*@camera\.contoso\.test$/);
    assert.equal(msg.email.headers.subject, "Alarm");
    assert.deepEqual(Object.keys(msg.emailRef).sort(), ["connector", "messageId", "uid", "uidValidity"]);
    assert.equal(msg.emailRef.connector, c.id);
  });

  it("marks an email read only after it was settled, and never sends it twice meanwhile", async () => {
    const c = await loadConnector(stack, { folder: nextFolder(), pollInterval: 1 });
    await c.waitForStatus(/watching/);
    const uid = await append("Burglary zone 3");
    const [sent] = await c.waitForSent(1);
    await sleep(2500); // two safety checks pass while the email is in flight
    assert.equal(c.sent.length, 1, "sent once while in flight");
    assert.deepEqual((await listed()).find((m) => m.uid === uid)?.flags, [], "untouched before settlement");
    assert.equal(await c.settle(sent?.msg), true);
    await waitFor(async () => (await listed()).find((m) => m.uid === uid)?.flags.includes("\\Seen"));
    assert.equal(await c.settle(sent?.msg), false, "a second settlement is ignored");
  });

  it("settles when the flow sends the message back into the connector", async () => {
    const c = await loadConnector(stack, { folder: nextFolder() });
    await c.waitForStatus(/watching/);
    const uid = await append("Fire");
    const [sent] = await c.waitForSent(1);
    c.node.receive(sent?.msg);
    await waitFor(async () => (await listed()).find((m) => m.uid === uid)?.flags.includes("\\Seen"));
  });

  it("moves or deletes only after settlement, as configured", async () => {
    const moving = await loadConnector(stack, { folder: nextFolder(), onAccepted: "move", moveFolder: "Processed" });
    const uid = await append("Move me");
    const [sent] = await moving.waitForSent(1);
    assert.ok(
      (await listed()).some((m) => m.uid === uid),
      "still in the folder before settlement",
    );
    await moving.settle(sent?.msg);
    await waitFor(async () => !(await listed()).some((m) => m.uid === uid));
    assert.ok((await stack.dovecot.list(MAILBOX, "Processed")).some((m) => m.subject === "Move me"));
    await helper.unload();

    const deleting = await loadConnector(stack, { folder: nextFolder(), onAccepted: "delete" });
    const uid2 = await append("Delete me");
    const [sent2] = await deleting.waitForSent(1);
    assert.ok((await listed()).some((m) => m.uid === uid2));
    await deleting.settle(sent2?.msg);
    await waitFor(async () => !(await listed()).some((m) => m.uid === uid2));
  });

  it("sends rejected emails to the review folder, or leaves them unread and does not offer them again", async () => {
    const review = await loadConnector(stack, { folder: nextFolder(), reviewFolder: "Review" });
    await append("Garbage");
    const [sent] = await review.waitForSent(1);
    await review.settle(sent?.msg, "rejected");
    await waitFor(async () => (await listed()).length === 0);
    assert.ok((await stack.dovecot.list(MAILBOX, "Review")).some((m) => m.subject === "Garbage"));
    await helper.unload();

    const inPlace = await loadConnector(stack, { folder: nextFolder(), pollInterval: 1 });
    const uid = await append("Unparseable");
    const [sent2] = await inPlace.waitForSent(1);
    await inPlace.settle(sent2?.msg, "rejected");
    await sleep(1500);
    assert.deepEqual((await listed()).find((m) => m.uid === uid)?.flags, [], "left unread in place");
    await helper.unload();
    const restarted = await loadConnector(stack, { folder, pollInterval: 1 });
    await restarted.waitForStatus(/watching/);
    await sleep(1500);
    assert.equal(restarted.sent.length, 0, "not offered again after a restart");
  });

  it("offers an unsettled email again after the configured time, with the same identity", async () => {
    const c = await loadConnector(stack, { folder: nextFolder(), redeliverAfter: 1 });
    await append("Nobody settles me");
    const [first, second] = await c.waitForSent(2, 6000);
    assert.deepEqual(second?.msg.emailRef, first?.msg.emailRef);
    assert.ok((second?.at ?? 0) - (first?.at ?? 0) >= 1000);
  });

  it("catches up after a restart, oldest first, each email exactly once", async () => {
    const f = nextFolder();
    const first = await loadConnector(stack, { folder: f });
    await append("before-1");
    const [s1] = await first.waitForSent(1);
    await first.settle(s1?.msg);
    await helper.unload();
    for (const s of ["down-1", "down-2", "down-3"]) await append(s);
    const again = await loadConnector(stack, { folder: f, pollInterval: 1 });
    await again.waitForSent(3);
    await sleep(1500);
    assert.deepEqual(subjects(again), ["down-1", "down-2", "down-3"]);
  });

  it("emits a backlog waiting at start exactly once, then new ones once", async () => {
    nextFolder();
    for (let i = 0; i < 50; i++) await append(`backlog-${i}`);
    await append("already read", { flags: ["\\Seen"] });
    const c = await loadConnector(stack, { folder, pollInterval: 1 });
    await c.waitForSent(50);
    await append("live-1");
    await c.waitForSent(51);
    await sleep(2200);
    const got = subjects(c);
    assert.equal(got.length, 51);
    assert.equal(new Set(got).size, 51, "no duplicates");
    assert.deepEqual(
      got.slice(0, 50),
      Array.from({ length: 50 }, (_, i) => `backlog-${i}`),
    );
    assert.ok(!got.includes("already read"));
  });

  it('"all emails arriving from now on" ignores what was there and takes read ones that arrive', async () => {
    nextFolder();
    await append("old unread");
    const c = await loadConnector(stack, { folder, take: "new" });
    await c.waitForStatus(/watching/);
    await append("new but read", { flags: ["\\Seen"] });
    await append("new unread");
    await c.waitForSent(2);
    await sleep(500);
    assert.deepEqual(subjects(c), ["new but read", "new unread"]);
  });

  it("reconnects after Dovecot restarts, takes what arrived meanwhile, and repeats nothing in flight", async () => {
    const c = await loadConnector(stack, { folder: nextFolder(), pollInterval: 1 });
    await c.waitForStatus(/watching/);
    await append("in flight at restart");
    await c.waitForSent(1);
    await stack.dovecot.stop();
    await c.waitForStatus(/reconnecting in \d+ s/);
    await stack.dovecot.start();
    await append("while reconnecting");
    const [, sent] = await c.waitForSent(2, 15_000);
    assert.equal(sent?.msg.topic, "while reconnecting");
    await append("after reconnect");
    await c.waitForSent(3, 5000);
    await sleep(2200); // two safety checks
    assert.deepEqual(subjects(c), ["in flight at restart", "while reconnecting", "after reconnect"]);
  });

  it("notices a renumbered folder (UIDVALIDITY) and neither repeats settled emails nor skips unsettled ones", async () => {
    const c = await loadConnector(stack, { folder: nextFolder(), pollInterval: 1 });
    await append("settled before");
    await append("unsettled before");
    const [a] = await c.waitForSent(2);
    await c.settle(a?.msg, "rejected"); // left unread in place: only our progress file knows it is done
    await stack.dovecot.resetUidValidity(MAILBOX, folder);
    await append("after renumbering"); // Dovecot drops sessions whose view became inconsistent
    await waitFor(() => c.sent.some((s) => s.msg.topic === "after renumbering"), 15_000);
    await sleep(1500);
    const warned = callsOf(c.node, "warn").map(String);
    assert.ok(
      warned.some((w: string) => /UIDVALIDITY .* changed/.test(w)),
      warned.join("\n"),
    );
    const after = c.sent.slice(2).map((s) => s.msg.topic);
    assert.ok(!after.includes("settled before"), `settled email not repeated: ${after}`);
    assert.ok(after.includes("unsettled before"), "unsettled email offered again");
    assert.ok(c.sent.slice(2).every((s) => s.msg.emailRef.uidValidity !== a?.msg.emailRef.uidValidity));
  });

  it("names a folder that does not exist, in red, instead of retrying silently", async () => {
    useUserDir("missing-folder");
    const missing = await loadConnector(stack, { folder: "No Such Folder" });
    const text = await missing.waitForStatus(/cannot open folder "No Such Folder"/);
    assert.equal(missing.statuses.find((s) => s.text === text)?.fill, "red");
    await helper.unload();
    const badMove = await loadConnector(stack, { folder: nextFolder(), onAccepted: "move", moveFolder: "Nowhere" });
    await badMove.waitForStatus(/folder "Nowhere" cannot be used/);
    assert.equal(badMove.sent.length, 0, "nothing taken that could not be finished");
  });

  it("refuses a second connector on the same folder", async () => {
    const [a, b] = await loadTwo(stack, nextFolder());
    const texts = [a, b].map((n) =>
      callsOf(n, "status")
        .map((x: any) => x.text)
        .join("|"),
    );
    assert.equal(texts.filter((t) => /folder already watched/.test(t)).length, 1, texts.join(" / "));
    const errors = callsOf(b, "error").map(String).join("\n");
    assert.match(errors, /already watched by email-connector connA/);
  });
});

async function loadTwo(stack: MailStack, folder: string): Promise<any[]> {
  const configNode = require("../../nodes/o365-oauth-config.js");
  const connectorNode = require("../../nodes/email-connector.js");
  const common = {
    type: "email-connector",
    oauth: "cfg",
    mailbox: MAILBOX,
    folder,
    take: "unseen",
    onAccepted: "seen",
  };
  await helper.load(
    [configNode, connectorNode],
    [
      { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
      { id: "connA", ...common, wires: [[]] },
      { id: "connB", ...common, wires: [[]] },
    ],
    { cfg: { clientSecret: stack.tenant.credentials.clientSecret } },
  );
  return [helper.getNode("connA"), helper.getNode("connB")];
}

async function waitFor(check: () => unknown, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`condition not met within ${timeoutMs} ms: ${check.toString()}`);
}
