// Issue #18: are the end-to-end latency and the burst slower with the panel's figures, the alarm trace and
// the metrics on? They cannot be switched off (the registry and the trace record always), so the pack is
// compared with a build of the commit before them, side by side, alternating A B A B on one Dovecot:
//   git worktree add /tmp/base-pack <commit> && ln -s $PWD/node_modules /tmp/base-pack/node_modules \
//     && (cd /tmp/base-pack && npx tsc -p tsconfig.json && node scripts/copy-assets.js)
//   node --import tsx bench/health-overhead.ts --base /tmp/base-pack [--rounds 2] [--count 1000] [--e2e 30] [--write-results]
// The panel, when open, adds one GET of the snapshot every 2 s; the bench opens it the same way (and a metrics
// scrape every second) while it measures the "with" side.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { flags, runMain, today } from "./harness";
import { goalTable, machine, recordGoals, writeSection } from "./results-file";

const f = flags();
const BASE = f.str("base");
const ROUNDS = f.num("rounds", 2);
const COUNT = f.num("count", 1000);
const E2E = f.num("e2e", 30);
if (!BASE) throw new Error("--base <dir of a built pack without the health figures> is required");

type Variant = "without" | "with";
interface Run {
  variant: Variant;
  allOut: number;
  allAcked: number;
  cpuMs: number;
  e2eP50: number;
  e2eP99: number;
  ownP50: number;
  ownP99: number;
}

function run(file: string, args: string[], env: Record<string, string>): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(__dirname, file), ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.stderr.on("data", (c) => {
      err += c;
    });
    child.on("exit", (code) =>
      code === 0 ? resolve({ out, err }) : reject(new Error(`${file} exited ${code}:\n${err.slice(-2000)}`)),
    );
  });
}

async function measure(variant: Variant): Promise<Run> {
  const env: Record<string, string> = variant === "without" ? { BENCH_PACK_DIR: BASE as string } : {};
  if (variant === "with") env.BENCH_SCRAPE_HEALTH = "1";
  const burst = await run("burst.ts", ["--count", String(COUNT), "--chains", "full", "--only", "ours"], env);
  // | ours, whole chain | 1000 | 1000 | 0 | first | allOut | last | ... | 1000 ACKs, first X, all Y (Z/s) |
  const cells =
    burst.out
      .split("\n")
      .find((l) => l.startsWith("| ") && l.includes("ACKs"))
      ?.split("|") ?? [];
  const allOut = Number(cells[6]?.trim());
  const allAcked = Number(/all (\d+)/.exec(cells[10] ?? "")?.[1]);
  const cpuMs = Number(/CPU until done (\d+) ms/.exec(burst.err)?.[1]);
  const e2e = await run("end-to-end.ts", ["--count", String(E2E), "--only", "ours"], env);
  const row =
    e2e.out
      .split("\n")
      .find((l) => l.startsWith("| ") && l.includes("APPEND → ACK"))
      ?.split("|") ?? [];
  const num = (i: number) => Number(row[i]?.trim());
  const r: Run = { variant, allOut, allAcked, cpuMs, e2eP50: num(4), e2eP99: num(5), ownP50: num(7), ownP99: num(8) };
  process.stderr.write(`${JSON.stringify(r)}\n`);
  return r;
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};

async function main(): Promise<void> {
  const runs: Run[] = [];
  for (let i = 0; i < ROUNDS; i++) for (const v of ["without", "with"] as Variant[]) runs.push(await measure(v));
  const rows = runs.map(
    (r, i) =>
      `| ${Math.floor(i / 2) + 1} | ${r.variant} | ${r.allOut} | ${r.allAcked} | ${r.cpuMs} | ${(r.cpuMs / COUNT).toFixed(2)} | ${r.e2eP50} | ${r.e2eP99} | ${r.ownP50} | ${r.ownP99} |`,
  );
  for (const l of rows) console.log(l);
  const m = (v: Variant, k: keyof Run) => median(runs.filter((r) => r.variant === v).map((r) => r[k] as number));
  const spread = (v: Variant, k: keyof Run) => {
    const xs = runs.filter((r) => r.variant === v).map((r) => r[k] as number);
    return Math.max(...xs) - Math.min(...xs);
  };
  const within = (k: keyof Run) => m("with", k) - m("without", k) <= Math.max(spread("without", k), spread("with", k));
  const goals = [
    {
      what: `burst of ${COUNT}: all ACKed, with the health figures and trace`,
      goal: "not slower (difference within the runs' spread)",
      ours: `${m("with", "allAcked")} ms vs ${m("without", "allAcked")} ms without (medians); CPU ${m("with", "cpuMs")} vs ${m("without", "cpuMs")} ms`,
      anchor: "-",
      met: within("allAcked"),
    },
    {
      what: "end to end p50 / p99 (APPEND → ACK), with the health figures and trace",
      goal: "not slower (difference within the runs' spread)",
      ours: `${m("with", "e2eP50")} / ${m("with", "e2eP99")} ms vs ${m("without", "e2eP50")} / ${m("without", "e2eP99")} ms without`,
      anchor: "-",
      met: within("e2eP50") && within("e2eP99"),
    },
  ];
  if (!f.has("write-results")) return;
  recordGoals("health-overhead", goals);
  writeSection(
    "health-overhead",
    [
      "## Panel, trace and metrics: what they cost",
      "",
      `\`node --import tsx bench/health-overhead.ts --base <pack before them> --rounds ${ROUNDS} --count ${COUNT} --e2e ${E2E}\`, ${today()}, ${machine()}.`,
      "The health registry and the alarm trace are always on: the pack is compared with a build of the commit before",
      "them (`--base`), alternating without/with, each run a fresh Node-RED child on the same Dovecot. The with side",
      "also has the panel's snapshot and a metrics scrape fetched every second while it runs (BENCH_SCRAPE_HEALTH).",
      'Burst: bench/burst.ts (whole chain, ms after "Started flows"; CPU of the Node-RED child until all ACKed);',
      "end to end: bench/end-to-end.ts (ms).",
      "",
      "| round | health | burst all out | burst all ACKed | CPU ms | CPU ms per alarm | e2e p50 | e2e p99 | own p50 | own p99 |",
      "|---|---|---|---|---|---|---|---|---|---|",
      ...rows,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

runMain(main);
