// Shared parts of the benches that run a whole Node-RED child: flags, the two flows (ours: the
// whole chain email-connector → data-map → line-driver; theirs: node-red-node-email), a recorder of
// what comes out of each mail node, the "Started flows" moment, RSS of the child, and a GC on demand.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ImapFlow } from "imapflow";
import { defaultDataMapConfig } from "../src/core/datamap";
import { dc09LineDriverDef, emailConnectorDef } from "../test/helpers/flows";
import type { MailStack } from "../test/helpers/mail-stack";
import type { NodeRedOptions, NodeRedProcess } from "../test/helpers/node-red-process";
import { MAILBOX } from "../test/helpers/tenant";
import { ensureTestCertificates } from "../test/standin/certs";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";
import { ANCHOR_VERSION, ensureAnchorInstalled } from "./anchor";

export type Who = "ours" | "theirs";
export const ANCHOR_PASSWORD = "password-for-the-anchor";
export const MiB = 1024 * 1024;

export const LABEL: Record<Who, string> = {
  ours: "@alarm-gateway email-connector (XOAUTH2)",
  theirs: `node-red-node-email ${ANCHOR_VERSION} (password, IDLE)`,
};

export function flags(argv = process.argv.slice(2)) {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    num(name: string, fallback: number): number {
      const v = Number(get(name));
      return get(name) !== undefined && Number.isFinite(v) ? v : fallback;
    },
    str: get,
    has: (name: string) => argv.includes(`--${name}`),
    /** `--only ours|theirs` narrows a side-by-side bench to one side. */
    sides(): Who[] {
      const only = get("only");
      return (["ours", "theirs"] as Who[]).filter((w) => !only || w === only);
    },
  };
}

/**
 * MSAL and fetch in this process must trust the stand-ins' test CA, which Node reads only at start:
 * without NODE_EXTRA_CA_CERTS, runs this script again with it and returns true (the caller stops).
 */
export function withTestCa(): boolean {
  if (process.env.NODE_EXTRA_CA_CERTS === join(CERT_DIR, "ca.pem")) return false;
  ensureTestCertificates(CERT_DIR);
  const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(CERT_DIR, "ca.pem") },
  });
  process.exitCode = run.status ?? 1;
  return true;
}

export const today = (): string => new Date().toISOString().slice(0, 10);

/**
 * With BENCH_SCRAPE_HEALTH set (bench/health-overhead.ts): fetches the panel's snapshot and the metrics every
 * second, as an open sidebar and a Prometheus scrape would, until stopped.
 */
export function scrapeHealth(red: NodeRedProcess): { stop(): void } {
  if (!process.env.BENCH_SCRAPE_HEALTH) return { stop() {} };
  const timer = setInterval(() => {
    for (const path of ["/alarm-gateway/health", "/alarm-gateway/metrics"])
      fetch(`${red.url}${path}`)
        .then((r) => r.arrayBuffer())
        .catch(() => undefined);
  }, 1000);
  return { stop: () => clearInterval(timer) };
}

/** Runs a bench's main(); a failure is printed and ends the process with 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

/** Name (`comm`) and user and system CPU ms of a /proc/.../stat file; undefined once it is gone. */
function readStat(path: string): { comm: string; userMs: number; sysMs: number } | undefined {
  try {
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    return {
      comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      userMs: Number(fields[11]) * 10,
      sysMs: Number(fields[12]) * 10,
    };
  } catch {
    return undefined;
  }
}

/** User + system CPU time of a process so far, from /proc (10 ms resolution); 0 once it is gone. */
export function cpuMsOf(pid: number | undefined): number {
  const stat = readStat(`/proc/${pid}/stat`);
  return stat ? stat.userMs + stat.sysMs : 0;
}

/** CPU ms so far of every process named one of `names` (`comm`, e.g. Dovecot's "imap"), by pid. */
export function cpuMsByProcess(names: string[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(`/proc/${entry}/stat`);
    if (stat && names.includes(stat.comm)) out.set(Number(entry), stat.userMs + stat.sysMs);
  }
  return out;
}

/** CPU ms spent between two cpuMsByProcess readings (processes that ended meanwhile are not counted). */
export function cpuMsSince(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, now] of after) ms += now - (before.get(pid) ?? 0);
  return ms;
}

