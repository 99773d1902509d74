// A service provider's load (issue #19): 20 tenants × 10 mailboxes (5 IMAP, 5 Graph) = 200 email-connectors in
// one Node-RED child, against one Entra ID, Dovecot and Graph stand-in. Measured: RSS, idle CPU, token requests
// per tenant, IMAP connections, pickup p50/p99 per transport at 20 emails/s spread over the mailboxes (beside
// one mailbox of each transport alone), duplicates and missing.
//   node --import tsx bench/scale.ts [--tenants 20] [--imap 5] [--graph 5] [--rate 20] [--seconds 30] [--idle 30] [--idle-windows 3] [--settle 15] [--single 240] [--poll 1] [--profile] [--write-results]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { alarmEmail } from "../test/helpers/mail-stack";
import { type NodeRedProcess, startNodeRed } from "../test/helpers/node-red-process";
import { type ProviderStack, startProviderStack } from "../test/helpers/provider-stack";
import { RUN_DIR } from "../test/standin/paths";
import { childEnv, cpuMsByThread, cpuMsOf, flags, readEmitted, recorderNodes, runMain, TAB, today } from "./harness";
import { type GoalRow, goalTable, machine, percentile, recordGoals, writeSection } from "./results-file";

const f = flags();
const TENANTS = f.num("tenants", 20);
const IMAP = f.num("imap", 5);
const GRAPH = f.num("graph", 5);
const RATE = f.num("rate", 20);
const SECONDS = f.num("seconds", 30);
const IDLE = f.num("idle", 30);
/** Seconds after deploy before the idle window: the start-up's JIT compiling and garbage collection are not idling. */
const SETTLE = f.num("settle", 15);
/** Idle windows of IDLE s one after another: V8's memory reducer collects in bursts, one window may catch one. */
const IDLE_WINDOWS = f.num("idle-windows", 3);
/** Emails for the one-mailbox-each run (half per transport, 2/s): enough samples that its p99 is a p99. */
const SINGLE = f.num("single", 240);
const POLL = f.num("poll", 1);

type Transport = "imap" | "graph";
interface Load {
  samples: Record<Transport, number[]>;
  sent: number;
  missing: number;
  duplicates: number;
}

const rssMb = (pid: number | undefined) =>
  Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024);

/** Established TCP connections from the Node-RED child to a port (ss, as the machine sees them). */
function connectionsTo(port: number): number {
  const out = execFileSync("ss", ["-tnH", "state", "established", `( dport = :${port} )`], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.trim()).length;
}

async function deploy(p: ProviderStack, name: string, only?: { imap: string; graph: string }): Promise<NodeRedProcess> {
  const { env } = childEnv(`scale-${name}`, { profile: f.has("profile") && name === "all" });
  const red = await startNodeRed({
    userDir: join(RUN_DIR, `bench-scale-${name}`),
    logFile: join(RUN_DIR, `bench-scale-${name}.log`),
    env,
  });
  const { configs, connectors } = p.flow({ graphPoll: POLL, wires: [["record"]] });
  const chosen = only ? connectors.filter((c) => c.id === only.imap || c.id === only.graph) : connectors;
  await red.deploy([TAB, ...configs, ...chosen.map((c) => ({ ...c, z: "tab", x: 100, y: 100 })), ...recorderNodes([])]);
  // Ready: every Graph mailbox asked once, every IMAP connector connected.
  const graphBoxes = chosen.filter((c) => c.transport === "graph").map((c) => String(c.mailbox).toLowerCase());
  const imapCount = chosen.filter((c) => c.transport !== "graph").length;
  const imapsPort = Number(p.outlookHost.split(":")[1]);
  for (let i = 0; i < 1200; i++) {
    const seen = new Set(p.graph.requests.map((r) => r.mailbox?.toLowerCase()));
    if (graphBoxes.every((m) => seen.has(m)) && connectionsTo(imapsPort) >= imapCount) break;
    await sleep(100);
  }
  await sleep(3000);
  return red;
}

