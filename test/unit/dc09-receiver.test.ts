// The stand-in DC-09 receiver over real loopback sockets: every behaviour a line driver must survive.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { afterEach, describe, it } from "node:test";
import {
  type Dc09Message,
  type Dc09Response,
  decodeDc09Response,
  encodeDc09,
  splitDc09Frames,
} from "../../src/core/dc09";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { freePort } from "../standin/ports";

const KEY = Buffer.from("0123456789ABCDEF0123456789ABCDEF", "hex");

function message(seq: number, fields: Partial<Dc09Message> = {}): Dc09Message {
  return { id: "SIA-DCS", seq, receiver: "1", prefix: "2", account: "1234", data: "#1234|Nri1/BA01", ...fields };
}

/** A TCP client that collects the receiver's answers as frames. */
class Client {
  readonly socket: Socket;
  readonly frames: Buffer[] = [];
  /** Bytes received that never formed a complete frame. */
  pending = Buffer.alloc(0);
  error?: NodeJS.ErrnoException;
  ended = false;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("data", (chunk: Buffer) => {
      const { frames, rest } = splitDc09Frames(Buffer.concat([this.pending, chunk]));
      this.frames.push(...frames);
      this.pending = Buffer.from(rest);
    });
    this.socket.on("error", (err) => {
      this.error = err;
    });
    this.socket.on("end", () => {
      this.ended = true;
    });
  }

  async connected(): Promise<this> {
    await once(this.socket, "connect");
    return this;
  }

  async answers(count: number, key?: Buffer, timeoutMs = 2000): Promise<Dc09Response[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.frames.length} of ${count} answers`);
      await delay(5);
    }
    return this.frames.map((f) => decodeDc09Response(f, { key }));
  }

  async closed(): Promise<void> {
    // not once(): it rejects on the "error" that a reset emits first
    if (!this.socket.destroyed) await new Promise((resolve) => this.socket.once("close", resolve));
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends one datagram and returns the answer datagram, or undefined after `waitMs`. */
async function udpExchange(port: number, datagram: Buffer, waitMs = 1000): Promise<Buffer | undefined> {
  const socket = createSocket("udp4");
  try {
    const answer = new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
      socket.once("message", (msg: Buffer) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
    socket.send(datagram, port, "127.0.0.1");
    return await answer;
  } finally {
    socket.close();
  }
}

describe("DC-09 stand-in receiver", () => {
  let receiver: Dc09Receiver | undefined;
  const clients: Client[] = [];
  const start = async (opts: Parameters<typeof startDc09Receiver>[0] = {}) => {
    receiver = await startDc09Receiver(opts);
    return receiver;
  };
  const client = async (port: number) => {
    const c = await new Client(port).connected();
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.destroy();
    await receiver?.close();
    receiver = undefined;
  });

  it("ACKs several frames on one TCP connection, whole and in pieces", async () => {
    const r = await start();
    const c = await client(r.tcpPort);
    const link = encodeDc09({ id: "NULL", seq: 3, receiver: "1", prefix: "2", account: "1234" });
    const third = encodeDc09(message(4, { timestamp: new Date() }));
    c.socket.write(Buffer.concat([encodeDc09(message(1)), encodeDc09(message(2)), link, third.subarray(0, 11)]));
    await delay(30);
    c.socket.write(third.subarray(11, 40));
    await delay(30);
    c.socket.write(third.subarray(40));
    const answers = await c.answers(4);
    assert.deepEqual(
      answers.map((a) => [a.kind, a.seq, a.receiver, a.prefix, a.account, a.encrypted]),
      [1, 2, 3, 4].map((seq) => ["ACK", seq, "1", "2", "1234", false]),
    );
    assert.deepEqual(
      r.received.map((e) => [e.frame.id, e.frame.seq, e.transport]),
      [
        ["SIA-DCS", 1, "tcp"],
        ["SIA-DCS", 2, "tcp"],
        ["NULL", 3, "tcp"],
        ["SIA-DCS", 4, "tcp"],
      ],
    );
    assert.equal(r.acked.length, 4);
    assert.match(r.received[0].remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(r.received[0].frame.data, "#1234|Nri1/BA01");
  });

  it("answers an encrypted frame with *ACK under the same key, over TCP and UDP", async () => {
    const r = await start({ key: KEY });
    const c = await client(r.tcpPort);
    c.socket.write(encodeDc09(message(5), { key: KEY }));
    const [tcpAnswer] = await c.answers(1, KEY);
    assert.equal(tcpAnswer.kind, "ACK");
    assert.equal(tcpAnswer.encrypted, true);
    assert.ok(tcpAnswer.timestamp && Math.abs(tcpAnswer.timestamp.getTime() - Date.now()) < 2000);
    assert.match(tcpAnswer.raw, /"\*ACK"0005R1L2#1234\[[0-9A-F]+$/);

    const udpAnswer = await udpExchange(r.udpPort, encodeDc09(message(6), { key: KEY }));
    assert.ok(udpAnswer, "UDP answer");
    assert.deepEqual(
      [decodeDc09Response(udpAnswer, { key: KEY }).kind, decodeDc09Response(udpAnswer, { key: KEY }).seq],
      ["ACK", 6],
    );
    assert.deepEqual(
      r.received.map((e) => [e.frame.encrypted, e.transport]),
      [
        [true, "tcp"],
        [true, "udp"],
      ],
    );
    const plain = await udpExchange(r.udpPort, encodeDc09(message(7)));
    assert.equal(decodeDc09Response(plain!).encrypted, false, "a plain frame gets a plain ACK");
  });

  it("ACKs a UDP datagram to its sender", async () => {
    const r = await start();
    const answer = await udpExchange(r.udpPort, encodeDc09(message(9)));
    assert.deepEqual(
      { ...decodeDc09Response(answer!), raw: undefined },
      { kind: "ACK", seq: 9, receiver: "1", prefix: "2", account: "1234", encrypted: false, raw: undefined },
    );
    assert.equal(r.acked[0].transport, "udp");
  });

  it("answers DUH, and nothing at all when silent", async () => {
    const r = await start({ behaviour: "duh" });
    const c = await client(r.tcpPort);
    c.socket.write(encodeDc09(message(1)));
    assert.equal((await c.answers(1))[0].kind, "DUH");
    assert.equal(decodeDc09Response((await udpExchange(r.udpPort, encodeDc09(message(2))))!).kind, "DUH");

    r.behaviour = "silent";
    c.socket.write(encodeDc09(message(3)));
    await r.waitFor((events) => events.length === 3);
    assert.equal(await udpExchange(r.udpPort, encodeDc09(message(4)), 200), undefined);
    await delay(100);
    assert.equal(c.frames.length, 1, "no answer after the DUH");
    assert.equal(r.acked.length, 0);
    assert.deepEqual(
      r.answers.map((a) => [a.behaviour, a.sent]),
      [
        ["duh", "DUH"],
        ["duh", "DUH"],
        ["silent", undefined],
        ["silent", undefined],
      ],
    );
  });

  it("sends an ACK with a corrupted CRC for bad-crc", async () => {
    const r = await start({ behaviour: "bad-crc" });
    const c = await client(r.tcpPort);
    c.socket.write(encodeDc09(message(1)));
    await assert.rejects(c.answers(1), /CRC mismatch/);
    const udp = await udpExchange(r.udpPort, encodeDc09(message(2)));
    assert.throws(() => decodeDc09Response(udp!), /CRC mismatch/);
    assert.equal(r.acked.length, 0);
    assert.equal(r.received.length, 2);
  });

  it("resets the TCP connection mid-answer, and says nothing over UDP", async () => {
    const r = await start({ behaviour: "reset" });
    const c = await client(r.tcpPort);
    c.socket.write(encodeDc09(message(1)));
    await c.closed();
    assert.equal(c.frames.length, 0, "half an ACK is no ACK");
    assert.equal(c.error?.code, "ECONNRESET");
    assert.equal(await udpExchange(r.udpPort, encodeDc09(message(2)), 200), undefined);
    assert.equal(r.received.length, 2);
    assert.equal(r.acked.length, 0);
  });

  it("closes the connection after ACKing one frame for close-after-frame", async () => {
    const r = await start({ behaviour: "close-after-frame" });
    const c = await client(r.tcpPort);
    c.socket.write(Buffer.concat([encodeDc09(message(1)), encodeDc09(message(2))]));
    await c.closed();
    assert.deepEqual(
      c.frames.map((f) => decodeDc09Response(f).seq),
      [1],
    );
    assert.ok(c.ended, "closed with FIN, not reset");
    assert.equal(r.received.length, 1, "the second frame on a closing connection is not read");
    assert.equal(r.acked.length, 1);
  });

  it("NAKs frames outside -40 s/+20 s of its clock, with its own time", async () => {
    const r = await start({ behaviour: "nak" });
    const c = await client(r.tcpPort);
    const now = Date.now();
    c.socket.write(encodeDc09(message(1, { timestamp: new Date(now) })));
    c.socket.write(encodeDc09(message(2, { timestamp: new Date(now - 60_000) })));
    c.socket.write(encodeDc09(message(3, { timestamp: new Date(now + 30_000) })));
    c.socket.write(encodeDc09(message(4)));
    const answers = await c.answers(4);
    assert.deepEqual(
      answers.map((a) => [a.kind, a.seq]),
      [
        ["ACK", 1],
        ["NAK", 0],
        ["NAK", 0],
        ["ACK", 4],
      ],
    );
    assert.ok(Math.abs(answers[1].timestamp!.getTime() - now) < 2000);

    // A receiver two minutes ahead NAKs the transmitter's time until it corrects it from the NAK.
    r.clockOffsetMs = 120_000;
    c.socket.write(encodeDc09(message(5, { timestamp: new Date() })));
    const [, , , , nak] = await c.answers(5);
    assert.equal(nak.kind, "NAK");
    assert.ok(Math.abs(nak.timestamp!.getTime() - (Date.now() + 120_000)) < 2000);
    c.socket.write(encodeDc09(message(5, { timestamp: nak.timestamp })));
    const all = await c.answers(6);
    assert.deepEqual([all[5].kind, all[5].seq], ["ACK", 5]);
    assert.deepEqual(
      r.acked.map((e) => e.frame.seq),
      [1, 4, 5],
    );
  });

  it("decides per frame with a behaviour function, changeable at any time", async () => {
    const r = await start({ behaviour: (f) => (f.id === "NULL" ? "ack" : "silent") });
    const c = await client(r.tcpPort);
    c.socket.write(encodeDc09(message(1)));
    c.socket.write(encodeDc09({ id: "NULL", seq: 2, receiver: "1", prefix: "2", account: "1234" }));
    const [answer] = await c.answers(1);
    assert.equal(answer.seq, 2);
    r.behaviour = "duh";
    c.socket.write(encodeDc09(message(3)));
    const answers = await c.answers(2);
    assert.equal(answers[1].kind, "DUH");
  });

  it("rejects undecodable frames without answering", async () => {
    const r = await start();
    const c = await client(r.tcpPort);
    const broken = encodeDc09(message(1));
    broken[1] = broken[1] === 0x30 ? 0x31 : 0x30;
    c.socket.write(broken);
    c.socket.write(encodeDc09(message(2), { key: KEY })); // no key configured
    c.socket.write(encodeDc09(message(3)));
    const answers = await c.answers(1);
    assert.equal(answers[0].seq, 3);
    assert.deepEqual(
      r.rejected.map((x) => x.error.replace(/:.*/, "")),
      ["CRC mismatch", "*SIA-DCS 0002 is encrypted but no key is configured"],
    );
    assert.deepEqual(
      r.received.map((e) => e.frame.seq),
      [3],
    );
  });

  it("waits for a condition, and times out with what it saw", async () => {
    const r = await start();
    const waiting = r.waitFor((events) => events.some((e) => e.frame.seq === 2));
    await udpExchange(r.udpPort, encodeDc09(message(1)));
    await udpExchange(r.udpPort, encodeDc09(message(2)));
    await waiting;
    await assert.rejects(
      r.waitFor(() => false, 50),
      /condition not met within 50 ms \(received: SIA-DCS 1, SIA-DCS 2\)/,
    );
  });

  it("listens on the ports it is given", async () => {
    const [tcpPort, udpPort] = [await freePort(), await freePort()];
    const r = await start({ tcpPort, udpPort, receiver: "AB", prefix: "7", behaviour: "nak" });
    assert.deepEqual([r.tcpPort, r.udpPort], [tcpPort, udpPort]);
    const nak = await udpExchange(udpPort, encodeDc09(message(1, { timestamp: new Date(Date.now() - 3_600_000) })));
    assert.match(decodeDc09Response(nak!).raw, /"NAK"0000RABL7A0\[\]_/);
  });
});