/** CPU ms of the threads of a process, user and system apart, by thread name (`comm`): which thread spends it. */
export function cpuMsByThread(pid: number | undefined, opts: { byTid?: boolean } = {}): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process ended
  }
  for (const tid of tids) {
    const stat = readStat(`/proc/${pid}/task/${tid}/stat`);
    if (!stat) continue; // the thread ended meanwhile
    const name = opts.byTid ? `${stat.comm}#${tid}` : stat.comm;
    out.set(`${name} user`, (out.get(`${name} user`) ?? 0) + stat.userMs);
    out.set(`${name} sys`, (out.get(`${name} sys`) ?? 0) + stat.sysMs);
  }
  return out;
}

// --- flows ------------------------------------------------------------------------------------

export const TAB = { id: "tab", type: "tab", label: "bench" };

/**
 * A function node right after the mail node records [subject, Date.now()] of every message in
 * global context (one array push, no clone: it passes the same msg on), and GET /bench/emitted
 * returns the records, from ?since=N on.
 */
export function recorderNodes(next: string[]): object[] {
  return [
    {
      id: "record",
      type: "function",
      z: "tab",
      name: "record emission",
      func: "const r = global.get('benchEmitted') || []; r.push([msg.topic, Date.now()]); global.set('benchEmitted', r); return msg;",
      outputs: 1,
      x: 300,
      y: 100,
      wires: [next],
    },
    {
      id: "record-in",
      type: "http in",
      z: "tab",
      url: "/bench/emitted",
      method: "get",
      x: 100,
      y: 200,
      wires: [["record-read"]],
    },
    {
      id: "record-read",
      type: "function",
      z: "tab",
      func: "const r = global.get('benchEmitted') || []; msg.payload = r.slice(Number(msg.req.query.since || 0)); return msg;",
      outputs: 1,
      x: 300,
      y: 200,
      wires: [["record-out"]],
    },
    { id: "record-out", type: "http response", z: "tab", statusCode: "", headers: {}, x: 500, y: 200, wires: [] },
  ];
}

export interface FlowOptions {
  chain?: "full" | "connector" | "unsettled";
  /** Alarm media on: the line-driver keeps each alarm's attachments (alarm-media node on this port) and sends [V]. */
  mediaPort?: number;
  /** email-connector settings other than the editor's defaults. */
  connector?: Record<string, unknown>;
  /**
   * The line-driver's node id ("ld"), which names its outbox directory: a new id starts with an empty
   * outbox, so a deploy does not load the outbox log that earlier runs in the same user directory left.
   */
  lineDriverId?: string;
}

/**
 * Ours: email-connector → (recorder) → data-map (classic four-line alarm) → line-driver (DC-09 over TCP).
 * `chain`: "connector" leaves data-map and line-driver out and settles each email by sending it back
 * into the connector (to tell the connector's cost from the chain's); "unsettled" does not settle at all.
 */
export function oursFlow(stack: MailStack, folder: string, receiverPort: number, opts: FlowOptions = {}): object[] {
  const chain = opts.chain ?? "full";
  const ld = opts.lineDriverId ?? "ld";
  const head = [
    TAB,
    { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields, credentials: { ...stack.tenant.credentials } },
    {
      id: "conn",
      z: "tab",
      x: 100,
      y: 100,
      ...emailConnectorDef({ oauth: "cfg", folder, ...opts.connector }),
      wires: [["record"]],
    },
  ];
  if (chain === "connector") return [...head, ...recorderNodes(["conn"])];
  if (chain === "unsettled") return [...head, ...recorderNodes([])];
  return [
    ...head,
    ...recorderNodes(["dm"]),
    { id: "dm", type: "data-map", z: "tab", x: 500, y: 100, map: defaultDataMapConfig(), wires: [[ld], []] },
    {
      id: ld,
      z: "tab",
      x: 700,
      y: 100,
      ...dc09LineDriverDef(receiverPort, {
        ackTimeout: 2,
        attempts: 3,
        sendText: false,
        sendLink: opts.mediaPort !== undefined,
        ...(opts.mediaPort !== undefined ? { media: "media" } : {}),
      }),
      wires: [[]],
    },
    ...(opts.mediaPort !== undefined
      ? [
          {
            id: "media",
            type: "alarm-media",
            host: "127.0.0.1",
            port: opts.mediaPort,
            baseUrl: `http://127.0.0.1:${opts.mediaPort}`,
            tls: false,
            types: "image/jpeg, video/mp4",
            maxFileMb: 50,
            maxFiles: 10,
            retentionDays: 30,
            maxTotalMb: 4096,
            linkValidHours: 168,
            credentials: { signingKey: "YmVuY2gtc2lnbmluZy1rZXktb2YtdGhlLWNlbnRyZS0x" },
          },
        ]
      : []),
  ];
}