/** `count` emails at `rate` per second to random mailboxes of `boxes`; pickup = message out − stored. */
async function load(
  p: ProviderStack,
  red: NodeRedProcess,
  boxes: { transport: Transport; mailbox: string }[],
  count: number,
  rate: number,
): Promise<Load> {
  const sent = new Map<string, { at: number; transport: Transport }>();
  let read = (await readEmitted(red)).length;
  const emitted = new Map<string, number[]>();
  const poll = async () => {
    const fresh = await readEmitted(red, read);
    read += fresh.length;
    for (const [s, t] of fresh) if (sent.has(s)) emitted.set(s, [...(emitted.get(s) ?? []), t]);
  };
  for (let i = 0; i < count; i++) {
    const box = boxes[Math.floor(Math.random() * boxes.length)] as (typeof boxes)[number];
    const subject = `scale-${Date.now()}-${i}`;
    const raw = alarmEmail(subject);
    if (box.transport === "imap") {
      const before = Date.now();
      await p.dovecot.append(box.mailbox, raw);
      sent.set(subject, { at: before, transport: "imap" });
    } else {
      p.graph.deliver(box.mailbox, raw);
      sent.set(subject, { at: Date.now(), transport: "graph" });
    }
    if (i % 20 === 0) await poll();
    await sleep((1000 / rate) * (0.5 + Math.random()));
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && [...sent.keys()].some((s) => !emitted.has(s))) {
    await poll();
    await sleep(200);
  }
  await sleep(1000);
  await poll();
  const samples: Record<Transport, number[]> = { imap: [], graph: [] };
  for (const [s, { at, transport }] of sent) {
    const t = emitted.get(s)?.[0];
    if (t !== undefined) samples[transport].push(t - at);
  }
  return {
    samples,
    sent: sent.size,
    missing: [...sent.keys()].filter((s) => !emitted.has(s)).length,
    duplicates: [...emitted.values()].reduce((n, ts) => n + ts.length - 1, 0),
  };
}

const idleText = (windows: number[]) => windows.map((w) => `${w.toFixed(1)} %`).join(", ");

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
};

