// The line-driver against a real DC-09 receiver over TCP and UDP sockets.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { until } from "../helpers/until";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";

const lineDriverNode = require("../../nodes/line-driver.js");

let counter = 0;
function alarm(overrides: Record<string, unknown> = {}) {
  counter++;
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
    source: {
      messageId: `m-${process.pid}-${counter}@test`,
      from: "panel@site.test",
      subject: "Alarm",
      receivedAt: null,
    },
    ...overrides,
  };
}

async function loadDriver(props: Record<string, unknown>, credentials: Record<string, string> = {}) {
  useUserDir(`line-driver-${counter++}`);
  await helper.load(
    [lineDriverNode],
    [
      {
        id: "ld",
        type: "line-driver",
        host: "127.0.0.1",
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
        ...props,
        wires: [["out"]],
      } as never,
      { id: "out", type: "helper" },
    ],
    { ld: credentials },
  );
  const outcomes: any[] = [];
  helper.getNode("out").on("input", (m: any) => outcomes.push(m));
  return { node: helper.getNode("ld") as any, outcomes };
}

describe("line-driver (SIA DC-09)", () => {
  let primary: Dc09Receiver;
  let backup: Dc09Receiver;
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(async () => {
    await helper.unload();
    await primary?.close();
    await backup?.close();
    backup = undefined as unknown as Dc09Receiver;
  });

  for (const transport of ["tcp", "udp"] as const) {
    it(`delivers an alarm over ${transport.toUpperCase()} and reports the ACK`, async () => {
      primary = await startDc09Receiver({ behaviour: "ack" });
      const port = transport === "tcp" ? primary.tcpPort : primary.udpPort;
      const { node, outcomes } = await loadDriver({ port, transport, sendText: true, sendTime: true });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1, 5000, "outcome");
      const [frame] = primary.acked.map((a) => a.frame);
      assert.equal(frame?.id, "SIA-DCS");
      assert.equal(frame?.account, "1234");
      assert.equal(frame?.data, "#1234|Nri1/BA01");
      assert.deepEqual(
        frame?.extended?.map((x) => x.kind),
        ["I", "H"],
      );
      assert.equal(frame?.extended?.[0]?.value, "Burglary zone 1");
      const out = outcomes[0].payload;
      assert.equal(out.status, "delivered");
      assert.equal(out.receiver, "primary");
      assert.ok(out.latencyMs >= 0 && out.latencyMs < 1000);
    });
  }

  it("takes an email without Message-ID offered again (same connector, UIDVALIDITY and UID) as a duplicate", async () => {
    primary = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await loadDriver({ port: primary.tcpPort });
    const noId = (uid: number) => ({
      alarm: alarm({ source: { messageId: null, from: "panel@site.test", subject: "Alarm", receivedAt: null } }),
      emailRef: { connector: "conn-a", uidValidity: "1700000000", uid, messageId: null },
    });
    node.receive(noId(7));
    node.receive(noId(7)); // as after a restart between the outbox write and the settlement
    node.receive(noId(8)); // another email without Message-ID is its own alarm
    await until(() => outcomes.length === 2, 5000, "two outcomes");
    await sleep(500);
    assert.equal(primary.acked.length, 2, "uid 7 once, uid 8 once");
    assert.equal(outcomes.length, 2);
  });

  it("sends Contact ID for CID alarms", async () => {
    primary = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await loadDriver({ port: primary.tcpPort });
    node.receive({ alarm: alarm({ eventFormat: "CID", eventCode: "130", zone: 15, area: 1 }) });
    await until(() => outcomes.length === 1);
    assert.equal(primary.acked[0]?.frame.id, "ADM-CID");
    assert.equal(primary.acked[0]?.frame.data, "#1234|1130 01 015");
  });

  for (const transport of ["tcp", "udp"] as const) {
    const portOf = (r: Dc09Receiver) => (transport === "tcp" ? r.tcpPort : r.udpPort);
    it(`corrects its clock from a NAK and resends once with the same sequence number (${transport})`, async () => {
      primary = await startDc09Receiver({ behaviour: "nak" });
      primary.clockOffsetMs = 120_000; // the receiver runs two minutes ahead
      const { node, outcomes } = await loadDriver({ port: portOf(primary), transport });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1);
      assert.equal(outcomes[0].payload.status, "delivered");
      const seqs = primary.received.map((r) => r.frame.seq);
      assert.equal(seqs.length, 2, "NAKed once, then accepted");
      assert.equal(seqs[0], seqs[1]);
    });

    it(`reports a DUH as failed and does not resend (${transport})`, async () => {
      primary = await startDc09Receiver({ behaviour: "duh" });
      const { node, outcomes } = await loadDriver({ port: portOf(primary), transport });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1);
      assert.equal(outcomes[0].payload.status, "failed");
      assert.match(outcomes[0].payload.reason, /DUH/);
      await sleep(1500);
      assert.equal(primary.received.length, 1);
    });

    it(`retries a silent receiver, fails over to the backup, and returns to the primary (${transport})`, async () => {
      primary = await startDc09Receiver({ behaviour: "silent" });
      backup = await startDc09Receiver({ behaviour: "ack" });
      const { node, outcomes } = await loadDriver({
        port: portOf(primary),
        transport,
        backupHost: "127.0.0.1",
        backupPort: portOf(backup),
        supervision: 1,
      });
      const t0 = Date.now();
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1, 8000, "delivery via backup");
      assert.equal(outcomes[0].payload.receiver, "backup");
      assert.ok(Date.now() - t0 < 2 * 1000 + 1500, "failover within ack timeout × sends");
      assert.equal(primary.received.length, 2, "two sends to the primary first");
      primary.behaviour = "ack";
      await until(() => primary.acked.some((a) => a.frame.id === "NULL"), 5000, "link test to the primary");
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 2);
      assert.equal(outcomes[1].payload.receiver, "primary");
    });
  }

  for (const behaviour of ["bad-crc", "reset"] as const) {
    it(`treats a ${behaviour === "reset" ? "connection reset mid-answer" : "bad CRC answer"} as no answer and retries`, async () => {
      let first = true;
      primary = await startDc09Receiver({
        behaviour: () => {
          const b = first ? behaviour : "ack";
          first = false;
          return b;
        },
      });
      const { node, outcomes } = await loadDriver({ port: primary.tcpPort, attempts: 3 });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1, 5000);
      assert.equal(outcomes[0].payload.status, "delivered");
      assert.equal(outcomes[0].payload.sends, 2);
      assert.equal(primary.acked.length, 1);
    });
  }

  it("encrypts with the AES key so the receiver decrypts the right plaintext", async () => {
    const key = "AAAAAAAAAAAAAAAA";
    primary = await startDc09Receiver({ behaviour: "ack", key: Buffer.from(key, "ascii") });
    const { node, outcomes } = await loadDriver({ port: primary.tcpPort }, { key });
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1);
    const frame = primary.acked[0]?.frame;
    assert.equal(frame?.encrypted, true);
    assert.equal(frame?.data, "#1234|Nri1/BA01");
  });

  it("keeps the line supervised with NULL link tests when idle", async () => {
    primary = await startDc09Receiver({ behaviour: "ack" });
    await loadDriver({ port: primary.tcpPort, supervision: 1, supervisionAccount: "9999" });
    await until(() => primary.acked.filter((a) => a.frame.id === "NULL").length >= 2, 5000, "two NULLs");
    assert.equal(primary.acked[0]?.frame.account, "9999");
  });

  it("refuses an alarm DC-09 cannot express, with the reason, instead of truncating it", async () => {
    primary = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await loadDriver({ port: primary.tcpPort });
    node.receive({ alarm: alarm({ eventFormat: "CID", eventCode: "1300" }) });
    await until(() => outcomes.length === 1);
    assert.equal(outcomes[0].payload.status, "refused");
    assert.match(outcomes[0].payload.reason, /three digits|3 digits|1300/);
    assert.match(callsOf(node, "error").map(String).join("\n"), /alarm refused/);
    assert.equal(primary.received.length, 0);
  });

  it("does not raise a second alarm for the same email", async () => {
    primary = await startDc09Receiver({ behaviour: "ack" });
    const { node, outcomes } = await loadDriver({ port: primary.tcpPort });
    const a = alarm();
    node.receive({ alarm: a });
    node.receive({ alarm: a });
    await until(() => outcomes.length >= 1);
    await sleep(500);
    assert.equal(primary.acked.length, 1);
  });
});