/** Theirs: node-red-node-email "e-mail in", password login, IDLE ("auto" fetch), marks read. */
export function theirsFlow(stack: MailStack, folder: string): object[] {
  return [
    TAB,
    {
      id: "conn",
      type: "e-mail in",
      z: "tab",
      x: 100,
      y: 100,
      protocol: "IMAP",
      server: "127.0.0.1",
      useSSL: true,
      autotls: "never",
      port: String(stack.dovecot.imapsPort),
      authtype: "BASIC",
      box: folder,
      disposition: "Read",
      criteria: "UNSEEN",
      repeat: "60",
      fetch: "auto",
      inputs: 0,
      credentials: { userid: MAILBOX, password: ANCHOR_PASSWORD },
      wires: [["record"]],
    },
    ...recorderNodes([]),
  ];
}

/**
 * startNodeRed options that load the side's nodes: the anchor; ours from this repository, or from
 * BENCH_PACK_DIR (a copy of the package with a candidate change in nodes/, to measure it first).
 */
export function packOptions(who: Who): Pick<NodeRedOptions, "linkPack" | "linkModules"> {
  if (who === "theirs") return { linkModules: [ensureAnchorInstalled()] };
  const dir = process.env.BENCH_PACK_DIR;
  return dir ? { linkPack: false, linkModules: [{ name: "@alarm-gateway/node-red-o365", dir }] } : {};
}

export function flowFor(
  who: Who,
  stack: MailStack,
  folder: string,
  receiverPort: number,
  opts: FlowOptions = {},
): object[] {
  return who === "ours" ? oursFlow(stack, folder, receiverPort, opts) : theirsFlow(stack, folder);
}

/**
 * [subject, ms since epoch] of each message the mail node emitted, from index `since` on; none while
 * the flows are still starting (a deploy may answer before its HTTP routes exist).
 */
export async function readEmitted(red: NodeRedProcess, since = 0): Promise<[string, number][]> {
  const res = await fetch(`${red.url}/bench/emitted?since=${since}`);
  if (res.status === 404) return [];
  if (!res.ok) throw new Error(`recorder answered ${res.status}`);
  return (await res.json()) as [string, number][];
}

// --- the child ----------------------------------------------------------------------------------

// Loaded into the Node-RED child with --require. SIGWINCH (SIGUSR2 would make Node-RED exit) collects
// garbage twice and writes process.memoryUsage() to BENCH_MEM_FILE. With BENCH_CPU_PROFILE set, a CPU
// profile of the child's whole life is written there at exit (--cpu-prof is not allowed in
// NODE_OPTIONS). With BENCH_TRACE_FILE set, globalThis.benchTrace(what) timestamps events in an
// instrumented candidate build (BENCH_PACK_DIR), written there at exit.
const CHILD_HOOK = `
const fs = require("node:fs");
let snapshots = 0;
process.on("SIGWINCH", () => {
  global.gc();
  global.gc();
  // BENCH_HEAP_SNAPSHOTS=dir: also a heap snapshot per request, to compare what stays (a diagnostic).
  if (process.env.BENCH_HEAP_SNAPSHOTS)
    require("node:v8").writeHeapSnapshot(require("node:path").join(process.env.BENCH_HEAP_SNAPSHOTS, \`\${++snapshots}.heapsnapshot\`));
  fs.writeFileSync(process.env.BENCH_MEM_FILE, JSON.stringify({ ...process.memoryUsage(), at: Date.now() }));
});
if (process.env.BENCH_TRACE_FILE) {
  const events = [];
  globalThis.benchTrace = (what) => events.push([Date.now(), what]);
  process.on("exit", () => fs.writeFileSync(process.env.BENCH_TRACE_FILE, JSON.stringify(events)));
}
if (process.env.BENCH_CPU_PROFILE) {
  const session = new (require("node:inspector").Session)();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.on("exit", () => {
    session.post("Profiler.stop", (err, result) => {
      if (!err) fs.writeFileSync(process.env.BENCH_CPU_PROFILE, JSON.stringify(result.profile));
    });
  });
}
`;