async function main(): Promise<void> {
  const p = await startProviderStack({
    name: "bench-scale",
    tenants: TENANTS,
    imapPerTenant: IMAP,
    graphPerTenant: GRAPH,
  });
  const total = TENANTS * (IMAP + GRAPH);
  let single: Load | undefined;
  let scale: Load | undefined;
  let idleCpu = Number.NaN;
  const idleWindows: number[] = [];
  let rss = Number.NaN;
  let imapConnections = Number.NaN;
  let tokens: { max: number; total: number } = { max: Number.NaN, total: Number.NaN };
  try {
    // One mailbox of each transport alone: the p99 the many are held to.
    const alone = await deploy(p, "single", { imap: "t0-imap0", graph: "t0-graph0" });
    try {
      single = await load(
        p,
        alone,
        [
          ...(IMAP > 0 ? [{ transport: "imap" as const, mailbox: p.imapBox(0, 0) }] : []),
          ...(GRAPH > 0 ? [{ transport: "graph" as const, mailbox: p.graphBox(0, 0) }] : []),
        ],
        SINGLE,
        2,
      );
    } finally {
      await alone.stop();
    }
    const tokensBefore = p.entra.requests.length;
    const red = await deploy(p, "all");
    try {
      await sleep(SETTLE * 1000);
      const threads0 = cpuMsByThread(red.child.pid);
      const idleFrom = Date.now();
      for (let w = 0; w < IDLE_WINDOWS; w++) {
        const cpu0 = cpuMsOf(red.child.pid);
        await sleep(IDLE * 1000);
        idleWindows.push((cpuMsOf(red.child.pid) - cpu0) / (IDLE * 10));
      }
      idleCpu = percentile(
        [...idleWindows].sort((a, b) => a - b),
        50,
      );
      // The window to give bench/profile-summary.ts (--from/--to) with --profile.
      process.stderr.write(`idle window: --from ${idleFrom} --to ${Date.now()}\n`);
      const byThread = [...cpuMsByThread(red.child.pid)]
        .map(([name, ms]) => `${name} ${ms - (threads0.get(name) ?? 0)} ms`)
        .join(", ");
      process.stderr.write(`idle CPU by thread: ${byThread}\n`);
      const asked = new Map<string, number>();
      for (const r of p.graph.requests.filter((q) => q.at >= idleFrom)) {
        const what = `${r.method} ${r.path
          .replace(/\/users\/[^/]+/, "/users/{m}")
          .replace(/\/mailFolders(\('[^']*'\)|\/[^/]+)/gi, "/mailFolders/{id}")
          .replace(/\/messages\/(?!delta)[^/]+/g, "/messages/{id}")} ${r.status}`;
        asked.set(what, (asked.get(what) ?? 0) + 1);
      }
      process.stderr.write(`Graph requests while idle: ${[...asked].map(([k, n]) => `${n}× ${k}`).join(", ")}\n`);
      // Batches refused as a whole fall back to one request each: the bench would measure the wrong thing.
      const refused = p.graph.requests.filter((r) => r.path.endsWith("/$batch") && r.status !== 200).length;
      if (refused > 0) throw new Error(`the Graph stand-in refused ${refused} batches while idle: see its requests`);
      rss = rssMb(red.child.pid);
      imapConnections = connectionsTo(Number(p.outlookHost.split(":")[1]));
      const boxes = p.tenants.flatMap((_, t) => [
        ...Array.from({ length: IMAP }, (_, j) => ({ transport: "imap" as const, mailbox: p.imapBox(t, j) })),
        ...Array.from({ length: GRAPH }, (_, j) => ({ transport: "graph" as const, mailbox: p.graphBox(t, j) })),
      ]);
      scale = await load(p, red, boxes, RATE * SECONDS, RATE);
      const issued = p.entra.requests.slice(tokensBefore).filter((r) => r.status === 200);
      const per = new Map<string, number>();
      for (const r of issued) per.set(`${r.tenant} ${r.scope}`, (per.get(`${r.tenant} ${r.scope}`) ?? 0) + 1);
      tokens = { max: Math.max(0, ...per.values()), total: issued.length };
    } finally {
      await red.stop();
    }
  } finally {
    await p.stop();
  }
  const line = (label: string, l: Load | undefined) =>
    (["imap", "graph"] as Transport[]).map((tr) => {
      const s = stats(l?.samples[tr] ?? []);
      return `| ${label} | ${tr} | ${s.n} | ${s.p50} | ${s.p99} |`;
    });
  const rows = [...line("1 mailbox each", single), ...line(`${total} mailboxes`, scale)];
  const summary =
    `${total} connectors (${TENANTS} tenants × ${IMAP} IMAP + ${GRAPH} Graph): RSS ${rss} MB, idle CPU ${idleCpu.toFixed(1)} % of a core (median of ${idleText(idleWindows)}), ` +
    `${imapConnections} IMAP connections, tokens issued ${tokens.total} (at most ${tokens.max} per tenant and resource), ` +
    `${scale?.sent ?? 0} emails at ${RATE}/s: ${scale?.duplicates ?? "-"} duplicates, ${scale?.missing ?? "-"} missing`;
  for (const r of rows) console.log(r);
  console.log(summary);
  const p99 = (l: Load | undefined, tr: Transport) => stats(l?.samples[tr] ?? []).p99;
  const goals: GoalRow[] = [
    { what: `${total} connectors: RSS`, goal: "≤ 400 MB", ours: `${rss} MB`, anchor: "-", met: rss <= 400 },
    {
      what: `${total} connectors: idle CPU`,
      goal: "≤ 2 % of one core",
      ours: `${idleCpu.toFixed(1)} % (median of ${IDLE_WINDOWS} windows of ${IDLE} s: ${idleText(idleWindows)})`,
      anchor: "-",
      met: idleCpu <= 2,
    },
    {
      what: "token requests",
      goal: "≤ 1 per tenant per token lifetime",
      ours: `at most ${tokens.max} per tenant and resource (${tokens.total} for ${TENANTS} tenants, 2 resources)`,
      anchor: "-",
      met: tokens.max <= 1,
    },
    ...(["imap", "graph"] as Transport[]).map((tr) => ({
      what: `pickup p99, ${tr}, ${total} mailboxes at ${RATE} emails/s`,
      goal: "≤ 1 mailbox alone + 50 ms",
      ours: `${p99(scale, tr)} ms vs ${p99(single, tr)} ms alone`,
      anchor: "-",
      met: p99(scale, tr) <= p99(single, tr) + 50,
    })),
    {
      what: "every email once",
      goal: "0 missing, 0 duplicates",
      ours: `${scale?.missing} missing, ${scale?.duplicates} duplicates of ${scale?.sent}`,
      anchor: "-",
      met: scale?.missing === 0 && scale.duplicates === 0,
    },
  ];
  if (!f.has("write-results")) return;
  recordGoals("scale", goals);
  writeSection(
    "scale",
    [
      "## Hundreds of mailboxes across tenants in one gateway",
      "",
      `\`node --import tsx bench/scale.ts --tenants ${TENANTS} --imap ${IMAP} --graph ${GRAPH} --rate ${RATE} --seconds ${SECONDS} --idle ${IDLE}\`, ${today()}, ${machine()}.`,
      "One multi-tenant app consented in each tenant (test/helpers/provider-stack.ts); one o365-oauth-config per",
      `tenant, one email-connector per mailbox (Graph polling every ${POLL} s) in one Node-RED 4.1 child; emails are not`,
      `settled (a function node records when each comes out). Idle CPU: the child's CPU in ${IDLE_WINDOWS} windows of ${IDLE} s`,
      `with no email, from ${SETTLE} s after every connector is up (start-up compiling and collecting are not idling); the`,
      "median is judged. Pickup: stored (Dovecot APPEND or the Graph stand-in) → message out, ms; first one IMAP and one",
      `Graph mailbox alone (${SINGLE} emails at 2/s, half each), then all at ${RATE}/s for ${SECONDS} s.`,
      "",
      "| run | transport | emails | p50 | p99 |",
      "|---|---|---|---|---|",
      ...rows,
      "",
      `${summary}.`,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

runMain(main);
