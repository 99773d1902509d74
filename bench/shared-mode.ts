// Shared mode (issue #16, "two gateways on one mailbox"): what sharing the mailbox costs. Two sites run
// at the same time, each its own Dovecot, DC-09 receiver and Node-RED children with the example flow
// (test/helpers/shared-site.ts): "single" has one gateway with shared mode off, "shared" two gateways
// with it on (each claims an email by moving it into its own claim folder, settles it after the ACK).
// - Pickup: one email at a time, alternating between the sites (same machine load for both): APPEND
//   by the bench → the connector's output (a tap in the flow reports it over UDP), and → the receiver's ACK.
// - Burst: 1000 emails delivered at once to one site, then to the other (order alternating per round):
//   time until all are ACKed, CPU of the site's Node-RED children meanwhile, duplicates and lost.
//   node --import tsx bench/shared-mode.ts [--count 100] [--burst 1000] [--rounds 2] [--write-results]
import { createSocket } from "node:dgram";
import { cpus, loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { SharedSite } from "../test/helpers/shared-site";
import { soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import { MAILBOX } from "../test/helpers/tenant";
import { cpuMsOf, flags, today, withTestCa } from "./harness";
import { type GoalRow, goalTable, machine, percentile, recordGoals, writeSection } from "./results-file";

const f = flags();
const COUNT = f.num("count", 100);
const BURST = f.num("burst", 1000);
const ROUNDS = f.num("rounds", 2);
/** Emails of the pickup run are spaced randomly this much apart (after the previous one is ACKed). */
const SPACING_MS: [number, number] = [200, 1500];

type Mode = "single" | "shared";
const MODES: Mode[] = ["single", "shared"];
const LABEL: Record<Mode, string> = {
  single: "1 gateway, shared mode off",
  shared: "2 gateways, shared mode on (leaseSeconds 20)",
};
/** Account tags (hex) per mode: pickup, warm-up, burst rounds. */
const TAG: Record<Mode, { pickup: string; warm: string; burst: string }> = {
  single: { pickup: "A1", warm: "A0", burst: "A2" },
  shared: { pickup: "B1", warm: "B0", burst: "B2" },
};

const messageIdOf = (account: string) => `soak-${account.toLowerCase()}@site.contoso.test`;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");

/** Emissions the taps reported: messageId → the child's Date.now() of each. */
class Taps {
  readonly seen = new Map<string, number[]>();
  private readonly waiters = new Map<string, () => void>();
  private readonly socket = createSocket("udp4");

  async open(): Promise<number> {
    this.socket.on("message", (buf) => {
      const r = JSON.parse(buf.toString()) as { m: string | null; t: number };
      if (!r.m) return;
      this.seen.set(r.m, [...(this.seen.get(r.m) ?? []), r.t]);
      this.waiters.get(r.m)?.();
    });
    await new Promise<void>((resolve) => this.socket.bind(0, "127.0.0.1", resolve));
    return this.socket.address().port;
  }

  wait(messageId: string, timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (this.seen.has(messageId)) return resolve(true);
      const timer = setTimeout(() => {
        this.waiters.delete(messageId);
        resolve(false);
      }, timeoutMs);
      this.waiters.set(messageId, () => {
        clearTimeout(timer);
        this.waiters.delete(messageId);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** Resolves with the first ACK time of `account` at the site's receiver, or undefined after timeoutMs. */
async function ackOf(site: SharedSite, account: string, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = site.receiver.acked.find((a) => a.frame.account === account);
    if (e) return e.at;
    if (Date.now() > deadline) return undefined;
    await sleep(5);
  }
}

interface Pickup {
  out: number[];
  e2e: number[];
  appendMs: number[];
  missing: number;
  /** Emails out of a connector more than once (tap), ACKs beyond the first (receiver). */
  dupOut: number;
  dupAck: number;
  split: string;
}

async function startSite(mode: Mode, tapUdpPort: number): Promise<SharedSite> {
  const site = await SharedSite.start({
    name: `bench-${mode}`,
    transport: "imap",
    connector: mode === "single" ? { shared: false } : { leaseSeconds: 20 },
    gateway: { tapUdpPort },
  });
  await site.startGateway(0);
  if (mode === "shared") {
    await site.startGateway(1);
    await site.waitForLive(2);
  }
  return site;
}

/** Emails until the site's gateways have each handled a few (connected, idling, code warm). */
async function warmUp(mode: Mode, site: SharedSite, taps: Taps): Promise<void> {
  for (let i = 0, ok = 0; ok < 6; i++) {
    const account = soakAccount(TAG[mode].warm, i);
    await site.stack.dovecot.append(MAILBOX, soakAlarmEmail(account));
    if ((await taps.wait(messageIdOf(account), 10_000)) && (await ackOf(site, account, 10_000))) ok++;
    if (i > 20) throw new Error(`${mode}: warm-up emails do not come through`);
  }
}

async function pickup(sites: Record<Mode, SharedSite>, taps: Taps): Promise<Record<Mode, Pickup>> {
  const result = {} as Record<Mode, Pickup>;
  for (const m of MODES) result[m] = { out: [], e2e: [], appendMs: [], missing: 0, dupOut: 0, dupAck: 0, split: "" };
  const accounts: Record<Mode, string[]> = { single: [], shared: [] };
  for (let i = 0; i < COUNT; i++) {
    for (const mode of MODES) {
      const site = sites[mode];
      const r = result[mode];
      await sleep(SPACING_MS[0] + Math.random() * (SPACING_MS[1] - SPACING_MS[0]));
      const account = soakAccount(TAG[mode].pickup, i);
      accounts[mode].push(account);
      const raw = soakAlarmEmail(account, { zone: (i % 9999) + 1 });
      const t0 = Date.now();
      await site.stack.dovecot.append(MAILBOX, raw);
      r.appendMs.push(Date.now() - t0);
      const id = messageIdOf(account);
      const out = await taps.wait(id, 15_000);
      const acked = out ? await ackOf(site, account, 15_000) : undefined;
      if (!out || acked === undefined) {
        r.missing++;
        continue;
      }
      r.out.push((taps.seen.get(id)?.[0] ?? Number.NaN) - t0);
      r.e2e.push(acked - t0);
    }
    if ((i + 1) % 20 === 0) process.stderr.write(`pickup: ${i + 1}/${COUNT} (load ${load()})\n`);
  }
  await sleep(2000);
  for (const mode of MODES) {
    const r = result[mode];
    r.out.sort((a, b) => a - b);
    r.e2e.sort((a, b) => a - b);
    r.appendMs.sort((a, b) => a - b);
    r.dupOut = accounts[mode].reduce((n, a) => n + Math.max(0, (taps.seen.get(messageIdOf(a))?.length ?? 0) - 1), 0);
    const t = sites[mode].tally(accounts[mode]);
    r.dupAck = t.duplicates;
    r.split = await splitText(sites[mode], accounts[mode]);
  }
  return result;
}

async function splitText(site: SharedSite, accounts: string[]): Promise<string> {
  const split = await site.split(accounts);
  return [...split.entries()]
    .sort(([a], [b]) => a - b)
    .map(([i, n]) => `gw${i} ${n}`)
    .join(", ");
}

interface Burst {
  mode: Mode;
  round: number;
  appendMs: number;
  firstAck: number;
  allAcked: number;
  cpuMs: number;
  /** CPU until the children were idle again (settling after the last ACK included). */
  cpuToIdleMs: number;
  delivered: number;
  lost: number;
  duplicates: number;
  split: string;
  loadBefore: string;
}

async function burst(mode: Mode, round: number, site: SharedSite): Promise<Burst> {
  const pids = [...site.gateways.values()].map((g) => g.gateway.red.child.pid);
  const cpu = (): number => {
    let ms = 0;
    for (const pid of pids) ms += cpuMsOf(pid);
    return ms;
  };
  const loadBefore = load();
  const ackFrom = site.receiver.acked.length;
  const cpuBefore = cpu();
  const t0 = Date.now();
  const accounts = await site.deliver(`${TAG[mode].burst}${round}`, BURST);
  const appendMs = Date.now() - t0;
  const wanted = new Set(accounts);
  const first = new Map<string, number>();
  let cpuAtAll = Number.NaN;
  const deadline = Date.now() + 180_000;
  let scanned = ackFrom;
  while (Date.now() < deadline) {
    for (; scanned < site.receiver.acked.length; scanned++) {
      const e = site.receiver.acked[scanned];
      if (e && wanted.has(e.frame.account) && !first.has(e.frame.account)) first.set(e.frame.account, e.at);
    }
    if (first.size >= BURST) {
      cpuAtAll = cpu() - cpuBefore;
      break;
    }
    await sleep(20);
  }
  // Until the children are idle again: less than 20 ms of CPU in 1 s (the settling after the ACKs).
  let last = cpu();
  for (let i = 0; i < 60; i++) {
    await sleep(1000);
    const now = cpu();
    if (now - last < 20) break;
    last = now;
  }
  const cpuToIdleMs = cpu() - cpuBefore;
  const t = site.tally(accounts);
  const acks = [...first.values()];
  const b: Burst = {
    mode,
    round,
    appendMs,
    firstAck: Math.min(...acks) - t0,
    allAcked: first.size >= BURST ? Math.max(...acks) - t0 : Number.NaN,
    cpuMs: cpuAtAll,
    cpuToIdleMs,
    delivered: t.delivered,
    lost: t.lost.length,
    duplicates: t.duplicates,
    split: await splitText(site, accounts),
    loadBefore,
  };
  process.stderr.write(`burst ${mode} round ${round}: ${JSON.stringify(b)}\n`);
  return b;
}

async function main(): Promise<void> {
  if (withTestCa()) return;
  const loadAtStart = load();
  const started = Date.now();
  const taps = new Taps();
  const tapPort = await taps.open();
  const sites = {} as Record<Mode, SharedSite>;
  let picked: Record<Mode, Pickup>;
  const bursts: Burst[] = [];
  try {
    for (const mode of MODES) sites[mode] = await startSite(mode, tapPort);
    for (const mode of MODES) await warmUp(mode, sites[mode], taps);
    process.stderr.write(`sites up, warm (load ${load()})\n`);
    picked = await pickup(sites, taps);
    const loadAfterPickup = load();
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? MODES : [...MODES].reverse();
      for (const mode of order) bursts.push(await burst(mode, round, sites[mode]));
    }
    await report(picked, bursts, { loadAtStart, loadAfterPickup, minutes: (Date.now() - started) / 60_000 });
  } finally {
    for (const mode of MODES) await sites[mode]?.stop().catch(() => undefined);
    taps.close();
  }
}

async function report(
  picked: Record<Mode, Pickup>,
  bursts: Burst[],
  run: { loadAtStart: string; loadAfterPickup: string; minutes: number },
): Promise<void> {
  const p = (xs: number[], q: number) => percentile(xs, q);
  const pickupRows = MODES.map((m) => {
    const r = picked[m];
    return `| ${LABEL[m]} | ${r.out.length} | ${p(r.out, 50)} | ${p(r.out, 99)} | ${r.out.at(-1)} | ${p(r.e2e, 50)} | ${p(r.e2e, 99)} | ${r.e2e.at(-1)} | ${p(r.appendMs, 50)} | ${r.dupOut} / ${r.dupAck} | ${r.missing} | ${r.split} |`;
  });
  const diff = (q: number, what: "out" | "e2e") => p(picked.shared[what], q) - p(picked.single[what], q);
  const diffRow = `| shared − single | | **${diff(50, "out")}** | **${diff(99, "out")}** | | ${diff(50, "e2e")} | ${diff(99, "e2e")} | | | | | |`;
  const burstRows = bursts.map(
    (b) =>
      `| ${b.round} | ${LABEL[b.mode]} | ${b.appendMs} | ${b.firstAck} | ${b.allAcked} | ${Math.round((BURST / b.allAcked) * 1000)} | ${b.cpuMs} | ${b.cpuToIdleMs} | ${b.delivered} | ${b.lost} | ${b.duplicates} | ${b.split} | ${b.loadBefore} |`,
  );
  const mean = (mode: Mode, k: "allAcked" | "cpuMs") => {
    const xs = bursts.filter((b) => b.mode === mode).map((b) => b[k]);
    return Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  };
  for (const l of [...pickupRows, diffRow, ...burstRows]) console.log(l);
  const goal = (q: number): GoalRow => ({
    what: `shared mode (#16): pickup p${q}, 2 gateways vs 1 (APPEND → message out, ${COUNT} emails each)`,
    goal: "≤ single-instance + 10 ms",
    ours: `${p(picked.shared.out, q)} ms shared vs ${p(picked.single.out, q)} ms single (${diff(q, "out") >= 0 ? "+" : ""}${diff(q, "out")} ms)`,
    anchor: "-",
    met: picked.shared.out.length > 0 && picked.single.out.length > 0 ? diff(q, "out") <= 10 : null,
  });
  const goals = [goal(50), goal(99)];
  const args = `--count ${COUNT} --burst ${BURST} --rounds ${ROUNDS}`;
  if (!f.has("write-results")) return;
  recordGoals("shared-mode", goals);
  writeSection(
    "shared-mode",
    [
      "## Shared mode: two gateways on one mailbox (#16)",
      "",
      `\`node --import tsx bench/shared-mode.ts ${args} --write-results\`, ${today()}, ${machine()};`,
      `took ${run.minutes.toFixed(1)} min. Load average at the start ${run.loadAtStart}, after the pickup run ${run.loadAfterPickup} (${cpus().length} cores).`,
      "Two sites run at once (test/helpers/shared-site.ts), each with its own Dovecot 2.3, DC-09 receiver and Node-RED 4.1",
      "children running the example flow (email-connector → data-map → line-driver, outbox fsync on): single, one gateway",
      'with shared mode off; shared, two gateways with "share this mailbox" on (leaseSeconds 20), each claiming an email',
      "by moving it into its own claim folder and settling it after the receiver's ACK.",
      "",
      `### Pickup: ${COUNT} emails per site, alternating`,
      "",
      "One email at a time, alternating between the sites (the next only after the previous one was ACKed, then",
      `${SPACING_MS[0]}-${SPACING_MS[1]} ms random pause), so both modes see the same machine load. Times in ms from just before`,
      "the bench's APPEND (one open IMAP session) to: out, a tap on the connector's output (a function node in the",
      "gateway reports Date.now() over UDP); ACK, the receiver's ACK of the alarm. Dovecot notifies IDLE sessions 500 ms",
      "after a change (the floor of both).",
      "",
      "| mode | emails | out p50 | out p99 | out max | ACK p50 | ACK p99 | ACK max | APPEND p50 | duplicates out / ACK | missing | handled by |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...pickupRows,
      diffRow,
      "",
      `### Burst: ${BURST} emails delivered at once`,
      "",
      `${BURST} alarm emails appended over 4 IMAP sessions while the gateways run, to one site at a time, ${ROUNDS} round(s), order`,
      "alternating. Times in ms from the start of the appends; CPU is user + system of the site's Node-RED children",
      "(/proc/<pid>/stat), until all ACKed and until they were idle again (settling included).",
      "",
      "| round | mode | appends done | first ACK | all ACKed | alarms/s | CPU to all ACKed | CPU to idle | delivered | lost | duplicates | handled by | load before |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...burstRows,
      "",
      `Mean all ACKed: single ${mean("single", "allAcked")} ms, shared ${mean("shared", "allAcked")} ms; mean CPU to all ACKed: single ${mean("single", "cpuMs")} ms, shared ${mean("shared", "cpuMs")} ms (both gateways).`,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
