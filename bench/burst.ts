// Burst: emails waiting in the folder when the flows start (a gateway back after an outage). How soon
// after "Started flows" each is out of the mail node, exactly once, ours and node-red-node-email;
// and, ours, how soon each alarm is ACKed by a local DC-09 receiver.
//   node --import tsx bench/burst.ts [--count 1000] [--only ours|theirs] [--chains full,connector] [--profile] [--write-results]
//   [--write-profile]: with --profile --chains full --only ours, writes where the time goes to bench/results.md
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { alarmEmail, type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { ensureTestCertificates } from "../test/standin/certs";
import { type Dc09Receiver, startDc09Receiver } from "../test/standin/dc09-receiver";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";
import {
  alarmBody,
  appendMany,
  childEnv,
  cpuMsByProcess,
  cpuMsByThread,
  cpuMsOf,
  cpuMsSince,
  flags,
  flowFor,
  flowStartClock,
  gcAndMeasure,
  LABEL,
  ownerSession,
  packOptions,
  readEmitted,
  scrapeHealth,
  today,
  type Who,
} from "./harness";
import { summariseProfile } from "./profile-summary";
import { type GoalRow, goalTable, machine, recordGoals, writeSection } from "./results-file";

const f = flags();
const COUNT = f.num("count", 1000);
type Chain = "full" | "connector" | "unsettled";
/**
 * Ours: the whole chain, and the connector alone (settled by the flow, as the anchor marks read on fetch:
 * the same work as the anchor's); "unsettled" leaves the emails in flight. Where the time goes.
 */
const CHAINS = (f.str("chains") ?? "full,connector").split(",") as Chain[];
const CHAIN_LABEL: Record<Chain, string> = {
  full: "→ data-map → line-driver → ACK",
  connector: "alone, settled by the flow",
  unsettled: "alone, not settled",
};
/** After the last expected event, how long nothing more may come (late duplicates, second ACKs). */
const QUIET_MS = 2000;
/**
 * --warm: measure a second burst in the same Node-RED process, after a first one of the same size. A fresh
 * process spends much of a first burst's CPU compiling (V8's optimising compiler, on background threads).
 */
const WARM = f.has("warm");
/**
 * --warm-bursts N: how many bursts before the measured one. In one process a burst's CPU falls for several
 * bursts and then stays: ours after about five (whole chain, 1000 emails: 1340, 830, 500, 400, 340, 360,
 * 310 ms), node-red-node-email after about seven (780, 450, 280, 350, 360, 330, 230, 230, 230 ms).
 */
const WARM_BURSTS = WARM ? f.num("warm-bursts", 8) : 0;

interface Result {
  who: Who;
  chain: Chain;
  appendMs: number;
  emissions: number;
  unique: number;
  /** ms after "Started flows" */
  firstOut: number;
  /** when the last email came out for the first time */
  allOut: number;
  /** when the last message came out, duplicates included: when the node was done */
  lastOut: number;
  acks?: number;
  allAcked?: number;
  firstAck?: number;
  /** CPU (user + system) of the Node-RED child from deploy until done. */
  cpuMs: number;
  threads: ThreadCpu;
  /** CPU of Dovecot's imap and imap-login processes meanwhile: the other side of the same two cores. */
  serverCpuMs: number;
  /**
   * CPU per email once emails flow: from the first poll (100 ms) that saw one out until done, per email
   * still to come. Leaves out what the start costs once (token, login, loading modules, the parse worker).
   */
  cpuPerEmailAfterFirst: number;
  /** --warm: the CPU of each earlier burst in the same process, in order. */
  earlierCpuMs?: number[];
}

/** The floor: a bare IMAP client, as far from parsing as IMAP allows. */
interface Floor {
  /** From connecting (TLS, login) to the last message's bytes in hand. */
  allMs: number;
  /** After connecting and selecting: the FETCH alone. */
  fetchMs: number;
  bytes: number;
  count: number;
  /** CPU of this (bench) process meanwhile, which does nothing else then. */
  cpuMs: number;
  /** CPU of Dovecot's processes for the session meanwhile (TLS in imap-login, the FETCH in imap). */
  serverCpuMs: number;
}

/** Dovecot's processes that serve an IMAPS session: imap-login holds the TLS, imap runs the commands. */
const DOVECOT_PROCESSES = ["imap", "imap-login"];

/**
 * A bare imapflow session fetching the same number of the same emails from the same Dovecot over IMAPS
 * (password login, as the anchor), whole sources, no MIME parsing, no flag changes: what no IMAP gateway
 * on this machine can beat. Its own folder, so ours and the anchor still find theirs untouched.
 */
async function measureFloor(stack: MailStack): Promise<Floor> {
  const folder = "burst-floor";
  await appendMany(stack, folder, (i) => alarmEmail(`floor-burst-${i}`, alarmBody((i % 998) + 1)), COUNT);
  await sleep(500);
  const server0 = cpuMsByProcess(DOVECOT_PROCESSES);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const client = ownerSession(stack, { disableAutoIdle: true });
  let bytes = 0;
  let count = 0;
  let fetchStart = 0;
  let t1 = Number.NaN;
  let cpu = { user: Number.NaN, system: 0 };
  let serverCpuMs = Number.NaN;
  try {
    await client.connect();
    await client.mailboxOpen(folder, { readOnly: true });
    fetchStart = performance.now();
    for await (const m of client.fetch("1:*", { uid: true, source: true })) {
      bytes += m.source?.length ?? 0;
      count++;
    }
    t1 = performance.now();
    cpu = process.cpuUsage(cpu0);
    serverCpuMs = cpuMsSince(server0, cpuMsByProcess(DOVECOT_PROCESSES));
  } finally {
    await client.logout().catch(() => client.close());
  }
  return {
    allMs: Math.round(t1 - t0),
    fetchMs: Math.round(t1 - fetchStart),
    bytes,
    count,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    serverCpuMs,
  };
}

async function measure(who: Who, chain: Chain, stack: MailStack, receiver: Dc09Receiver): Promise<Result> {
  const name = who === "ours" ? `burst-ours-${chain}` : "burst-theirs";
  const { env, profileFile, nodeArgs, memFile } = childEnv(name, { profile: f.has("profile") });
  const red = await startNodeRed({
    userDir: join(RUN_DIR, `bench-${name}`),
    ...packOptions(who),
    logFile: join(RUN_DIR, `bench-${name}.log`),
    env,
    nodeArgs,
  });
  const scraper = scrapeHealth(red);
  const clock = flowStartClock(red);
  try {
    // --warm: the same burst before, WARM_BURSTS times, each in its own folder: the measured one finds the
    // code loaded and compiled. V8 keeps optimising (and re-optimising) what a burst makes hot for several
    // bursts; the CPU of each is kept to show it settle.
    const earlierCpuMs: number[] = [];
    for (let i = 1; i <= WARM_BURSTS; i++) {
      const earlier = await burstIn(red, clock, {
        who,
        chain,
        stack,
        receiver,
        folder: `${name}-warm${i}`,
        tag: `warm ${i}`,
      });
      earlierCpuMs.push(earlier.cpuMs);
      if (process.env.BENCH_BURST_HEAP) {
        // A diagnostic: what stays on the main isolate's heap after each burst (full GC first).
        const m = await gcAndMeasure(red, memFile);
        process.stderr.write(
          `${who} ${chain} warm ${i}: after full GC heap used ${mb(m.heapUsed)}, RSS ${mb(m.rss)}\n`,
        );
      }
      await sleep(3000);
    }
    const result = await burstIn(red, clock, {
      who,
      chain,
      stack,
      receiver,
      folder: name,
      tag: "burst",
      timeline: name,
    });
    return { ...result, earlierCpuMs };
  } finally {
    scraper.stop();
    await red.stop();
    if (profileFile) process.stderr.write(`CPU profile: ${profileFile} (bench/profile-summary.ts reads it)\n`);
  }
}

/** COUNT emails waiting in `folder`, then the flow deployed on it; until all are out (and ACKed) and quiet. */
async function burstIn(
  red: Awaited<ReturnType<typeof startNodeRed>>,
  clock: ReturnType<typeof flowStartClock>,
  run: {
    who: Who;
    chain: Chain;
    stack: MailStack;
    receiver: Dc09Receiver;
    folder: string;
    tag: string;
    timeline?: string;
  },
): Promise<Result> {
  const { who, chain, stack, receiver, folder } = run;
  const appendMs = await appendMany(
    stack,
    folder,
    (i) => alarmEmail(`${who}-${run.tag}-${i}`, alarmBody((i % 998) + 1)),
    COUNT,
  );
  process.stderr.write(`${who} ${chain} ${run.tag}: ${COUNT} emails appended in ${appendMs.toFixed(0)} ms\n`);
  const ackFrom = receiver.acked.length;
  // The recorder keeps what earlier bursts in this process emitted: those are not this burst's.
  const emittedFrom = (await readEmitted(red)).length;
  const cpuBefore = cpuMsOf(red.child.pid);
  const threadsBefore = cpuMsByThread(red.child.pid, { byTid: true });
  const serverBefore = cpuMsByProcess(DOVECOT_PROCESSES);
  let serverCpuMs = Number.NaN;
  let threads: ThreadCpu = { main: 0, worker: 0, background: 0, ended: 0 };
  let cpuUsed = Number.NaN;
  /** CPU and unique emails out at the first poll that saw one: what follows is the per-email part. */
  let atFirst: { cpu: number; unique: number } | undefined;
  clock.arm();
  // Each burst's line-driver has its own outbox: a burst does not pay for loading the log earlier bursts
  // left (a deploy-time cost: 50-110 ms of CPU for 9000 alarms' 7 MB; docs/burst-cpu.md).
  const lineDriverId = `ld-${run.tag.replace(/\W/g, "")}`;
  await red.deploy(flowFor(who, stack, folder, receiver.tcpPort, { chain, lineDriverId }));
  const started = await clock.startedAt();
  // Until every email is out (and, ours, ACKed), then until nothing more comes for QUIET_MS.
  const deadline = started + 60_000;
  let emitted: [string, number][] = [];
  let lastChange = Date.now();
  let seen = -1;
  for (;;) {
    await sleep(100);
    emitted = emitted.concat(await readEmitted(red, emittedFrom + emitted.length));
    const acks = receiver.acked.length - ackFrom;
    const unique = new Set(emitted.map(([s]) => s)).size;
    if (unique > 0 && !atFirst) atFirst = { cpu: cpuMsOf(red.child.pid) - cpuBefore, unique };
    if (emitted.length + acks !== seen) {
      seen = emitted.length + acks;
      lastChange = Date.now();
    }
    const complete = unique >= COUNT && (who === "theirs" || chain !== "full" || acks >= COUNT);
    if (complete && Number.isNaN(cpuUsed)) {
      cpuUsed = cpuMsOf(red.child.pid) - cpuBefore;
      threads = threadCpu(red.child.pid ?? 0, threadsBefore, cpuMsByThread(red.child.pid, { byTid: true }), cpuUsed);
      serverCpuMs = cpuMsSince(serverBefore, cpuMsByProcess(DOVECOT_PROCESSES));
    }
    if ((complete && Date.now() - lastChange >= QUIET_MS) || Date.now() > deadline) break;
  }
  if (run.timeline)
    writeFileSync(
      join(RUN_DIR, `bench-${run.timeline}-timeline.json`),
      JSON.stringify({ started, emitted, acks: receiver.acked.slice(ackFrom).map((e) => e.at) }),
    );
  // CPU the Node-RED child used from deploy until done (100 ms polling): what other load on the machine does not change.
  process.stderr.write(`${who} ${chain} ${run.tag}: Node-RED child CPU until done ${cpuUsed} ms (user + system)\n`);
  process.stderr.write(`${who} ${chain} ${run.tag}: by thread: ${threadText(threads)}; Dovecot ${serverCpuMs} ms\n`);
  const firstOutAt = new Map<string, number>();
  for (const [s, t] of emitted) if (!firstOutAt.has(s)) firstOutAt.set(s, t);
  const outTimes = [...firstOutAt.values()].sort((a, b) => a - b);
  const ackTimes = receiver.acked.slice(ackFrom).map((e) => e.at);
  const full = who === "ours" && chain === "full";
  return {
    who,
    chain,
    appendMs,
    emissions: emitted.length,
    unique: firstOutAt.size,
    firstOut: (outTimes[0] ?? Number.NaN) - started,
    allOut: firstOutAt.size >= COUNT ? (outTimes[COUNT - 1] ?? Number.NaN) - started : Number.NaN,
    lastOut: Math.max(...emitted.map(([, t]) => t)) - started,
    cpuMs: cpuUsed,
    threads,
    serverCpuMs,
    cpuPerEmailAfterFirst:
      atFirst && COUNT > atFirst.unique ? (cpuUsed - atFirst.cpu) / (COUNT - atFirst.unique) : Number.NaN,
    acks: full ? ackTimes.length : undefined,
    firstAck: full ? (ackTimes[0] ?? Number.NaN) - started : undefined,
    allAcked: full && ackTimes.length >= COUNT ? (ackTimes[COUNT - 1] ?? Number.NaN) - started : undefined,
  };
}

/** Where the child's CPU went, by thread, from deploy until done. */
interface ThreadCpu {
  /** The event loop: IMAP, the flow, the outbox, DC-09. */
  main: number;
  /** Other threads Node-RED's process name was given to: our parse worker. */
  worker: number;
  /** Threads named "node": V8's platform threads (the optimising compiler, concurrent GC) and libuv's pool (fsync). */
  background: number;
  /** Threads that ended meanwhile: in the process's total only. */
  ended: number;
}

function threadCpu(pid: number, before: Map<string, number>, after: Map<string, number>, total: number): ThreadCpu {
  const out: ThreadCpu = { main: 0, worker: 0, background: 0, ended: 0 };
  for (const [key, ms] of after) {
    const [comm, tid] = key.replace(/ (user|sys)$/, "").split("#");
    const part = Number(tid) === pid ? "main" : comm === "node" ? "background" : "worker";
    out[part] += ms - (before.get(key) ?? 0);
  }
  out.ended = Math.max(0, total - out.main - out.worker - out.background);
  if (process.env.BENCH_THREAD_DETAIL) {
    const rows = [...after].map(([key, ms]) => [key, ms - (before.get(key) ?? 0)] as const).filter(([, ms]) => ms > 0);
    process.stderr.write(`threads (ms): ${rows.map(([k, ms]) => `${k} ${ms}`).join(", ")}\n`);
  }
  return out;
}

/** The node a result is of, as the tables name it. */
const labelOf = (r: Result) => (r.who === "ours" ? `${LABEL.ours} ${CHAIN_LABEL[r.chain]}` : LABEL.theirs);

const threadText = (t: ThreadCpu) =>
  `main ${t.main}, parse worker ${t.worker}, V8/libuv threads ${t.background}${t.ended ? `, ended threads ${t.ended}` : ""}`;

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** CPU ms in all, and per emission (per email once for ours: it emits each once). */
const cpuText = (ms: number, per: number) => `${ms} (${(ms / per).toFixed(2)} per email)`;
/** CPU per email once emails flow; "-" when all came out before the first look (100 ms). */
const flowingText = (ms: number) =>
  Number.isFinite(ms) ? `${ms.toFixed(2)} per email once flowing` : "all out before the first look";

const perSecond = (n: number, ms: number | undefined) =>
  ms === undefined || !Number.isFinite(ms) ? Number.NaN : Math.round((n / ms) * 1000);

async function main(): Promise<void> {
  ensureTestCertificates(CERT_DIR);
  const runs: [Who, Chain][] = f
    .sides()
    .flatMap((who) => (who === "ours" ? CHAINS.map((c): [Who, Chain] => [who, c]) : [[who, "full"] as [Who, Chain]]));
  const stack = await startMailStack("bench-burst", {
    extraFolders: [
      "burst-floor",
      ...runs
        .map(([w, c]) => (w === "ours" ? `burst-ours-${c}` : "burst-theirs"))
        .flatMap((folder) => [folder, ...Array.from({ length: WARM_BURSTS }, (_, i) => `${folder}-warm${i + 1}`)]),
    ],
  });
  const receiver = await startDc09Receiver({ behaviour: "ack" });
  const results: Result[] = [];
  let floor: Floor;
  try {
    floor = await measureFloor(stack);
    process.stderr.write(
      `floor: ${floor.count} emails (${floor.bytes} bytes) in ${floor.allMs} ms from connecting, ` +
        `${floor.fetchMs} ms the FETCH alone, ${floor.cpuMs} ms CPU, Dovecot ${floor.serverCpuMs} ms CPU\n`,
    );
    for (const [who, chain] of runs) results.push(await measure(who, chain, stack, receiver));
  } finally {
    await receiver.close();
    await stack.stop();
  }
  const rate = (ms: number | undefined) => perSecond(COUNT, ms).toLocaleString("en");
  const rows = results.map((r) => {
    const acked =
      r.acks !== undefined ? `${r.acks} ACKs, first ${r.firstAck}, all ${r.allAcked} (${rate(r.allAcked)}/s)` : "-";
    return `| ${labelOf(r)} | ${COUNT} | ${r.emissions} | ${r.emissions - r.unique} | ${r.firstOut} | ${r.allOut} | ${r.lastOut} | ${rate(r.allOut)} | ${rate(r.lastOut)} | ${acked} | ${cpuText(r.cpuMs, r.emissions)}; ${flowingText(r.cpuPerEmailAfterFirst)}; ${threadText(r.threads)}; Dovecot ${r.serverCpuMs} |`;
  });
  rows.unshift(
    `| the floor: a bare imapflow session, IMAPS login, FETCH 1:* whole sources, no parsing | ${floor.count} | ${floor.count} | 0 | - | ${floor.allMs} | ${floor.allMs} | ${rate(floor.allMs)} | ${rate(floor.allMs)} | - (FETCH alone ${floor.fetchMs} ms) | ${cpuText(floor.cpuMs, floor.count)} (the bench process); Dovecot ${floor.serverCpuMs} |`,
  );
  for (const l of rows) console.log(l);
  if (f.has("write-profile")) writeProfileSection();
  const ours = results.find((r) => r.who === "ours" && r.chain === "full");
  const theirs = results.find((r) => r.who === "theirs");
  const alone = results.find((r) => r.who === "ours" && r.chain === "connector");
  const once = (r: Result | undefined) => (r ? r.emissions === COUNT && r.unique === COUNT : false);
  const outText = (r: Result | undefined) =>
    r
      ? `${r.allOut} ms; ${r.emissions} emissions (${r.emissions - r.unique} duplicates), last at ${r.lastOut} ms`
      : "-";
  // The issue rates the anchor by when it is done (its duplicates included, ≈ 900/s); by when each email
  // was out once it is faster: both are shown, the goal is judged by the first.
  const ratio = ours && theirs ? perSecond(COUNT, ours.allOut) / perSecond(COUNT, theirs.lastOut) : Number.NaN;
  const strictRatio = ours && theirs ? perSecond(COUNT, ours.allOut) / perSecond(COUNT, theirs.allOut) : Number.NaN;
  const floorLimit = Math.round(1.3 * floor.allMs);
  const perEmission = (r: Result | undefined) => (r ? r.cpuMs / Math.max(1, r.emissions) : Number.NaN);
  const goals: GoalRow[] = [
    {
      what: `burst of ${COUNT} waiting: all out exactly once, after "Started flows"`,
      goal: `≤ 1.3 × the floor (${floor.allMs} ms from connecting for a bare IMAP client: ≤ ${floorLimit} ms), once each`,
      ours: `${outText(ours)}${alone ? `; the connector alone, like the anchor: ${alone.allOut} ms (${alone.emissions - alone.unique} duplicates)` : ""}`,
      anchor: outText(theirs),
      met: ours ? once(ours) && ours.allOut <= floorLimit : null,
    },
    {
      what: "burst: CPU of the connector per email (Node-RED child, deploy until done)",
      goal: "≤ the anchor's per emission",
      ours: alone
        ? `${perEmission(alone).toFixed(2)} ms (${alone.cpuMs} ms for ${alone.emissions}); once flowing ${alone.cpuPerEmailAfterFirst.toFixed(2)} ms per email`
        : "-",
      anchor: theirs
        ? `${perEmission(theirs).toFixed(2)} ms (${theirs.cpuMs} ms for ${theirs.emissions} emissions); the floor ${(floor.cpuMs / floor.count).toFixed(2)} ms`
        : "-",
      met: alone && theirs ? perEmission(alone) <= perEmission(theirs) : null,
    },
    {
      what: "burst: CPU of the whole chain per alarm (connector → data-map → line-driver → ACK)",
      goal: "≤ 1 ms",
      ours: ours
        ? `${(ours.cpuMs / COUNT).toFixed(2)} ms (${ours.cpuMs} ms for ${COUNT}); once flowing ${ours.cpuPerEmailAfterFirst.toFixed(2)} ms per alarm`
        : "-",
      anchor: "no DC-09",
      met: ours ? ours.cpuMs / COUNT <= 1 : null,
    },
    {
      what: "burst: unique emails out per second",
      goal: "≥ 1.8 × the anchor's (rated by when it is done)",
      ours: ours
        ? `${rate(ours.allOut)}/s${alone && theirs ? `; the connector alone ${rate(alone.allOut)}/s (${(perSecond(COUNT, alone.allOut) / perSecond(COUNT, theirs.lastOut)).toFixed(2)} ×)` : ""}`
        : "-",
      anchor: theirs
        ? `${rate(theirs.lastOut)}/s until done (ours ${ratio.toFixed(2)} ×); ${rate(theirs.allOut)}/s until each was out once (ours ${strictRatio.toFixed(2)} ×)`
        : "-",
      met: Number.isFinite(ratio) ? ratio >= 1.8 : null,
    },
    {
      what: `burst: all ${COUNT} ACKed at the receiver`,
      goal: "≥ 1000 alarms/s",
      ours: ours
        ? `${ours.allAcked} ms after "Started flows" (${rate(ours.allAcked)}/s), ${ours.acks} ACKs; ` +
          `${perSecond(COUNT - 1, (ours.allAcked ?? Number.NaN) - (ours.firstAck ?? Number.NaN)).toLocaleString("en")}/s from the first ACK to the last`
        : "-",
      anchor: "no DC-09",
      met: ours ? ours.acks === COUNT && perSecond(COUNT, ours.allAcked) >= 1000 : null,
    },
  ];
  if (WARM)
    for (const g of goals) g.what += ` (in a running gateway: after ${WARM_BURSTS} bursts in the same Node-RED)`;
  if (!f.has("write-results")) return;
  const section = WARM ? "burst-warm" : "burst";
  recordGoals(section, goals);
  writeSection(
    section,
    [
      WARM
        ? `## Burst in a running gateway: ${COUNT} emails waiting when the flow is deployed again`
        : `## Burst: ${COUNT} emails waiting when the flows start`,
      "",
      `\`node --import tsx bench/burst.ts --count ${COUNT}${WARM ? ` --warm --warm-bursts ${WARM_BURSTS}` : ""}\`, ${today()}, ${machine()}.`,
      ...(WARM
        ? [
            `Each Node-RED child first takes the same burst ${WARM_BURSTS} times, each from its own folder, 3 s apart (its flow is`,
            "deployed again on each, with a line-driver of its own): its code is loaded and compiled, as in a gateway that has run for a while and takes a",
            "burst when an outage ends. V8 goes on optimising and re-optimising what a burst makes hot for several bursts; the",
            "CPU of each burst in the same child shows it settle. The anchor's moves by up to 2 × from run to run (whether its",
            "second search still finds the emails unread is a race): judge the goals that compare with it over several runs",
            "(docs/burst-cpu.md has them).",
            "",
            ...results.map(
              (r) =>
                `- ${labelOf(r)}: ${[...(r.earlierCpuMs ?? []), r.cpuMs].join(", ")} ms (the last one measured here)`,
            ),
            "",
          ]
        : []),
      `${COUNT} small alarm emails appended to the folder before deploying; times in ms after Node-RED's "Started flows"`,
      "line reached the bench (its own log time has 1 s resolution); each node in its own Node-RED 4.1 child, on Dovecot 2.3.",
      "Emissions are recorded by a function node right after the mail node; ours then goes data-map → line-driver",
      '(outbox fsync on) → a DC-09 receiver in the bench process. Rates are emails (alarms) / time since "Started flows";',
      '"last out" counts the duplicates too (when the node was done emitting). The floor is a bare imapflow session in the',
      "bench process fetching the same number of the same emails from the same Dovecot (its own folder), timed from connecting;",
      "its CPU is the bench process's. CPU is steadier than wall time on this shared machine. Why the floor is out of",
      "reach and where the rest goes: docs/burst-cpu.md.",
      "",
      "| node | emails | emissions | duplicates | first out | all out once | last out | /s to all once | /s to last | ACKed (ours), ms | CPU ms of the Node-RED child: deploy until done; per email from the first out; by thread; Dovecot's CPU meanwhile (imap, imap-login) |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      ...rows,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

/**
 * Where the time of the whole chain goes (run with --profile --chains full --only ours): the main
 * thread's CPU profile from "Started flows" to the last ACK, and when emails came out and were ACKed.
 */
function writeProfileSection(): void {
  const name = "burst-ours-full";
  const profile = join(RUN_DIR, "bench-prof", `${name}.cpuprofile`);
  const timeline = JSON.parse(readFileSync(join(RUN_DIR, `bench-${name}-timeline.json`), "utf8")) as {
    started: number;
    emitted: [string, number][];
    acks: number[];
  };
  const out = timeline.emitted.map(([, t]) => t - timeline.started).sort((a, b) => a - b);
  const acked = timeline.acks.map((t) => t - timeline.started).sort((a, b) => a - b);
  const at = (list: number[], n: number) => list[Math.min(n, list.length) - 1] ?? Number.NaN;
  const marks = [1, 100, 200, 400, 600, 800, COUNT];
  const activity = summariseProfile(profile, {
    fromMs: timeline.started,
    toMs: Math.max(...timeline.acks),
    wallEndMs: statSync(profile).mtimeMs,
  });
  const byActivity = activity.slice(2, activity.indexOf("self time by package / file:"));
  writeSection(
    "burst-profile",
    [
      `## Where the burst's time goes (ours, whole chain, ${COUNT} emails waiting)`,
      "",
      `\`node --import tsx bench/burst.ts --count ${COUNT} --chains full --only ours --profile --write-profile\`, ${today()}, ${machine()}.`,
      "The profiler slows the child a little. The email-connector parses bursts of small emails on a worker thread",
      "(started by the burst, ~100 ms to load; until then the main thread parses), so MIME parsing is mostly off this profile;",
      "everything else (IMAP, Node-RED, data-map, outbox, DC-09) shares the main thread.",
      "",
      "| emails | 1st | 100th | 200th | 400th | 600th | 800th | last |",
      "|---|---|---|---|---|---|---|---|",
      `| out of the connector, ms after "Started flows" | ${marks.map((n) => at(out, n)).join(" | ")} |`,
      `| ACKed by the receiver, ms | ${marks.map((n) => at(acked, n)).join(" | ")} |`,
      "",
      'Main thread from "Started flows" to the last ACK, by activity (first known frame from the leaf up):',
      "",
      "```",
      ...byActivity,
      "```",
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
