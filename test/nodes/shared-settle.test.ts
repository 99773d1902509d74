// Shared mode from the line-driver's side: an email of a shared connector is held once its alarm is
// durable and settled only on the receiver's ACK, and the fence (mayDeliver) decides whether the alarm
// goes on the wire. The connector is a stand-in node type registered here; the receiver is the real
// DC-09 stand-in.
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { NodeAPI } from "node-red";
import { helper, useUserDir } from "../helpers/connector-flow";
import { until } from "../helpers/until";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";

const lineDriverNode = require("../../nodes/line-driver.js");

type Clearance = "yes" | "wait" | "lost";
interface Ref {
  connector: string;
  uidValidity: string;
  uid: number;
  messageId: string | null;
}

/** What the stand-in connector was asked, and how it answers. */
const connector = {
  holds: [] as Ref[],
  settles: [] as { ref: Ref; outcome: string; at: number }[],
  /** Refs this connector's current life handed out; any other one it does not know ("lost", like a watcher would say). */
  known: new Set<string>(),
  answer: "yes" as Clearance,
  reset() {
    this.holds = [];
    this.settles = [];
    this.known.clear();
    this.answer = "yes";
  },
};
const refKey = (r: Ref) => `${r.uidValidity}/${r.uid}`;

function standInConnector(RED: NodeAPI) {
  RED.nodes.registerType("stand-in-connector", function (this: any, def: any) {
    RED.nodes.createNode(this, def);
    this.settle = async (ref: Ref, outcome: string) => {
      connector.settles.push({ ref, outcome, at: Date.now() });
      return true;
    };
    if (def.shared) {
      this.shared = {
        hold: async (ref: Ref) => {
          connector.holds.push(ref);
          return true;
        },
        mayDeliver: (ref: Ref): Clearance => (connector.known.has(refKey(ref)) ? connector.answer : "lost"),
      };
    }
  } as never);
}

let counter = 0;
function alarm(messageId: string) {
  return {
    account: "1234",
    eventCode: "BA",
    eventFormat: "SIA",
    qualifier: "new",
    zone: 1,
    area: 1,
    user: null,
    text: "Burglary zone 1",
    occurredAt: "2026-11-27T08:00:00.000Z",
    attachments: [],
    source: { messageId, from: "panel@site.test", subject: "Alarm", receivedAt: null },
  };
}

/** An email as the connector offers it: a fresh ref it knows, and the alarm the data-map made of it. */
function offer(messageId: string, uid: number, uidValidity = "life-1") {
  const emailRef: Ref = { connector: "conn", uidValidity, uid, messageId };
  connector.known.add(refKey(emailRef));
  return { alarm: alarm(messageId), emailRef };
}

async function load(receiverPort: number, shared = true) {
  await helper.load(
    [lineDriverNode, standInConnector],
    [
      { id: "conn", type: "stand-in-connector", shared } as never,
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
        wires: [["out"]],
      } as never,
      { id: "out", type: "helper" },
    ],
  );
  const outcomes: any[] = [];
  helper.getNode("out").on("input", (m: any) => outcomes.push(m));
  return { node: helper.getNode("ld") as any, outcomes };
}