/** Environment for the Node-RED child: --expose-gc and the hook above; `profile` names the .cpuprofile. */
export function childEnv(
  name: string,
  opts: { profile?: boolean } = {},
): { env: Record<string, string>; memFile: string; profileFile?: string; nodeArgs: string[] } {
  const hook = join(RUN_DIR, "bench-child-hook.js");
  writeFileSync(hook, CHILD_HOOK);
  const memFile = join(RUN_DIR, `bench-${name}-memory.json`);
  // BENCH_CHILD_NODE_OPTIONS: more Node.js options for the child (e.g. V8 heap sizes), for experiments.
  const extra = process.env.BENCH_CHILD_NODE_OPTIONS ?? "";
  const env: Record<string, string> = {
    NODE_OPTIONS: `--expose-gc --require ${hook} ${extra}`.trim(),
    BENCH_MEM_FILE: memFile,
  };
  if (process.env.BENCH_PACK_DIR) env.BENCH_TRACE_FILE = join(RUN_DIR, `bench-${name}-trace.json`);
  let profileFile: string | undefined;
  if (opts.profile) {
    mkdirSync(join(RUN_DIR, "bench-prof"), { recursive: true });
    profileFile = join(RUN_DIR, "bench-prof", `${name}.cpuprofile`);
    env.BENCH_CPU_PROFILE = profileFile;
  }
  // BENCH_CHILD_NODE_ARGS: V8 flags NODE_OPTIONS refuses (e.g. --no-opt, --single-threaded-gc), for experiments.
  const nodeArgs = (process.env.BENCH_CHILD_NODE_ARGS ?? "").split(" ").filter(Boolean);
  return { env, memFile, profileFile, nodeArgs };
}

