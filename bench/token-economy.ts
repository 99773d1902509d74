// Token economy: token requests the Entra ID stand-in receives for 10 connectors sharing one
// o365-oauth-config over 3 hours of simulated time, with 1-hour tokens. Node-RED cannot fast-forward,
// so the config node runs in this process (node-red-node-test-helper) and its users are token probes
// (test/helpers/token-probe.js: they ask the config node exactly as the email-connector does); the
// clock jumps: Date, which MSAL reads for token expiry, is replaced by one running `offset` ahead.
//   node --import tsx bench/token-economy.ts [--connectors 10] [--hours 3] [--lifetime 3600] [--every 60] [--write-results]
import helper from "node-red-node-test-helper";
import { CLIENT_SECRET, startTestTenant, type TestTenant } from "../test/helpers/tenant";
import { flags, today, withTestCa } from "./harness";
import { type GoalRow, goalTable, machine, recordGoals, writeSection } from "./results-file";

const f = flags();
const CONNECTORS = f.num("connectors", 10);
const HOURS = f.num("hours", 3);
const LIFETIME_S = f.num("lifetime", 3600);
/** Simulated seconds between two token requests of one connector (a real one asks on each (re)connect). */
const EVERY_S = f.num("every", 60);
const GOAL = 4;

const RealDate = Date;
let offsetMs = 0;

/** Date with the simulated clock: `new Date()` and `Date.now()` run offsetMs ahead; everything else as usual. */
class SimulatedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() + offsetMs);
    else super(...(args as [string | number | Date]));
  }

  static override now(): number {
    return RealDate.now() + offsetMs;
  }
}

type Listener = (...a: any[]) => void;
type Probe = { receive(msg: object): void; once(ev: string, cb: Listener): void; off(ev: string, cb: Listener): void };

function ask(i: number): Promise<string> {
  const probe = helper.getNode(`p${i}`) as Probe;
  const out = helper.getNode(`h${i}`) as Probe;
  return new Promise((resolve, reject) => {
    const onInput = (m: { payload: string }) => {
      probe.off("call:error", onError);
      resolve(m.payload);
    };
    const onError = (call: { firstArg: unknown }) => {
      out.off("input", onInput);
      reject(call.firstArg);
    };
    out.once("input", onInput);
    probe.once("call:error", onError);
    probe.receive({});
  });
}

async function main(): Promise<void> {
  if (withTestCa()) return;
  helper.init(require.resolve("node-red"));
  const configNode = require("../nodes/o365-oauth-config.js");
  const probeNode = require("../test/helpers/token-probe.js");
  let tenant: TestTenant | undefined;
  globalThis.Date = SimulatedDate as DateConstructor;
  try {
    tenant = await startTestTenant({ lifetimeSeconds: LIFETIME_S });
    await new Promise<void>((r) => helper.startServer(() => r()));
    const flow = [
      { id: "cfg", type: "o365-oauth-config", ...tenant.fields },
      ...Array.from({ length: CONNECTORS }, (_, i) => ({
        id: `p${i}`,
        type: "token-probe",
        config: "cfg",
        wires: [[`h${i}`]],
      })),
      ...Array.from({ length: CONNECTORS }, (_, i) => ({ id: `h${i}`, type: "helper" })),
    ];
    await helper.load([configNode, probeNode], flow, { cfg: { clientSecret: CLIENT_SECRET } });
    const start = tenant.entra.tokenRequestCount;
    const requestsAt: number[] = []; // simulated seconds
    const firstSeen = new Map<string, number>();
    let asks = 0;
    let oldestUse = 0; // age (s) of the oldest token a connector got
    for (let t = 0; t < HOURS * 3600; t += EVERY_S) {
      // Each connector asks once per step, spread over the step, as independent reconnects would be.
      for (let i = 0; i < CONNECTORS; i++) {
        const at = t + (i * EVERY_S) / CONNECTORS;
        offsetMs = at * 1000;
        const before = tenant.entra.tokenRequestCount;
        const token = await ask(i);
        asks++;
        if (tenant.entra.tokenRequestCount > before) requestsAt.push(at);
        if (!firstSeen.has(token)) firstSeen.set(token, at);
        oldestUse = Math.max(oldestUse, at - (firstSeen.get(token) ?? at));
      }
    }
    const requests = tenant.entra.tokenRequestCount - start;
    const minutes = requestsAt.map((s) => (s / 60).toFixed(0)).join(", ");
    const line = `${CONNECTORS} connectors, ${HOURS} h simulated, ${LIFETIME_S / 60}-minute tokens, each connector asking every ${EVERY_S} s (${asks.toLocaleString("en")} asks): ${requests} token requests (at minutes ${minutes}); oldest token handed out was ${(oldestUse / 60).toFixed(0)} min old`;
    console.log(line);
    const goals: GoalRow[] = [
      {
        what: `token requests, ${CONNECTORS} connectors × ${HOURS} h, ${LIFETIME_S / 60}-min tokens`,
        goal: `≤ ${GOAL}`,
        ours: `${requests} (one config node shared)`,
        anchor: "none: password login (not possible on Office 365)",
        met: requests <= GOAL && oldestUse < LIFETIME_S,
      },
    ];
    if (f.has("write-results")) {
      recordGoals("token-economy", goals);
      writeSection(
        "token-economy",
        [
          "## Token economy",
          "",
          `\`node --import tsx bench/token-economy.ts --connectors ${CONNECTORS} --hours ${HOURS} --lifetime ${LIFETIME_S} --every ${EVERY_S}\`, ${today()}, ${machine()}.`,
          "The o365-oauth-config node (MSAL client credentials) runs in the bench process under node-red-node-test-helper with",
          "token-probe users that ask it for an IMAP token as the email-connector does; the Entra ID stand-in counts token requests.",
          "Simulated time: `Date` is replaced by one running ahead (MSAL computes expiry from it and renews 5 min before it).",
          "A real connector asks only when it (re)connects; asking every minute is the worst case.",
          "",
          `- ${line}`,
          "",
          ...goalTable(goals),
        ].join("\n"),
      );
    }
  } finally {
    globalThis.Date = RealDate;
    await helper.unload().catch(() => undefined);
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await tenant?.stop();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