describe("line-driver with a shared email-connector", () => {
  let receiver: Dc09Receiver;
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  beforeEach(() => {
    connector.reset();
    useUserDir(`shared-settle-${process.pid}-${counter++}`);
  });
  afterEach(async () => {
    await helper.unload();
    await receiver?.close();
  });

  it("holds the email once the alarm is durable and settles it accepted only on the ACK", async () => {
    receiver = await startDc09Receiver({ behaviour: "silent" });
    const { node, outcomes } = await load(receiver.tcpPort);
    const msg = offer("held@test", 1);
    node.receive(msg);
    await until(() => receiver.received.length >= 1, 5000, "the alarm on the wire");
    assert.deepEqual(connector.holds, [msg.emailRef], "held once, when durable");
    assert.equal(connector.settles.length, 0, "not settled while the receiver has not ACKed");
    receiver.behaviour = "ack";
    await until(() => connector.settles.length === 1, 10_000, "the settlement");
    assert.deepEqual(connector.settles[0]?.ref, msg.emailRef);
    assert.equal(connector.settles[0]?.outcome, "accepted");
    const ackAt = receiver.acked[0]?.at ?? Number.POSITIVE_INFINITY;
    assert.ok((connector.settles[0]?.at ?? 0) >= ackAt, "settled after the ACK");
    await until(() => outcomes.length === 1, 5000, "the outcome");
    assert.equal(outcomes[0].payload.status, "delivered");
  });

  it('keeps an alarm back while the connector says "wait" (others go on) and sends it on "yes"', async () => {
    receiver = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await load(receiver.tcpPort);
    connector.answer = "wait";
    node.receive(offer("waits@test", 1));
    node.receive({ alarm: { ...alarm("plain@test"), account: "5678" } }); // no email of a shared connector
    await until(() => outcomes.length === 1, 5000, "the alarm without a shared email");
    await sleep(1500);
    assert.deepEqual(
      receiver.acked.map((a) => a.frame.account),
      ["5678"],
      "only the alarm without a held email went out",
    );
    assert.equal(connector.settles.length, 0);
    connector.answer = "yes";
    await until(() => connector.settles.length === 1, 5000, "the settlement after yes");
    assert.deepEqual(
      receiver.acked.map((a) => a.frame.account),
      ["5678", "1234"],
    );
    assert.equal(connector.settles[0]?.outcome, "accepted");
  });

  it('drops an alarm the connector says another gateway took over ("lost") and reports "taken-over"', async () => {
    receiver = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await load(receiver.tcpPort);
    connector.answer = "lost";
    node.receive(offer("lost@test", 1));
    await until(() => outcomes.length === 1, 5000, "the outcome");
    assert.equal(outcomes[0].topic, "taken-over");
    assert.equal(outcomes[0].payload.status, "taken-over");
    await sleep(300);
    assert.equal(receiver.received.length, 0, "nothing sent");
    assert.equal(connector.settles.length, 0, "the email is the other gateway's to settle");
    // Recorded like a delivered alarm: the same email offered again is settled at once, not sent.
    node.receive(offer("lost@test", 2));
    await until(() => connector.settles.length === 1, 5000, "settled at once");
    assert.equal(connector.settles[0]?.outcome, "accepted");
    assert.equal(receiver.received.length, 0);
  });

  it("settles the email rejected when the receiver refuses the alarm", async () => {
    receiver = await startDc09Receiver({ behaviour: "duh" });
    const { node, outcomes } = await load(receiver.tcpPort);
    const msg = offer("refused@test", 1);
    node.receive(msg);
    await until(() => outcomes.length === 1, 20_000, "the refusal");
    assert.equal(outcomes[0].payload.status, "failed");
    await until(() => connector.settles.length === 1, 5000, "the settlement");
    assert.deepEqual(connector.settles[0], { ...connector.settles[0], ref: msg.emailRef, outcome: "rejected" });
  });

  it("settles an email offered again after its alarm was ACKed at once, without sending it again", async () => {
    receiver = await startDc09Receiver({ behaviour: "ack" });
    const { node } = await load(receiver.tcpPort);
    node.receive(offer("again@test", 1));
    await until(() => connector.settles.length === 1, 5000, "first settlement");
    const again = offer("again@test", 9, "life-2");
    node.receive(again);
    await until(() => connector.settles.length === 2, 5000, "second settlement");
    assert.deepEqual(connector.settles[1]?.ref, again.emailRef);
    assert.equal(connector.settles[1]?.outcome, "accepted");
    assert.equal(connector.holds.length, 1, "the second copy is not held");
    await sleep(300);
    assert.equal(receiver.acked.length, 1, "one alarm");
  });

  it("after a restart between durable and ACK, settles the ref the connector offers again", async () => {
    receiver = await startDc09Receiver({ behaviour: "ack" });
    let { node } = await load(receiver.tcpPort);
    connector.answer = "wait";
    const first = offer("restart@test", 1);
    node.receive(first);
    await until(() => connector.holds.length === 1, 5000, "held");
    await helper.unload(); // Node-RED stops: the alarm is in the outbox, the email in the claim folder
    connector.known.clear(); // the connector's new life does not know the old ref
    connector.answer = "yes";
    ({ node } = await load(receiver.tcpPort));
    await sleep(1500);
    assert.equal(receiver.received.length, 0, "the old ref is not enough to send: the email is not offered yet");
    const reoffered = offer("restart@test", 1, "life-2");
    node.receive(reoffered);
    await until(() => connector.settles.length === 1, 5000, "settled after the ACK");
    assert.deepEqual(connector.holds, [first.emailRef, reoffered.emailRef]);
    assert.deepEqual(connector.settles[0]?.ref, reoffered.emailRef);
    assert.equal(connector.settles[0]?.outcome, "accepted");
    assert.equal(receiver.acked.length, 1, "one alarm");
  });

  it("settles right when durable, before any ACK, for a connector that does not share its mailbox", async () => {
    receiver = await startDc09Receiver({ behaviour: "silent" });
    const { node } = await load(receiver.tcpPort, false);
    const msg = offer("plain@test", 1);
    node.receive(msg);
    await until(() => connector.settles.length === 1, 5000, "settled when durable");
    assert.equal(connector.settles[0]?.outcome, "accepted");
    assert.equal(receiver.acked.length, 0);
    assert.equal(connector.holds.length, 0);
  });
});
