// `npm run bench`: every bench in sequence with the counts the issues name (about 35 minutes on 2 cores), each
// writing its section of bench/results.md, then a summary of the goals they recorded at the top of it.
// Needs root (the Dovecot stand-in) and a build (`npm run build`): the benches load nodes/.
//   node --import tsx bench/run-all.ts [--only name,name] [--skip name,name]
//   node --import tsx bench/run-all.ts --summary-only   (the summary again, from the goals recorded by the last runs)
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { flags, today, withTestCa } from "./harness";
import { clearRecordedGoals, goalTable, machine, recordedGoals, writeSection } from "./results-file";

interface Bench {
  name: string;
  file: string;
  args: string[];
  nodeArgs?: string[];
}

const BENCHES: Bench[] = [
  { name: "line-driver-throughput", file: "line-driver-throughput.ts", args: ["--count", "5000", "--write-results"] },
  {
    name: "line-driver-throughput-surgard",
    file: "line-driver-throughput.ts",
    args: ["--count", "5000", "--protocol", "surgard", "--write-results"],
  },
  { name: "outbox-latency", file: "outbox-latency.ts", args: ["--write-results"] },
  { name: "datamap-throughput", file: "datamap-throughput.ts", args: ["--write-results"] },
  { name: "parse-memory", file: "parse-memory.ts", args: [], nodeArgs: ["--expose-gc"] },
  { name: "pickup-latency", file: "pickup-latency.ts", args: ["--count", "200"] },
  { name: "end-to-end", file: "end-to-end.ts", args: ["--count", "60", "--write-results"] },
  { name: "burst", file: "burst.ts", args: ["--count", "1000", "--write-results"] },
  { name: "burst-warm", file: "burst.ts", args: ["--count", "1000", "--warm", "--write-results"] },
  {
    name: "burst-profile",
    file: "burst.ts",
    args: ["--count", "1000", "--chains", "full", "--only", "ours", "--profile", "--write-profile"],
  },
  { name: "memory", file: "memory.ts", args: ["--write-results"] },
  { name: "token-economy", file: "token-economy.ts", args: ["--write-results"] },
  { name: "shared-mode", file: "shared-mode.ts", args: ["--count", "100", "--write-results"] },
  // #19: hundreds of mailboxes across tenants, and Graph pickup under a second.
  {
    name: "scale",
    file: "scale.ts",
    args: [
      "--tenants",
      "20",
      "--imap",
      "5",
      "--graph",
      "5",
      "--rate",
      "20",
      "--seconds",
      "30",
      "--idle",
      "30",
      "--write-results",
    ],
  },
  {
    name: "graph-pickup",
    file: "graph-pickup.ts",
    args: ["--mailboxes", "1,200", "--count", "60", "--rate", "20", "--poll", "1", "--write-results"],
  },
];

/** The summary's order; benches not named here come last. */
const ORDER = [
  "pickup-latency",
  "end-to-end",
  "burst",
  "burst-warm",
  "memory",
  "token-economy",
  "shared-mode",
  "scale",
  "graph-pickup",
];
const rank = (bench: string) => (ORDER.includes(bench) ? ORDER.indexOf(bench) : ORDER.length);

function main(): void {
  if (withTestCa()) return;
  const f = flags();
  const only = f.str("only")?.split(",");
  const skip = f.str("skip")?.split(",") ?? [];
  const chosen = BENCHES.filter((b) => (!only || only.includes(b.name)) && !skip.includes(b.name));
  if (process.getuid?.() !== 0) console.warn("run-all: not root; the benches with a Dovecot stand-in will fail");
  const summaryOnly = f.has("summary-only");
  if (!summaryOnly) clearRecordedGoals();
  const t0 = Date.now();
  const failed: string[] = [];
  for (const b of summaryOnly ? [] : chosen) {
    const started = Date.now();
    console.log(`\n=== ${b.name}: ${b.file} ${b.args.join(" ")}`);
    const run = spawnSync(
      process.execPath,
      [...(b.nodeArgs ?? []), "--import", "tsx", join(__dirname, b.file), ...b.args],
      { stdio: "inherit" },
    );
    const s = ((Date.now() - started) / 1000).toFixed(0);
    if (run.status !== 0) {
      failed.push(b.name);
      console.log(`=== ${b.name} FAILED (exit ${run.status ?? run.signal}) after ${s} s`);
    } else console.log(`=== ${b.name} done in ${s} s`);
  }
  const minutes = ((Date.now() - t0) / 60_000).toFixed(1);
  const goals = recordedGoals()
    .filter((g) => g.rows.length > 0)
    .sort((a, b) => rank(a.bench) - rank(b.bench));
  if (goals.length > 0) {
    const rows = goals.flatMap((g) => g.rows);
    const met = rows.filter((r) => r.met === true).length;
    const judged = rows.filter((r) => r.met !== null).length;
    writeSection(
      "summary",
      [
        "## Summary: ours against node-red-node-email and the goals of the issues (#10, #19, ...)",
        "",
        summaryOnly
          ? `Goals as recorded by the last run of each bench (bench/run-all.ts --summary-only), ${today()}, ${machine()}.`
          : `\`npm run bench\` (bench/run-all.ts), ${today()}, ${machine()}; all benches took ${minutes} min.`,
        `${met} of ${judged} goals met; how each was measured, and the raw numbers, are in the sections below.`,
        "Both nodes run in their own Node-RED 4.1 child process against the same Dovecot 2.3 on this machine, one after the other.",
        `Load average when this was written: ${loadavg()
          .map((l) => l.toFixed(1))
          .join(
            ", ",
          )} on ${cpus().length} cores; above about 1, other work shares the CPUs and the burst and memory numbers`,
        "vary by tens of percent from run to run.",
        "",
        ...goalTable(rows),
      ].join("\n"),
      { first: true },
    );
  }
  console.log(`\nall benches: ${minutes} min${failed.length ? `; failed: ${failed.join(", ")}` : ""}`);
  if (failed.length > 0) process.exitCode = 1;
}

main();
