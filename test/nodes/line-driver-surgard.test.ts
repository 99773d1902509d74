// The line-driver speaking Sur-Gard to a real automation-software peer, in both roles.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { until } from "../helpers/until";
import { freePort } from "../standin/ports";
import {
  type AutomationBehaviour,
  type SurgardAutomation,
  startAutomationClient,
  startAutomationServer,
} from "../standin/surgard-automation";

const lineDriverNode = require("../../nodes/line-driver.js");

let counter = 0;
function alarm(overrides: Record<string, unknown> = {}) {
  counter++;
  return {
    account: "1234",
    eventCode: "130",
    eventFormat: "CID",
    qualifier: "new",
    zone: 15,
    area: 1,
    user: null,
    text: "Burglary zone 15",
    occurredAt: "2026-11-27T08:00:00.000Z",
    attachments: [],
    source: {
      messageId: `sg-${process.pid}-${counter}@test`,
      from: "panel@site.test",
      subject: "Alarm",
      receivedAt: null,
    },
    ...overrides,
  };
}

async function loadDriver(props: Record<string, unknown>) {
  useUserDir(`line-driver-sg-${counter++}`);
  await helper.load(
    [lineDriverNode],
    [
      {
        id: "ld",
        type: "line-driver",
        protocol: "surgard",
        format: "auto",
        sgRole: "client",
        sgHost: "127.0.0.1",
        sgReceiver: 1,
        sgLine: 1,
        sgLineDigits: "3",
        sgAccountDigits: "auto",
        sgAckTimeout: 0.5,
        sgAttempts: 3,
        sgHeartbeat: 30,
        ...props,
        wires: [["out"]],
      } as never,
      { id: "out", type: "helper" },
    ],
  );
  const outcomes: any[] = [];
  helper.getNode("out").on("input", (m: any) => outcomes.push(m));
  return { node: helper.getNode("ld") as any, outcomes };
}

const events = (a: SurgardAutomation) => a.received.filter((r) => r.packet.kind !== "heartbeat");
const text = (b: Buffer) => b.toString("latin1");

