// kill -9 of Node-RED during a burst: every alarm the line-driver accepted reaches the receiver.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { RUN_DIR } from "../standin/paths";
import { type SurgardAutomation, startAutomationServer } from "../standin/surgard-automation";

const KILLS = 10;
const SURGARD_KILLS = 5;
/** The one being sent and the delivered ones whose outcome is still on its way to disk (OutboxPump's default 4). */
const IN_FLIGHT = 5;

const surgardDriver = (automationPort: number) => ({
  protocol: "surgard",
  format: "auto",
  sgRole: "client",
  sgHost: "127.0.0.1",
  sgPort: automationPort,
  sgReceiver: 1,
  sgLine: 1,
  sgLineDigits: "3",
  sgAccountDigits: "auto",
  sgAckTimeout: 2,
  sgAttempts: 2,
  sgHeartbeat: 30,
});

function flow(receiverPort: number, driver: object = {}): object[] {
  const z = "tab";
  return [
    { id: z, type: "tab", label: "crash" },
    { id: "in", type: "http in", z, url: "/alarm", method: "post", x: 100, y: 100, wires: [["set"]] },
    {
      id: "set",
      type: "function",
      z,
      func: "msg.alarm = msg.payload; return msg;",
      outputs: 1,
      x: 250,
      y: 100,
      wires: [["ld"]],
    },
    {
      id: "ld",
      type: "line-driver",
      z,
      host: "127.0.0.1",
      port: receiverPort,
      transport: "tcp",
      receiver: "1",
      prefix: "1",
      format: "auto",
      ackTimeout: 2,
      attempts: 2,
      supervision: 0,
      supervisionAccount: "0000",
      ...driver,
      x: 400,
      y: 100,
      wires: [[]],
    },
    // Answers the HTTP request only once the line-driver called done(): the alarm is in the outbox.
    { id: "accepted", type: "complete", z, scope: ["ld"], uncaught: false, x: 400, y: 160, wires: [["res"]] },
    { id: "res", type: "http response", z, statusCode: "200", x: 560, y: 160, wires: [] },
  ];
}

function alarm(n: number) {
  return {
    account: "1234",
    eventCode: "BA",
    eventFormat: "SIA",
    qualifier: "new",
    zone: n,
    area: 1,
    user: null,
    text: `crash test ${n}`,
    occurredAt: new Date().toISOString(),
    attachments: [],
    source: { messageId: `crash-${n}@test`, from: "panel@test", subject: "Alarm", receivedAt: null },
  };
}

/** Runs producers against a Node-RED that is killed at random moments; returns the alarms it accepted. */
async function burstsWithKills(userDir: string, kills: number, deployed: object[]): Promise<Set<number>> {
  const accepted = new Set<number>();
  let next = 1;
  for (let run = 0; run <= kills; run++) {
    const red = await startNodeRed({ userDir, keepUserDir: run > 0 });
    if (run === 0) await red.deploy(deployed);
    if (run === kills) {
      lastRed = red;
      break; // the last start only drains the outbox
    }
    const url = `${red.url}/alarm`;
    const stopAt = Date.now() + 200 + Math.random() * 800;
    const producers = Array.from({ length: 8 }, async () => {
      while (Date.now() < stopAt) {
        const n = next++;
        try {
          const res = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(alarm(n)),
          });
          if (res.status === 200) accepted.add(n);
        } catch {
          return; // the process is gone
        }
      }
    });
    await sleep(stopAt - Date.now());
    await red.kill();
    await Promise.all(producers);
  }
  return accepted;
}

let lastRed: NodeRedProcess | undefined;
const zoneOf = (data: string) => Number(/Nri1\/BA(\d+)/.exec(data)?.[1]);

describe("line-driver outbox under kill -9 (Sur-Gard)", () => {
  let automation: SurgardAutomation & { port: number };
  before(async () => {
    automation = await startAutomationServer({ lineDigits: 3 });
  });
  after(async () => {
    await lastRed?.stop();
    await automation.close();
  });

  it(`delivers every accepted alarm after ${SURGARD_KILLS} kills at random moments`, async () => {
    const userDir = join(RUN_DIR, "nr-line-driver-crash-surgard");
    const accepted = await burstsWithKills(userDir, SURGARD_KILLS, flow(0, surgardDriver(automation.port)));
    const delivered = () =>
      automation.acked.filter((r) => r.packet.kind === "sia").map((r) => zoneOf(r.bytes.toString("latin1")));
    await automation.waitFor(() => {
      const zones = new Set(delivered());
      return [...accepted].every((n) => zones.has(n));
    }, 30_000);
    const zones = delivered();
    const lost = [...accepted].filter((n) => !zones.includes(n));
    const duplicates = zones.length - new Set(zones).size;
    console.log(
      `# Sur-Gard: accepted ${accepted.size}, delivered ${new Set(zones).size}, lost ${lost.length}, duplicates ${duplicates}`,
    );
    assert.deepEqual(lost, []);
    assert.ok(accepted.size > 50, `enough alarms accepted to mean something (${accepted.size})`);
    assert.ok(
      duplicates <= SURGARD_KILLS * IN_FLIGHT,
      `at most the alarms in flight per kill are repeated (${duplicates})`,
    );
  });
});

describe("line-driver outbox under kill -9", () => {
  let receiver: Dc09Receiver;
  const userDir = join(RUN_DIR, "nr-line-driver-crash");
  before(async () => {
    receiver = await startDc09Receiver({ behaviour: "ack" });
  });
  after(async () => {
    await lastRed?.stop();
    await receiver.close();
  });

  it(`delivers every accepted alarm after ${KILLS} kills at random moments`, async () => {
    const accepted = await burstsWithKills(userDir, KILLS, flow(receiver.tcpPort));
    await receiver.waitFor((r) => {
      const zones = new Set(r.map((e) => zoneOf(e.frame.data ?? "")));
      return [...accepted].every((n) => zones.has(n));
    }, 30_000);
    const zones = receiver.acked.map((e) => zoneOf(e.frame.data ?? ""));
    const duplicates = zones.length - new Set(zones).size;
    // A repeat after a crash is a retransmission with the same sequence number, which a receiver
    // recognises as such: each alarm is raised once at the centre.
    const seqsByZone = new Map<number, Set<number>>();
    for (const e of receiver.acked) {
      const zone = zoneOf(e.frame.data ?? "");
      seqsByZone.set(zone, (seqsByZone.get(zone) ?? new Set()).add(e.frame.seq));
    }
    assert.deepEqual(
      [...seqsByZone].filter(([, seqs]) => seqs.size > 1),
      [],
      "every repeat carries the original sequence number",
    );
    const lost = [...accepted].filter((n) => !zones.includes(n));
    console.log(
      `# accepted ${accepted.size}, delivered ${new Set(zones).size}, lost ${lost.length}, duplicates ${duplicates}`,
    );
    assert.deepEqual(lost, []);
    assert.ok(accepted.size > 50, `enough alarms accepted to mean something (${accepted.size})`);
    assert.ok(duplicates <= KILLS * IN_FLIGHT, `at most the alarms in flight per kill are repeated (${duplicates})`);
  });
});