export interface ChildMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** Full GC in the child, then its memory as it reports it. */
export async function gcAndMeasure(red: NodeRedProcess, memFile: string): Promise<ChildMemory> {
  const before = mtime(memFile);
  red.child.kill("SIGWINCH");
  for (let i = 0; i < 200; i++) {
    await sleep(25);
    const now = mtime(memFile);
    if (now !== before && now !== 0) {
      try {
        return JSON.parse(readFileSync(memFile, "utf8")) as ChildMemory;
      } catch {
        // caught mid-write: read again
      }
    }
  }
  throw new Error("the Node-RED child did not answer the GC request");
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * When the child logs "Started flows" after arm(): the moment its output reaches us (Node-RED's
 * own log time has one-second resolution).
 */
export function flowStartClock(red: NodeRedProcess): { arm(): void; startedAt(timeoutMs?: number): Promise<number> } {
  let armed = false;
  let tail = "";
  let at: number | undefined;
  const waiters: ((t: number) => void)[] = [];
  red.child.stdout?.on("data", (chunk: Buffer) => {
    if (!armed || at !== undefined) return;
    const now = Date.now();
    tail = (tail + chunk.toString()).slice(-200);
    if (/Started flows/.test(tail)) {
      at = now;
      for (const w of waiters.splice(0)) w(now);
    }
  });
  return {
    arm() {
      armed = true;
      tail = "";
      at = undefined;
    },
    startedAt(timeoutMs = 30_000) {
      if (at !== undefined) return Promise.resolve(at);
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no 'Started flows' in the Node-RED log")), timeoutMs);
        waiters.push((t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
  };
}

/** RSS of a process from /proc: sampled every `everyMs`, and the kernel's own peak (VmHWM). */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private sampledPeak = 0;

  constructor(
    readonly pid: number,
    readonly everyMs = 50,
  ) {}

  /** Current VmRSS and VmHWM in bytes. */
  read(): { rss: number; hwm: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  }

  /** Starts a new measurement: the peak so far (kernel's too) is forgotten. */
  start(): void {
    this.stop();
    writeFileSync(`/proc/${this.pid}/clear_refs`, "5"); // resets VmHWM to the current RSS
    this.sampledPeak = this.read().rss;
    this.timer = setInterval(() => {
      try {
        this.sampledPeak = Math.max(this.sampledPeak, this.read().rss);
      } catch {
        this.stop(); // the process is gone
      }
    }, this.everyMs);
  }

  /** Highest RSS since start(): the larger of the sampled maximum and the kernel's high-water mark. */
  peak(): number {
    try {
      return Math.max(this.sampledPeak, this.read().hwm);
    } catch {
      return this.sampledPeak;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

// --- mail -----------------------------------------------------------------------------------

/** An IMAPS session (not yet connected) of the mailbox owner with the anchor's password, errors swallowed. */
export function ownerSession(stack: MailStack, more: Record<string, unknown> = {}): ImapFlow {
  const client = new ImapFlow({
    host: "127.0.0.1",
    port: stack.dovecot.imapsPort,
    secure: true,
    auth: { user: MAILBOX, pass: ANCHOR_PASSWORD },
    tls: { ca: stack.tenant.certs.ca, rejectUnauthorized: true },
    logger: false,
    ...more,
  } as ConstructorParameters<typeof ImapFlow>[0]);
  client.on("error", () => undefined);
  return client;
}

/**
 * A plain IMAP client in this process that IDLEs on the folder with the password login and
 * timestamps each EXISTS: the moment any IMAP client can know of a new email (Dovecot notifies
 * IDLE sessions 500 ms after a change), the start of a mail node's own share of the latency.
 */
export async function watchExists(
  stack: MailStack,
  folder: string,
): Promise<{
  at: Map<number, number>;
  waitFor(count: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}> {
  const client = ownerSession(stack, { autoIdleDelay: 10, maxIdleTime: 25 * 60_000 });
  const at = new Map<number, number>();
  const waiters = new Map<number, (t: number) => void>();
  client.on("exists", (e: { count: number; prevCount: number }) => {
    const now = Date.now();
    for (let n = e.prevCount + 1; n <= e.count; n++) {
      at.set(n, now);
      waiters.get(n)?.(now);
      waiters.delete(n);
    }
  });
  await client.connect();
  await client.mailboxOpen(folder);
  return {
    at,
    waitFor(count, timeoutMs = 10_000) {
      const known = at.get(count);
      if (known !== undefined) return Promise.resolve(known);
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(count);
          reject(new Error(`no EXISTS ${count} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.set(count, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
    async close() {
      await Promise.race([client.logout().catch(() => undefined), sleep(1000)]);
      client.close();
    },
  };
}

/**
 * Appends many emails quickly: several password sessions of the mailbox owner in parallel (one
 * session answers one APPEND at a time). Order across sessions is not kept.
 */
export async function appendMany(
  stack: MailStack,
  folder: string,
  emails: (i: number) => string | Buffer,
  count: number,
  sessions = 4,
): Promise<number> {
  const t0 = performance.now();
  const clients = await Promise.all(
    Array.from({ length: Math.min(sessions, count) }, async () => {
      const c = new ImapFlow({
        host: "127.0.0.1",
        port: stack.dovecot.imapPort,
        secure: false,
        doSTARTTLS: false,
        auth: { user: MAILBOX, pass: ANCHOR_PASSWORD },
        disableAutoIdle: true,
        logger: false,
      } as ConstructorParameters<typeof ImapFlow>[0]);
      c.on("error", () => undefined);
      await c.connect();
      return c;
    }),
  );
  let next = 0;
  try {
    await Promise.all(
      clients.map(async (c) => {
        for (let i = next++; i < count; i = next++) await c.append(folder, emails(i), []);
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.logout().catch(() => c.close())));
  }
  return performance.now() - t0;
}

/** The classic four-line alarm body; the zone carries a number the receiver's frame shows again. */
export function alarmBody(zone: number): string {
  return `123588\r\nBA\r\n${zone}\r\n1\r\n`;
}

/** Zone number in a received SIA-DCS frame like "#123588|Nri1/BA03". */
export function zoneOf(data: string | undefined): number | undefined {
  const m = /BA(\d+)$/.exec(data ?? "");
  return m ? Number(m[1]) : undefined;
}
