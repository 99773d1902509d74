// The stand-in automation software over real loopback sockets: it answers one byte per packet, hangs up on demand,
// and in the client role keeps redialling the gateway's port.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, it } from "node:test";
import {
  ACK,
  type AlarmForSurgard,
  contactIdPacket,
  heartbeatPacket,
  NAK,
  type SurgardLine,
  siaPacket,
} from "../../src/core/surgard";
import { freePort } from "../standin/ports";
import { type SurgardAutomation, startAutomationClient, startAutomationServer } from "../standin/surgard-automation";

const LINE: SurgardLine = { receiver: 1, line: 100, lineDigits: 3 };
const ALARM: AlarmForSurgard = { account: "1234", eventCode: "130", eventFormat: "CID", area: 1, zone: 15 };

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await delay(5);
  }
}

/** The gateway side of a connection: collects the automation's answer bytes. */
class Gateway {
  answers = Buffer.alloc(0);
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.answers = Buffer.concat([this.answers, chunk]);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
    });
  }

  static async dial(port: number): Promise<Gateway> {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    return new Gateway(socket);
  }

  async answered(count: number, timeoutMs = 2000): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.answers.length} of ${count} answers`);
      await delay(5);
    }
    return [...this.answers];
  }

  gone(): Promise<void> {
    return until(() => this.closed, "the automation closes the connection");
  }
}

describe("Sur-Gard stand-in automation", () => {
  let automation: SurgardAutomation | undefined;
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const undo of cleanup.splice(0)) await undo();
    await automation?.close();
    automation = undefined;
  });

  const gateway = async (port: number) => {
    const g = await Gateway.dial(port);
    cleanup.push(() => g.socket.destroy());
    return g;
  };

  it("ACKs every packet, whole or in pieces, and records it decoded", async () => {
    const a = await startAutomationServer({ lineDigits: 3 });
    automation = a;
    const g = await gateway(a.port);
    const sia = siaPacket({ ...ALARM, eventFormat: "SIA", eventCode: "BA" }, LINE);
    g.socket.write(Buffer.concat([heartbeatPacket(LINE), contactIdPacket(ALARM, LINE), sia.subarray(0, 4)]));
    await delay(30);
    for (const byte of sia.subarray(4)) g.socket.write(Buffer.of(byte));
    assert.deepEqual(await g.answered(3), [ACK, ACK, ACK]);
    await a.waitFor((r) => r.length === 3);
    assert.deepEqual(
      a.received.map((r) => r.packet.kind),
      ["heartbeat", "cid", "sia"],
    );
    assert.equal(a.received[1].packet.raw, "501100 181234E13001015");
    assert.deepEqual(a.received[2].bytes, sia);
    assert.equal(a.acked.length, 3);
    assert.deepEqual([a.connections, a.connected], [1, true]);
  });

  it("NAKs, stays silent, or decides per packet", async () => {
    const a = await startAutomationServer({ lineDigits: 3 });
    automation = a;
    const g = await gateway(a.port);
    a.behaviour = "nak";
    g.socket.write(contactIdPacket(ALARM, LINE));
    assert.deepEqual(await g.answered(1), [NAK]);

    a.behaviour = "silent";
    g.socket.write(contactIdPacket(ALARM, LINE));
    await a.waitFor((r) => r.length === 2);
    await delay(100);
    assert.equal(g.answers.length, 1, "no answer when silent");

    a.behaviour = (p) => (p.kind === "heartbeat" ? "ack" : "nak");
    g.socket.write(Buffer.concat([heartbeatPacket(LINE), contactIdPacket(ALARM, LINE)]));
    assert.deepEqual(await g.answered(3), [NAK, ACK, NAK]);
    assert.deepEqual(
      a.acked.map((r) => r.packet.kind),
      ["heartbeat"],
    );
  });

  it("NAKs a packet it cannot read and reports it", async () => {
    const a = await startAutomationServer({ lineDigits: 1 });
    automation = a;
    const g = await gateway(a.port);
    g.socket.write(contactIdPacket(ALARM, LINE)); // a 3-digit-line packet on a 1-digit line
    assert.deepEqual(await g.answered(1), [NAK]);
    assert.equal(a.received.length, 0);
    assert.match(a.rejected[0].error, /1-digit-line packet "501100 181234E13001015" is not Contact ID/);
  });

  it("hangs up without answering on 'disconnect', and the gateway can come back", async () => {
    const a = await startAutomationServer({ lineDigits: 3, behaviour: "disconnect" });
    automation = a;
    const g = await gateway(a.port);
    g.socket.write(Buffer.concat([contactIdPacket(ALARM, LINE), heartbeatPacket(LINE)]));
    await g.gone();
    assert.equal(g.answers.length, 0);
    assert.equal(a.received.length, 1, "the packet after the hang-up is not read");
    await a.waitFor(() => !a.connected);

    a.behaviour = "ack";
    const again = await gateway(a.port);
    again.socket.write(heartbeatPacket(LINE));
    assert.deepEqual(await again.answered(1), [ACK]);
    assert.equal(a.connections, 2);

    a.dropConnection();
    await again.gone();
  });

  describe("as a client of the gateway's port", () => {
    /** The gateway listening: every accepted connection. */
    async function listen(port = 0): Promise<{ server: Server; port: number; accepted: Gateway[] }> {
      const accepted: Gateway[] = [];
      const server = createServer((socket) => accepted.push(new Gateway(socket)));
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      cleanup.push(async () => {
        for (const g of accepted) g.socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      });
      return { server, port: (server.address() as { port: number }).port, accepted };
    }

    it("connects, answers, and redials 200 ms after the connection drops", async () => {
      const gw = await listen();
      const a = await startAutomationClient({ lineDigits: 3, port: gw.port });
      automation = a;
      await until(() => gw.accepted.length === 1, "the automation connects");
      gw.accepted[0].socket.write(contactIdPacket(ALARM, LINE));
      assert.deepEqual(await gw.accepted[0].answered(1), [ACK]);

      const dropped = Date.now();
      a.dropConnection();
      await gw.accepted[0].gone();
      await until(() => gw.accepted.length === 2, "the automation redials");
      assert.equal(a.connections, 2);
      assert.ok(Date.now() - dropped >= 150, `redialled after ${Date.now() - dropped} ms`);
      gw.accepted[1].socket.write(heartbeatPacket(LINE));
      assert.deepEqual(await gw.accepted[1].answered(1), [ACK]);
      assert.equal(a.received.length, 2);
    });

    it("keeps redialling a refused port until the gateway listens, and stops when closed", async () => {
      const port = await freePort();
      const a = await startAutomationClient({ lineDigits: 3, port });
      automation = a;
      await delay(450);
      assert.deepEqual([a.connections, a.connected], [0, false]);
      const gw = await listen(port);
      await a.waitFor(() => a.connected, 2000);
      await until(() => gw.accepted.length === 1, "the gateway accepts");

      await a.close();
      automation = undefined;
      await gw.accepted[0].gone();
      await delay(450);
      assert.equal(gw.accepted.length, 1, "no redial after close");
    });
  });
});
