// No stranger takes a line (issue #20, point 2). Whoever holds the line to the automation software, or can
// answer for the DC-09 receiver, receives the alarms and with an ACK makes them count as delivered. On loopback,
// 127.0.0.2 plays another host: Linux routes all of 127.0.0.0/8 to lo, and the gateway sees that address.
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeDc09Response } from "../../src/core/dc09";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { until } from "../helpers/until";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { freePort } from "../standin/ports";
import { type SurgardAutomation, startAutomationClient } from "../standin/surgard-automation";

const lineDriverNode = require("../../nodes/line-driver.js");

let counter = 0;
function alarm(overrides: Record<string, unknown> = {}) {
  counter++;
  return {
    account: "1234",
    eventCode: "130",
    eventFormat: "CID",
    siaCode: "BA",
    qualifier: "new",
    zone: 15,
    area: 1,
    user: null,
    text: "Burglary zone 15",
    occurredAt: "2026-11-27T08:00:00.000Z",
    attachments: [],
    source: {
      messageId: `st-${process.pid}-${counter}@test`,
      from: "panel@site.test",
      subject: "Alarm",
      receivedAt: null,
    },
    ...overrides,
  };
}

/** A Sur-Gard line-driver in server role; `props` replace the defaults (undefined removes one). */
async function loadSurgardServer(props: Record<string, unknown>) {
  const def: Record<string, unknown> = {
    id: "ld",
    type: "line-driver",
    protocol: "surgard",
    format: "auto",
    sgRole: "server",
    sgReceiver: 1,
    sgLine: 1,
    sgLineDigits: "3",
    sgAccountDigits: "auto",
    sgAckTimeout: 0.5,
    sgAttempts: 3,
    sgHeartbeat: 30,
    wires: [["out"]],
  };
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) delete def[k];
    else def[k] = v;
  }
  return load(def);
}

async function load(def: Record<string, unknown>) {
  useUserDir(`line-driver-strangers-${counter++}`);
  await helper.load([lineDriverNode], [def as never, { id: "out", type: "helper" }]);
  const outcomes: any[] = [];
  helper.getNode("out").on("input", (m: any) => outcomes.push(m));
  return { node: helper.getNode("ld") as any, outcomes };
}

const events = (a: SurgardAutomation) => a.received.filter((r) => r.packet.kind !== "heartbeat");
const heartbeats = (a: SurgardAutomation) => a.received.filter((r) => r.packet.kind === "heartbeat");
const texts = (node: any, method: string) => callsOf(node, method).map(String);
/** Nothing at all reached it: no packet it could read, none it could not. */
const heardNothing = (a: SurgardAutomation) => a.received.length === 0 && a.rejected.length === 0;