describe("line-driver (Sur-Gard automation protocol)", () => {
  let automation: SurgardAutomation | undefined;
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(async () => {
    await helper.unload();
    await automation?.close();
    automation = undefined;
  });

  it("as a client: delivers Contact ID to the automation's port and reports the ACK", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    const { node, outcomes } = await loadDriver({ sgPort: server.port });
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1, 5000, "outcome");
    const [first] = events(server);
    assert.equal(text(first!.bytes), "501001 181234E13001015\x14");
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.equal(outcomes[0].payload.protocol, "surgard");
    assert.equal(outcomes[0].payload.receiver, "automation");
    assert.equal(outcomes[0].payload.sends, 1);
  });

  it("as a server: the automation connects to the gateway's port and gets SIA packets (1-digit line)", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadDriver({ sgRole: "server", sgPort: port, sgLineDigits: "1", sgLine: 1 });
    automation = await startAutomationClient({ lineDigits: 1, port });
    node.receive({ alarm: alarm({ eventFormat: "SIA", eventCode: "BA", zone: 1 }) });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(text(events(automation)[0]!.bytes), "S011[#1234|Nri1/BA01]\x14");
    assert.equal(outcomes[0].payload.status, "delivered");
  });

  it("as a server: keeps alarms until an automation connects, then delivers them in order", async () => {
    const port = await freePort();
    const { node, outcomes } = await loadDriver({ sgRole: "server", sgPort: port });
    for (let zone = 1; zone <= 5; zone++) node.receive({ alarm: alarm({ zone }) });
    await sleep(700);
    assert.equal(outcomes.length, 0, "nothing delivered without a connection");
    const status = callsOf(node, "status").at(-1) as any;
    assert.equal(status.fill, "red");
    assert.match(status.text, /automation|connect/);
    automation = await startAutomationClient({ lineDigits: 3, port });
    await until(() => outcomes.length === 5, 10_000, "five outcomes");
    const zones = events(automation).map((r) => (r.packet.kind === "cid" ? Number(r.packet.zone) : -1));
    assert.deepEqual(zones, [1, 2, 3, 4, 5]);
  });

  for (const behaviour of ["nak", "silent", "disconnect"] as const) {
    it(`resends after ${behaviour === "nak" ? "a NAK" : behaviour === "silent" ? "silence" : "a dropped connection"}, then delivers once the automation ACKs`, async () => {
      const server = await startAutomationServer({ lineDigits: 3 });
      automation = server;
      let answered = 0;
      server.behaviour = (p) => {
        if (p.kind === "heartbeat") return "ack";
        answered++;
        return (answered <= 2 ? behaviour : "ack") as AutomationBehaviour;
      };
      const { node, outcomes } = await loadDriver({ sgPort: server.port, sgAttempts: 5 });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1, 8000, "outcome");
      const sent = events(server).map((r) => text(r.bytes));
      assert.equal(sent.length, 3, "sent three times");
      assert.equal(new Set(sent).size, 1, "the same packet each time");
      assert.equal(outcomes[0].payload.status, "delivered");
      assert.equal(outcomes[0].payload.sends, 3);
      if (behaviour === "disconnect") assert.ok(server.connections >= 3, "reconnected after each drop");
    });
  }

  it("marks the line failing after the resend count, sends only heartbeats until one is ACKed, then the alarm", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    server.behaviour = "silent";
    const { node, outcomes } = await loadDriver({ sgPort: server.port, sgAttempts: 2, sgAckTimeout: 0.3 });
    node.receive({ alarm: alarm() });
    await until(() => server.received.some((r) => r.packet.kind === "heartbeat"), 5000, "a heartbeat");
    const status = callsOf(node, "status").at(-1) as any;
    assert.equal(status.fill, "red");
    assert.match(status.text, /failing/);
    assert.equal(events(server).length, 2, "the alarm was sent twice, then only heartbeats");
    server.behaviour = "ack";
    await until(() => outcomes.length === 1, 8000, "outcome");
    const kinds = server.received.map((r) => r.packet.kind);
    assert.equal(kinds.at(-1), "cid", "the alarm went again after an ACKed heartbeat");
    assert.equal(kinds.at(-2), "heartbeat");
    await until(() => (callsOf(node, "status").at(-1) as any).fill === "green", 2000, "green status");
  });

  it("gives up on a packet NAKed 26 times while heartbeats are ACKed, says why, and goes on with the next", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    server.behaviour = (p) => (p.kind === "cid" && p.zone === "666" ? "nak" : "ack");
    const { node, outcomes } = await loadDriver({ sgPort: server.port, sgAttempts: 13, sgHeartbeat: 1 });
    node.receive({ alarm: alarm({ zone: 666 }) });
    node.receive({ alarm: alarm({ zone: 7 }) });
    await until(() => outcomes.length === 2, 8000, "two outcomes");
    assert.equal(outcomes[0].payload.status, "failed");
    assert.match(outcomes[0].payload.reason, /NAKed this packet 26 times/);
    assert.equal(outcomes[1].payload.status, "delivered");
    assert.ok(callsOf(node, "error").some((c) => /NAKed/.test(String(c))));
  });

  it("sends a heartbeat whenever the line has been quiet for the heartbeat interval", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    await loadDriver({ sgPort: server.port, sgHeartbeat: 0.5 });
    await sleep(2600);
    const beats = server.received.filter((r) => r.packet.kind === "heartbeat");
    assert.ok(beats.length >= 4 && beats.length <= 6, `about one heartbeat per 0.5 s (${beats.length})`);
    assert.equal(text(beats[0]!.bytes), `101000${" ".repeat(11)}@${" ".repeat(4)}\x14`);
    const gaps = beats.slice(1).map((b, i) => b.at - beats[i]!.at);
    assert.ok(
      gaps.every((g) => g >= 450 && g < 1600),
      `spacing ${gaps.join(", ")} ms`,
    );
  });

  it("refuses an account Contact ID cannot carry in 4 digits, with the reason, instead of truncating it", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    const { node, outcomes } = await loadDriver({ sgPort: server.port, sgAccountDigits: "4" });
    node.receive({ alarm: alarm({ account: "123ABC" }) });
    await until(() => outcomes.length === 1);
    assert.equal(outcomes[0].payload.status, "refused");
    assert.match(outcomes[0].payload.reason, /123ABC/);
    assert.ok(callsOf(node, "error").some((c) => /refused/.test(String(c))));
    await sleep(200);
    assert.equal(events(server).length, 0);
  });

  it("sends a 10-digit account in the 58 form", async () => {
    const server = await startAutomationServer({ lineDigits: 3 });
    automation = server;
    const { node, outcomes } = await loadDriver({ sgPort: server.port, sgAccountDigits: "auto" });
    node.receive({ alarm: alarm({ account: "123BCD" }) });
    await until(() => outcomes.length === 1);
    const packet = events(server)[0]!.packet;
    assert.equal(packet.kind === "cid" && packet.account, "0000123BCD");
    assert.match(text(events(server)[0]!.bytes), / 58/);
  });
});
