// The long soak of issue #9: every scenario at the issue's sizes against the real pipeline
// (Node-RED child with the example flow, Dovecot, the Entra ID stand-in, a DC-09 receiver), a
// verdict and numbers for each, printed as a markdown table and written to soak/results.md.
//   node --import tsx soak/run.ts              all scenarios, full sizes (about 30 minutes)
//   node --import tsx soak/run.ts --only 1,6   some of them
//   node --import tsx soak/run.ts --quick      the CI sizes (a few minutes)
// Needs root (Dovecot, tmpfs) and `npm run build` first. Artifacts: .run/soak/.

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { SOAK_DIR } from "../test/helpers/soak-gateway";
import { markdownNotes, markdownTable, mergeResults, type ScenarioResult } from "../test/helpers/soak-report";
import { adminPermissions } from "./admin-permissions";
import { diskFull } from "./disk-full";
import { hostileCorpus } from "./hostile-corpus";
import { imapInterruptions } from "./imap-interruptions";
import { killNine } from "./kill9";
import { receiverOutage } from "./receiver-outage";
import { secrets } from "./secrets";
import { sharedBursts, sharedCut, sharedKills, sharedRestartAndOutage } from "./shared-gateways";
import { tokenFailures } from "./token-failures";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const onlyArg = argv[argv.indexOf("--only") + 1];
const only = argv.includes("--only") && onlyArg ? new Set(onlyArg.split(",").map(Number)) : undefined;
const started = Date.now();
const log = (line: string) =>
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}\n`);

const scenarios: [number, () => Promise<ScenarioResult>][] = [
  [1, () => killNine(quick ? { runs: 3, burst: 100, log } : { runs: 20, burst: 1000, log })],
  [
    2,
    () =>
      receiverOutage(
        quick
          ? { outageMs: 10_000, burst: 50, ackTimeoutS: 1, attempts: 2, log }
          : { outageMs: 5 * 60_000, burst: 1000, ackTimeoutS: 5, attempts: 3, log },
      ),
  ],
  [
    3,
    () =>
      imapInterruptions(quick ? { restarts: 1, burst: 40, cuts: 2, log } : { restarts: 5, burst: 200, cuts: 10, log }),
  ],
  [
    4,
    () =>
      tokenFailures(
        quick
          ? { failures: ["server-error", "invalid_client"], holdMs: 6000, log }
          : { failures: ["server-error", "timeout", "invalid_client"], holdMs: 60_000, emails: 20, log },
      ),
  ],
  [
    5,
    () =>
      diskFull(
        quick
          ? { maxEmails: 12, fullMs: 5000, redeliverAfterS: 10, log }
          : { maxEmails: 20, fullMs: 60_000, redeliverAfterS: 60, log },
      ),
  ],
  [
    6,
    () =>
      hostileCorpus(
        quick
          ? { count: 50, bigMiB: 12, rssLimitMiB: 512, timeoutMs: 150_000, log }
          : { bigMiB: 100, rssLimitMiB: 640, timeoutMs: 600_000, log },
      ),
  ],
  // Last but one: it searches what every scenario before it wrote.
  [7, () => secrets({ log })],
  [8, () => adminPermissions({ log })],
  // Issue #16: gateways sharing one mailbox.
  [
    9,
    () =>
      sharedBursts(
        quick
          ? {
              burst: 100,
              cases: [
                { transport: "imap", gateways: 2 },
                { transport: "graph", gateways: 2 },
              ],
              log,
            }
          : {
              burst: 1000,
              cases: [
                { transport: "imap", gateways: 2 },
                { transport: "imap", gateways: 3 },
                { transport: "graph", gateways: 2 },
                { transport: "graph", gateways: 3 },
              ],
              log,
            },
      ),
  ],
  [10, () => sharedKills({ scenario: 10, transport: "imap", runs: quick ? 2 : 20, burst: quick ? 100 : 300, log })],
  [11, () => sharedKills({ scenario: 11, transport: "graph", runs: quick ? 1 : 10, burst: quick ? 100 : 300, log })],
  [12, () => sharedCut({ cutMs: quick ? 20_000 : 60_000, burst: quick ? 100 : 300, log })],
  [13, () => sharedRestartAndOutage({ burst: quick ? 50 : 300, outageMs: quick ? 20_000 : 5 * 60_000, log })],
];

async function main(): Promise<void> {
  if (!only) rmSync(SOAK_DIR, { recursive: true, force: true });
  const results: ScenarioResult[] = [];
  for (const [n, run] of scenarios) {
    if (only && !only.has(n)) continue;
    log(`scenario ${n} …`);
    const result = await run();
    log(`scenario ${n}: ${result.pass ? "pass" : "FAIL"} in ${(result.ms / 1000).toFixed(0)} s`);
    results.push(result);
  }
  const command = `node --import tsx soak/run.ts${argv.length > 0 ? ` ${argv.join(" ")}` : ""}`;
  const machine =
    `${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ` +
    `load average at the end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`;
  const table = markdownTable(results);
  const report = [
    "# Soak results (issue #9)",
    "",
    `\`${command}\`, ${stamp()}, ${((Date.now() - started) / 60_000).toFixed(0)} min.`,
    `Machine: ${machine}.`,
    "",
    table,
    "",
    "## Notes",
    "",
    markdownNotes(results),
    "",
  ].join("\n");
  console.log(`\n${table}\n`);
  if (!quick && !only) writeFileSync(join(__dirname, "results.md"), report);
  else writeFileSync(join(SOAK_DIR, "results.md"), report);
  // Full-size runs of some scenarios replace those scenarios' rows and notes in soak/results.md.
  if (!quick && only) {
    const file = join(__dirname, "results.md");
    writeFileSync(file, mergeResults(readFileSync(file, "utf8"), results, `\`${command}\`, ${stamp()}, ${machine}`));
  }
  process.exitCode = results.every((r) => r.pass) ? 0 : 1;
}

function stamp(): string {
  return `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  })
  .finally(() => {
    // A stand-in's leftover socket must not keep a finished soak waiting.
    setTimeout(() => process.exit(), 10_000).unref();
  });