describe("line-driver: no stranger takes a line", () => {
  const peers: { close(): Promise<void> | void }[] = [];
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(async () => {
    await helper.unload();
    for (const peer of peers.splice(0)) await peer.close();
  });
  const automationFrom = async (localAddress: string, port: number) => {
    const a = await startAutomationClient({ lineDigits: 3, port, localAddress });
    peers.push(a);
    return a;
  };

  it("Sur-Gard: a client from an address not allowed gets nothing, even when it would ACK; the allowed one gets the alarm", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadSurgardServer({ sgHost: "127.0.0.1", sgPort: port, sgAllow: "127.0.0.1" });
    // The stranger ACKs everything: were it given the line, the alarm would be reported delivered.
    const stranger = await automationFrom("127.0.0.2", port);
    node.receive({ alarm: alarm() });
    await until(() => stranger.connections >= 3, 5000, "the stranger to be closed and dial again twice");
    await sleep(300);
    assert.equal(outcomes.length, 0, "nothing is delivered to a stranger");
    assert.ok(heardNothing(stranger), "the stranger received no byte");
    const refusals = texts(node, "warn").filter((w) => /127\.0\.0\.2:\d+ refused: not an allowed automation/.test(w));
    assert.equal(refusals.length, 1, `one log line for a host that keeps dialling: ${texts(node, "warn").join(" | ")}`);
    assert.match(refusals[0]!, /allowed: 127\.0\.0\.1\).*add its address/);
    await until(
      () =>
        /failing: connection from 127\.0\.0\.2 refused: not an allowed/.test(
          (callsOf(node, "status").at(-1) as any).text,
        ),
      5000,
      "the status to name the refused host",
    );

    const automation = await automationFrom("127.0.0.1", port);
    await until(() => outcomes.length === 1, 5000, "the alarm delivered to the allowed automation");
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.match(outcomes[0].payload.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(events(automation).length, 1);
    // Still dialling while the line is live: still nothing.
    const before = stranger.connections;
    await until(() => stranger.connections > before, 5000, "another attempt by the stranger");
    assert.ok(heardNothing(stranger));
  });

  it("Sur-Gard: an allowed second client does not take a live line that still answers", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadSurgardServer({ sgHost: "127.0.0.1", sgPort: port, sgAllow: "127.0.0.0/8" });
    const live = await automationFrom("127.0.0.1", port);
    await live.waitFor((r) => r.length >= 1); // the heartbeat that proves a new line
    const newcomer = await automationFrom("127.0.0.2", port);
    await until(() => newcomer.connections >= 2, 5000, "the newcomer to be closed and dial again");
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.match(outcomes[0].payload.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(events(live).length, 1);
    assert.ok(heardNothing(newcomer), "the newcomer received no byte");
    assert.equal(live.connections, 1, "the live line was never dropped");
    assert.ok(heartbeats(live).length >= 2, "the live line was asked (a heartbeat) before the newcomer was refused");
    const refusal = texts(node, "warn").find((w) => /127\.0\.0\.2:\d+ refused/.test(w));
    assert.match(String(refusal), /the automation software at 127\.0\.0\.1:\d+ holds the line and still answers/);
  });

  it("Sur-Gard: a live line that NAKs heartbeats still answers: an allowed newcomer does not take it", async () => {
    const port = await freePort();
    const { node } = await loadSurgardServer({ sgHost: "127.0.0.1", sgPort: port, sgAllow: "127.0.0.0/8" });
    const live = await automationFrom("127.0.0.1", port);
    live.behaviour = "nak"; // e.g. it expects another receiver number: a configuration problem, not a dead line
    await live.waitFor((r) => r.length >= 1);
    const newcomer = await automationFrom("127.0.0.2", port);
    await until(() => newcomer.connections >= 3, 5000, "the newcomer to be closed and dial again twice");
    assert.ok(heardNothing(newcomer), "the newcomer received no byte");
    assert.equal(live.connections, 1, "the live line was never dropped");
    assert.ok(texts(node, "warn").some((w) => /127\.0\.0\.2:\d+ refused: .*still answers/.test(w)));
  });

  it("Sur-Gard: a newcomer takes the line once the live one stops answering (an automation that reconnected)", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadSurgardServer({ sgHost: "127.0.0.1", sgPort: port, sgAllow: "127.0.0.0/8" });
    const old = await automationFrom("127.0.0.1", port);
    await old.waitFor((r) => r.length >= 1);
    old.behaviour = "silent"; // its end is gone, the TCP connection is not (yet)
    const fresh = await automationFrom("127.0.0.2", port);
    await until(() => fresh.received.length >= 1, 5000, "the newcomer to get the line (and its heartbeat)");
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.match(outcomes[0].payload.address, /^127\.0\.0\.2:\d+$/);
    assert.equal(fresh.connections, 1, "taken on its first connection, after one missed ACK");
    assert.equal(events(old).length, 0);
    assert.ok(texts(node, "log").some((l) => /127\.0\.0\.2:\d+; it takes the line from 127\.0\.0\.1:\d+/.test(l)));
  });

  it("Sur-Gard: a flow saved before the allow-list listens on loopback only and says what to set", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadSurgardServer({ sgPort: port, sgAllow: undefined });
    const warning = texts(node, "warn").find((w) => /only automation software on this machine/.test(w));
    assert.match(String(warning), new RegExp(`127\\.0\\.0\\.1 port ${port}.*'Allowed automation'`));
    await until(
      () => texts(node, "log").some((l) => l.includes(`listening on 127.0.0.1 port ${port}`)),
      5000,
      "the listening log line",
    );
    // Another interface of this machine, as a host on the network would reach it: nothing listens there.
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === "IPv4" && !i.internal)?.address;
    if (lan) {
      const error = await new Promise<string>((resolve) => {
        const socket = connect({ host: lan, port });
        socket.once("connect", () => {
          socket.destroy();
          resolve("connected");
        });
        socket.once("error", (err: NodeJS.ErrnoException) => resolve(String(err.code)));
      });
      assert.equal(error, "ECONNREFUSED", `${lan}:${port}`);
    }
    const automation = await automationFrom("127.0.0.1", port);
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.equal(events(automation).length, 1);
  });

  it("Sur-Gard: an allow-list entry that is not an address stops the node with the reason", async () => {
    const { node } = await loadSurgardServer({ sgPort: await freePort(), sgAllow: "10.0.0.5, automation.example" });
    assert.ok(
      texts(node, "error").some((e) =>
        /line-driver not started: allowed automation addresses: "automation\.example" is not an IP address or CIDR/.test(
          e,
        ),
      ),
    );
    assert.equal((callsOf(node, "status").at(-1) as any).fill, "red");
  });

  describe("DC-09 over UDP", () => {
    let receiver: Dc09Receiver | undefined;
    const sockets: UdpSocket[] = [];
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.close();
      await receiver?.close();
      receiver = undefined;
    });
    const bound = async (address: string, port = 0) => {
      const socket = createSocket("udp4");
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind(port, address, () => resolve());
      });
      return socket;
    };

    it("an ACK from another address, even from the receiver's port, is ignored; the receiver's own is taken", async () => {
      receiver = await startDc09Receiver({ behaviour: "silent" });
      // The spoofer sends from the receiver's port on another address; a third sender from the receiver's
      // address on another port.
      const spoofer = await bound("127.0.0.2", receiver.udpPort);
      const sidePort = await bound("127.0.0.1");
      const { outcomes } = await load({
        id: "ld",
        type: "line-driver",
        protocol: "dc09",
        host: "127.0.0.1",
        port: receiver.udpPort,
        transport: "udp",
        receiver: "1",
        prefix: "1",
        format: "auto",
        ackTimeout: 1,
        attempts: 3,
        supervision: 0,
        supervisionAccount: "0000",
        sendText: false,
        sendTime: false,
        wires: [["out"]],
      });
      helper.getNode("ld").receive({ alarm: alarm({ eventFormat: "SIA", eventCode: "BA" }) });
      await receiver.waitFor((r) => r.length >= 1);
      const first = receiver.received[0]!;
      const [ip, port] = [first.remote.slice(0, first.remote.lastIndexOf(":")), Number(first.remote.split(":").at(-1))];
      const f = first.frame;
      const ack = encodeDc09Response({
        kind: "ACK",
        seq: f.seq,
        receiver: f.receiver ?? "0",
        prefix: f.prefix,
        account: f.account,
      });
      spoofer.send(ack, port, ip);
      sidePort.send(ack, port, ip);
      await sleep(500);
      assert.equal(outcomes.length, 0, "a forged ACK does not make the alarm delivered");
      receiver.behaviour = "ack";
      await until(() => outcomes.length === 1, 6000, "outcome");
      assert.equal(outcomes[0].payload.status, "delivered");
      assert.ok(outcomes[0].payload.sends >= 2, `sends ${outcomes[0].payload.sends}: delivered on the receiver's ACK`);
      assert.equal(receiver.acked.length, 1);
    });
  });
});
