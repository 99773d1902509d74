// The email-connector in shared mode against the real Dovecot, with a line-driver and the DC-09
// receiver stand-in: an email is claimed into this gateway's claim folder before it goes out, stays
// there while its alarm waits for the receiver, and goes back (read) only after the ACK.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { helper, useUserDir } from "../helpers/connector-flow";
import { emailConnectorDef } from "../helpers/flows";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX, TENANT_ID } from "../helpers/tenant";
import { until } from "../helpers/until";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { GraphStandin } from "../standin/graph";
import { freePort } from "../standin/ports";

const configNode = require("../../nodes/o365-oauth-config.js");
const connectorNode = require("../../nodes/email-connector.js");
const lineDriverNode = require("../../nodes/line-driver.js");

const BASE = "Alarm gateways";

describe("email-connector sharing its mailbox", () => {
  let stack: MailStack;
  let graph: GraphStandin;
  let receiver: Dc09Receiver | undefined;
  let n = 0;

  before(async () => {
    const graphHost = `127.0.0.1:${await freePort()}`;
    stack = await startMailStack("connector-shared", { graphHost, extraFolders: ["s1", "s2"] });
    graph = new GraphStandin({
      certs: stack.tenant.certs,
      signingKey: { kid: stack.tenant.entra.kid, publicKeyPem: stack.tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: graphHost,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review", "s1", "s2"],
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

  /** The mailbox as each transport's server shows it: subjects and read flags of a folder. */
  const mailboxOf = (transport: "imap" | "graph") =>
    transport === "imap"
      ? {
          append: (raw: string, folder: string) => stack.dovecot.append(MAILBOX, raw, { folder }).then(() => undefined),
          list: async (folder: string) =>
            (await stack.dovecot.list(MAILBOX, folder)).map((m) => ({
              subject: m.subject,
              read: m.flags.includes("\\Seen"),
            })),
        }
      : {
          append: async (raw: string, folder: string) => {
            graph.deliver(MAILBOX, raw, folder);
          },
          list: async (folder: string) => {
            try {
              return graph.messages(MAILBOX, folder).map((m) => ({ subject: m.subject, read: m.isRead }));
            } catch {
              return []; // a folder not made yet
            }
          },
        };
  afterEach(async () => {
    await helper.unload();
    await receiver?.close();
    receiver = undefined;
  });

  async function load(props: Record<string, unknown>, receiverPort = 9) {
    useUserDir(`connector-shared-${process.pid}-${++n}`);
    await helper.load(
      [configNode, connectorNode, lineDriverNode],
      [
        { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
        {
          id: "conn",
          ...emailConnectorDef({ oauth: "cfg", shared: true, sharedFolder: BASE, ...props }),
          wires: [["out"]],
        },
        {
          id: "ld",
          type: "line-driver",
          host: "127.0.0.1",
          port: receiverPort,
          transport: "tcp",
          receiver: "1",
          prefix: "1",
          format: "auto",
          ackTimeout: 1,
          attempts: 2,
          supervision: 0,
          supervisionAccount: "0000",
          sendText: false,
          sendTime: false,
          wires: [["done"]],
        },
        { id: "out", type: "helper" },
        { id: "done", type: "helper" },
      ] as never,
      { cfg: { clientSecret: CLIENT_SECRET } },
    );
    const conn: any = helper.getNode("conn");
    const statuses: string[] = [];
    if (conn) {
      for (const call of conn.status.getCalls()) if (call.thisValue === conn) statuses.push(call.firstArg.text ?? "");
      conn.on("call:status", (call: { firstArg: { text?: string } }) => statuses.push(call.firstArg.text ?? ""));
    }
    return { conn, statuses };
  }

  for (const transport of ["imap", "graph"] as const)
    it(`${transport}: claims an email before sending it and puts it back read only after the receiver's ACK`, async () => {
      const mailbox = mailboxOf(transport);
      receiver = await startDc09Receiver({ behaviour: "silent" });
      const folder = transport === "imap" ? "s1" : "s2";
      const { conn, statuses } = await load({ folder, pollInterval: 2, transport, graphPoll: 0.5 }, receiver.tcpPort);
      assert.ok(conn.shared, "the line-driver is offered hold and mayDeliver");
      await until(() => statuses.some((s) => /^watching [^,]+, shared by 1 gateway/.test(s)), 20_000, "shared status");
      const sent: any[] = [];
      helper.getNode("out").on("input", (msg: any) => {
        sent.push(msg);
        // The data-map's part, in short: the email becomes an alarm for the line-driver.
        const alarm = {
          account: "1234",
          eventCode: "BA",
          eventFormat: "SIA",
          qualifier: "new",
          zone: 1,
          area: 1,
          user: null,
          text: "",
          occurredAt: new Date().toISOString(),
          attachments: [],
          source: { messageId: msg.email.messageId, from: "", subject: msg.topic, receivedAt: null },
        };
        helper.getNode("ld").receive({ ...msg, alarm });
      });
      await mailbox.append(alarmEmail("Shared alarm"), folder);
      await until(() => sent.length === 1, 10_000, "the email sent");
      const instance = String(sent[0].emailRef.uidValidity).replace(/^shared:/, "");
      assert.ok(instance, "the ref names this gateway");
      const claimFolder = `${BASE}/${instance}`;
      assert.deepEqual(
        (await mailbox.list(claimFolder)).map((m) => m.subject),
        ["Shared alarm"],
        "in the claim folder",
      );
      assert.equal((await mailbox.list(folder)).length, 0, "not in the watched folder");
      await until(() => receiver!.received.length >= 1, 10_000, "the alarm on the wire");
      await sleep(4000); // longer than the settlement's tie-break wait: nothing may move before the ACK
      assert.equal((await mailbox.list(claimFolder)).length, 1, "still claimed while not ACKed");
      receiver.behaviour = "ack";
      await until(() => receiver!.acked.length === 1, 15_000, "the ACK");
      // One listing at a time: listings fired every few ms without waiting shared one admin session, and
      // one's CLOSE could land under another's FETCH ("No mailbox selected": an unhandled rejection in CI).
      let back = await mailbox.list(folder);
      for (const deadline = Date.now() + 15_000; back.length !== 1 && Date.now() < deadline; ) {
        await sleep(100);
        back = await mailbox.list(folder);
      }
      assert.equal(back.length, 1, "the email back in the watched folder");
      assert.ok(back[0]?.read, "marked read");
      assert.equal((await mailbox.list(claimFolder)).length, 0, "gone from the claim folder");
    });

  it('refuses "all emails arriving from now on" in shared mode, saying why', async () => {
    const { statuses } = await load({ folder: "s1", take: "new" });
    await until(() => statuses.length > 0, 5000, "a status");
    assert.match(statuses[0] ?? "", /shared mailbox needs "Take: unread emails"/);
  });
});
