// email-connector against Exchange Online's IMAP as it is: the Dovecot stand-in advertises only
// Exchange's capabilities, here with the `ENABLE IMAP4rev2` some tenants offer since 2026, whose
// SEARCH has been reported broken (MailKit #2016). Dovecot's rawlog shows what the connector sent.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "node:tls";
import { helper, loadConnector, useUserDir } from "../helpers/connector-flow";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { MAILBOX } from "../helpers/tenant";

describe("email-connector on a tenant that advertises IMAP4rev2", () => {
  let stack: MailStack;

  before(async () => {
    stack = await startMailStack("connector-rev2", {
      capabilities: "exchange-imap4rev2",
      protocolLog: true,
      extraFolders: ["Alarms", "Alarmes reçues"],
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

  it("never sends ENABLE (stays in IMAP4rev1) and picks up every email, waiting and new", async () => {
    const folder = "Alarms";
    useUserDir("connector-rev2");
    const waiting = await Promise.all(
      Array.from({ length: 5 }, (_, i) => stack.dovecot.append(MAILBOX, alarmEmail(`Waiting ${i}`), { folder })),
    );
    const c = await loadConnector(stack, { folder, pollInterval: 1 });
    await c.waitForStatus(/watching/);
    const arriving: number[] = [];
    for (let i = 0; i < 10; i++) {
      arriving.push(await stack.dovecot.append(MAILBOX, alarmEmail(`New ${i}`), { folder }));
      if (i % 3 === 0) await sleep(200);
    }
    const sent = await c.waitForSent(15, 10_000);
    const subjects = sent.map((s) => s.msg.topic as string).sort();
    assert.deepEqual(subjects, [
      ...Array.from({ length: 10 }, (_, i) => `New ${i}`),
      ...Array.from({ length: 5 }, (_, i) => `Waiting ${i}`),
    ]);
    for (const s of sent) assert.equal(await c.settle(s.msg), true);
    await waitFor(async () => (await stack.dovecot.list(MAILBOX, folder)).every((m) => m.flags.includes("\\Seen")));
    assert.equal((await stack.dovecot.list(MAILBOX, folder)).length, waiting.length + arriving.length);
    await sleep(1200); // a poll after the settlements: nothing is offered twice
    assert.equal(c.sent.length, 15);

    const log = stack.dovecot.protocolLog();
    // The server did offer it: the stand-in is as the issue describes.
    assert.match(log.server, /OK \[CAPABILITY [^\]]*\bENABLE IMAP4rev2\b/);
    assert.match(log.client, /UID SEARCH UNSEEN/, "the connector's commands are in the log");
    assert.doesNotMatch(log.client, /\bENABLE\b/i, "no ENABLE of IMAP4rev2 (or CONDSTORE, UTF8=ACCEPT...)");
    // Nothing of rev2 or of extensions Exchange lacks: LIST without RETURN options, SEARCH without RETURN.
    assert.doesNotMatch(log.client, /\bRETURN\b|CONDSTORE|CHANGEDSINCE|UTF8/i);
  });

  it("watches a folder with a non-ASCII name without UTF8=ACCEPT (modified UTF-7, as Exchange needs)", async () => {
    const folder = "Alarmes reçues";
    useUserDir("connector-rev2-utf7");
    const c = await loadConnector(stack, { folder });
    await c.waitForStatus(/watching/);
    await stack.dovecot.append(MAILBOX, alarmEmail("Intrusion zone 2"), { folder });
    const [sent] = await c.waitForSent(1, 5000);
    assert.equal(sent?.msg.topic, "Intrusion zone 2");
    assert.equal(await c.settle(sent?.msg), true);
    await waitFor(async () => (await stack.dovecot.list(MAILBOX, folder)).every((m) => m.flags.includes("\\Seen")));
    assert.match(stack.dovecot.protocolLog().client, /SELECT "?Alarmes re&AOc-ues"?/);
  });
});

describe("the Dovecot stand-in, by default", () => {
  let stack: MailStack;
  before(async () => {
    stack = await startMailStack("exchange-capabilities");
  });
  after(async () => {
    await stack.stop();
  });

  it("advertises Exchange Online's capabilities before login: no CONDSTORE, ESEARCH, ENABLE, SPECIAL-USE", async () => {
    const greeting = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: stack.dovecot.imapsPort, servername: "localhost" });
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (text.includes("\r\n")) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.once("error", reject);
    });
    const listed = /\[CAPABILITY ([^\]]*)\]/.exec(greeting)?.[1]?.split(" ") ?? [];
    const exchange = "IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+".split(" ");
    for (const c of exchange) assert.ok(listed.includes(c), `${c} in ${listed.join(" ")}`);
    const extra = listed.filter((c) => !exchange.includes(c) && !c.startsWith("AUTH=") && !/^(CLIENT|BACKEND)/.test(c));
    assert.deepEqual(extra, [], "nothing Exchange does not offer");
    assert.ok(listed.includes("AUTH=XOAUTH2"));
  });
});

async function waitFor(check: () => Promise<boolean | undefined>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(50);
  }
}
