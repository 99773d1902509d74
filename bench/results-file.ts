// bench/results.md holds one section per bench script, rewritten in place by each run.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RUN_DIR } from "../test/standin/paths";

const FILE = join(__dirname, "results.md");
const HEADER = "# Benchmark results\n\nWritten by the scripts in bench/; each section says how it was produced.\n";

/** Replaces the section `name` in place; a new one goes at the end, or right after the header with `first`. */
export function writeSection(name: string, markdown: string, opts: { first?: boolean } = {}): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  let text = existsSync(FILE) ? readFileSync(FILE, "utf8") : HEADER;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else if (opts.first) {
    const k = text.indexOf("<!-- ");
    text = k >= 0 ? `${text.slice(0, k)}${block}\n\n${text.slice(k)}` : `${text.trimEnd()}\n\n${block}\n`;
  } else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(FILE, text);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? Number.NaN;
}

export function machine(): string {
  const os = require("node:os") as typeof import("node:os");
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

/** One goal of issue #10 with what this run measured, ours and the anchor's. */
export interface GoalRow {
  what: string;
  goal: string;
  ours: string;
  anchor: string;
  /** null: nothing to judge (no goal, or not measured in this run). */
  met: boolean | null;
}

const GOALS_DIR = join(RUN_DIR, "bench-goals");

/** Keeps the goal rows of a run that wrote its section (--write-results), for run-all's summary table. */
export function recordGoals(bench: string, rows: GoalRow[]): void {
  mkdirSync(GOALS_DIR, { recursive: true });
  writeFileSync(join(GOALS_DIR, `${bench}.json`), JSON.stringify(rows, null, 2));
}

export function recordedGoals(): { bench: string; rows: GoalRow[] }[] {
  if (!existsSync(GOALS_DIR)) return [];
  return readdirSync(GOALS_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({ bench: f.slice(0, -5), rows: JSON.parse(readFileSync(join(GOALS_DIR, f), "utf8")) as GoalRow[] }));
}

export function clearRecordedGoals(): void {
  if (!existsSync(GOALS_DIR)) return;
  for (const f of readdirSync(GOALS_DIR)) writeFileSync(join(GOALS_DIR, f), "[]");
}

export function goalTable(rows: GoalRow[]): string[] {
  const mark = (met: boolean | null) => (met === null ? "" : met ? "met" : "**missed**");
  return [
    "| measure | goal | ours | node-red-node-email | |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.what} | ${r.goal} | ${r.ours} | ${r.anchor} | ${mark(r.met)} |`),
  ];
}
