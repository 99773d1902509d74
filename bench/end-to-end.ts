// End to end: APPEND by another client → ACK at a local DC-09 receiver, through email-connector →
// data-map → line-driver in a Node-RED child; and our own share of it: from the moment any IMAP
// client can know of the email (EXISTS to a plain imapflow client IDLEing on the same folder in this
// process) to the ACK. node-red-node-email has no DC-09: its row ends where its message comes out.
//   node --import tsx bench/end-to-end.ts [--count 100] [--only ours|theirs] [--profile] [--write-results]
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { alarmEmail, type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { MAILBOX } from "../test/helpers/tenant";
import { ensureTestCertificates } from "../test/standin/certs";
import { type Dc09Receiver, startDc09Receiver } from "../test/standin/dc09-receiver";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";
import {
  alarmBody,
  childEnv,
  flags,
  flowFor,
  LABEL,
  packOptions,
  readEmitted,
  scrapeHealth,
  today,
  type Who,
  watchExists,
  zoneOf,
} from "./harness";
import { type GoalRow, goalTable, machine, percentile, recordGoals, writeSection } from "./results-file";

const f = flags();
const COUNT = f.num("count", 100);
const WARMUP_ZONE = 999;

interface Sample {
  append: number; // before APPEND was sent
  exists: number; // EXISTS seen by the plain IDLE client
  emitted: number; // message out of the mail node
  ack?: number; // ACK sent by the receiver (ours)
}

interface Side {
  who: Who;
  samples: Sample[];
  missing: number;
  duplicates: number;
}

async function measure(who: Who, stack: MailStack, receiver: Dc09Receiver): Promise<Side> {
  const folder = `e2e-${who}`;
  const { env, profileFile } = childEnv(`e2e-${who}`, { profile: f.has("profile") });
  const red = await startNodeRed({
    userDir: join(RUN_DIR, `bench-e2e-${who}`),
    ...packOptions(who),
    logFile: join(RUN_DIR, `bench-e2e-${who}.log`),
    env,
  });
  const scraper = scrapeHealth(red);
  const exists = await watchExists(stack, folder);
  let appended = 0;
  const emitted = new Map<string, number[]>();
  let read = 0;
  const poll = async () => {
    const fresh = await readEmitted(red, read);
    read += fresh.length;
    for (const [s, t] of fresh) emitted.set(s, [...(emitted.get(s) ?? []), t]);
  };
  const acked = (zone: number, from: number) => receiver.acked.slice(from).find((e) => zoneOf(e.frame.data) === zone);
  /** Appends one email and waits for its end: ACK (ours) or message out (theirs). */
  const one = async (subject: string, zone: number, timeoutMs: number): Promise<Sample | undefined> => {
    const ackFrom = receiver.acked.length;
    const raw = alarmEmail(subject, alarmBody(zone));
    const append = Date.now();
    await stack.dovecot.append(MAILBOX, raw, { folder });
    const existsAt = exists.waitFor(++appended, timeoutMs).catch(() => Number.NaN);
    const deadline = append + timeoutMs;
    if (who === "ours") {
      await receiver
        .waitFor(() => acked(zone, ackFrom) !== undefined, Math.max(1, deadline - Date.now()))
        .catch(() => undefined);
      await poll();
    } else {
      while (!emitted.has(subject) && Date.now() < deadline) {
        await sleep(25);
        await poll();
      }
    }
    const out = emitted.get(subject)?.[0];
    const ack = acked(zone, ackFrom)?.at;
    if (out === undefined || (who === "ours" && ack === undefined)) return undefined;
    return { append, exists: await existsAt, emitted: out, ack };
  };
  try {
    await red.deploy(flowFor(who, stack, folder, receiver.tcpPort));
    for (let i = 0; ; i++) {
      if (await one(`${who}-warmup-${i}`, WARMUP_ZONE, 5000)) break;
      if (i > 10) throw new Error(`${who}: nothing came through; log:\n${red.log()}`);
    }
    const samples: Sample[] = [];
    let missing = 0;
    for (let i = 0; i < COUNT; i++) {
      // Dovecot tells an IDLE session 500 ms after the first change it sees; the connector's \Seen flag
      // of the previous email is such a change for the plain client: let that timer run out first.
      await sleep(600 + Math.random() * 600);
      const s = await one(`${who}-${i}`, (i % (WARMUP_ZONE - 1)) + 1, 10_000);
      if (s) samples.push(s);
      else missing++;
      if ((i + 1) % 25 === 0) process.stderr.write(`${who}: ${i + 1}/${COUNT}\n`);
    }
    await sleep(1000);
    await poll();
    const duplicates = [...emitted.values()].reduce((n, ts) => n + ts.length - 1, 0);
    return { who, samples, missing, duplicates };
  } finally {
    await exists.close();
    scraper.stop();
    await red.stop();
    if (profileFile) process.stderr.write(`CPU profile: ${profileFile} (bench/profile-summary.ts reads it)\n`);
  }
}

const sorted = (xs: number[]) => xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
const stats = (xs: number[]) => {
  const s = sorted(xs);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
};

async function main(): Promise<void> {
  ensureTestCertificates(CERT_DIR);
  const stack = await startMailStack("bench-e2e", { extraFolders: ["e2e-ours", "e2e-theirs"] });
  const receiver = await startDc09Receiver({ behaviour: "ack" });
  const sides: Side[] = [];
  try {
    for (const who of f.sides()) sides.push(await measure(who, stack, receiver));
  } finally {
    await receiver.close();
    await stack.stop();
  }
  const rows: string[] = [];
  const breakdown: string[] = [];
  const byWho = new Map<Who, ReturnType<typeof summarise>>();
  writeFileSync(join(RUN_DIR, "bench-e2e-samples.json"), JSON.stringify(sides, null, 1));
  for (const side of sides) {
    const r = summarise(side);
    byWho.set(side.who, r);
    const end = side.who === "ours" ? "ACK" : "message out";
    rows.push(
      `| ${LABEL[side.who]} | APPEND → ${end} | ${side.samples.length} | ${r.total.p50} | ${r.total.p99} | ${r.total.max} | ${r.own.p50} | ${r.own.p99} | ${r.own.max} | ${side.duplicates} | ${side.missing} |`,
    );
    if (side.who === "ours") {
      breakdown.push(
        `- ours, EXISTS → message out of the email-connector: p50 ${r.pickup.p50}, p99 ${r.pickup.p99}, max ${r.pickup.max}; ` +
          `message out → ACK (data-map, outbox fsync, settle, DC-09 round trip): p50 ${r.delivery.p50}, p99 ${r.delivery.p99}, max ${r.delivery.max}`,
      );
    }
    breakdown.push(
      `- ${side.who}, APPEND → EXISTS at the plain IDLE client (Dovecot's floor): p50 ${r.floor.p50}, p99 ${r.floor.p99}, max ${r.floor.max}`,
    );
  }
  for (const l of [...rows, ...breakdown]) console.log(l);
  const ours = byWho.get("ours");
  const theirs = byWho.get("theirs");
  const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "-" : `${v} ms`);
  const goals: GoalRow[] = [
    {
      what: "end to end p50 (APPEND → ACK)",
      goal: "≤ 530 ms",
      ours: fmt(ours?.total.p50),
      anchor: `${fmt(theirs?.total.p50)} (to message out)`,
      met: ours ? ours.total.p50 <= 530 : null,
    },
    {
      what: "end to end p99",
      goal: "≤ 600 ms",
      ours: fmt(ours?.total.p99),
      anchor: `${fmt(theirs?.total.p99)} (to message out)`,
      met: ours ? ours.total.p99 <= 600 : null,
    },
    {
      what: "own share p50 (EXISTS → ACK)",
      goal: "≤ 30 ms",
      ours: fmt(ours?.own.p50),
      anchor: `${fmt(theirs?.own.p50)} (to message out)`,
      met: ours ? ours.own.p50 <= 30 : null,
    },
    {
      what: "own share p99",
      goal: "≤ 100 ms",
      ours: fmt(ours?.own.p99),
      anchor: `${fmt(theirs?.own.p99)} (to message out)`,
      met: ours ? ours.own.p99 <= 100 : null,
    },
  ];
  if (!f.has("write-results")) return;
  recordGoals("end-to-end", goals);
  writeSection(
    "end-to-end",
    [
      "## End to end (APPEND → ACK at a DC-09 receiver) and our own share",
      "",
      `\`node --import tsx bench/end-to-end.ts --count ${COUNT}\`, ${today()}, ${machine()}.`,
      "Each email is appended by another IMAP client to Dovecot 2.3, 0.6-1.2 s (random) after the previous one came through.",
      "Ours: email-connector → data-map (classic preset) → line-driver (DC-09 over TCP, outbox fsync on) → a DC-09 receiver",
      "in the bench process that ACKs; each side in its own Node-RED 4.1 child. The anchor cannot send DC-09: its row ends",
      "where its message comes out. A function node right after the mail node records when each message came out.",
      "**Own share**: a plain imapflow client in the bench process IDLEs on the same folder and timestamps each EXISTS.",
      "Dovecot tells an IDLE session 500 ms after the first change it sees, so that EXISTS is the earliest any client can",
      "know of the email; own share = ACK (or message out) − that EXISTS. (The spacing lets the plain client's 500 ms timer,",
      "started by the \\Seen flag the connector sets on the previous email, run out: else it would learn of the next one early.)",
      "Times in ms; all clocks are the same machine's.",
      "",
      "| node | measured | emails | p50 | p99 | max | own p50 | own p99 | own max | duplicates | missing |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      ...rows,
      "",
      ...breakdown,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

function summarise(side: Side) {
  const s = side.samples;
  const end = (x: Sample) => x.ack ?? x.emitted;
  return {
    total: stats(s.map((x) => end(x) - x.append)),
    own: stats(s.map((x) => end(x) - x.exists)),
    floor: stats(s.map((x) => x.exists - x.append)),
    pickup: stats(s.map((x) => x.emitted - x.exists)),
    delivery: stats(s.map((x) => (x.ack ?? Number.NaN) - x.emitted)),
  };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
