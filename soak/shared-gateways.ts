// Scenarios 9-13 (issue #16): two or three active gateways share one mailbox, coordinated only
// through it. Every alarm must reach the receiver, and as few as possible twice, whatever
// happens to one gateway: killed with its disk, cut from the mailbox, restarted with its peer.
import { setTimeout as sleep } from "node:timers/promises";
import { type SharedSite, SharedSite as Site, type SiteTransport } from "../test/helpers/shared-site";
import { DC09_KEY, NODE } from "../test/helpers/soak-gateway";
import { type ScenarioResult, seconds, seededRandom, Verdict, waitForDelivery } from "../test/helpers/soak-report";
import { startDc09Receiver } from "../test/standin/dc09-receiver";

type Log = (line: string) => void;

/**
 * Alarms a dead gateway may have had ACKed at the receiver without its email having left its
 * claim folder yet: the pump's window of transmissions whose outcome is on its way (5) and the
 * settlements of ACKed alarms not yet carried out on the server (one round of them). A peer
 * that takes the folder over raises those again: repeats, never a loss.
 */
export const SHARED_IN_FLIGHT = 25;

/** ACKs this long before a kill may belong to emails still in the victim's claim folder. */
const SETTLE_WINDOW_MS = 2500;

/** Shorter leases than the default 20 s, so that a run of many kills takes minutes, not hours. */
const LEASE_SECONDS = 10;

function connectorFor(leaseSeconds = LEASE_SECONDS): Record<string, unknown> {
  return { leaseSeconds, redeliverAfter: 120 };
}

async function startSite(name: string, transport: SiteTransport, gateways: number): Promise<SharedSite> {
  const site = await Site.start({ name, transport, connector: connectorFor() });
  for (let i = 1; i <= gateways; i++) await site.startGateway(i);
  await site.waitForLive(gateways, 90_000);
  return site;
}

/** Scenario 9: N gateways, bursts, nobody dies: each alarm ACKed exactly once, the work split. */
export async function sharedBursts(o: {
  burst: number;
  cases: { transport: SiteTransport; gateways: number }[];
  log?: Log;
}): Promise<ScenarioResult> {
  const v = new Verdict(9, `${o.burst}-email burst shared by 2 and 3 gateways, IMAP and Graph`);
  const log = o.log ?? (() => {});
  for (const c of o.cases) {
    const label = `${c.transport} × ${c.gateways}`;
    let site: SharedSite | undefined;
    try {
      site = await startSite(`9-${c.transport}-${c.gateways}`, c.transport, c.gateways);
      const started = Date.now();
      const accounts = await site.deliver(`A${c.gateways}${c.transport === "graph" ? "B" : "C"}`, o.burst);
      const t = await waitForDelivery(() => [site?.receiver as never], accounts, 300_000);
      const ms = Date.now() - started;
      const split = await site.split(accounts);
      const shares = [...split.entries()].sort((a, b) => a[0] - b[0]).map(([i, n]) => `gw${i} ${n}`);
      log(`${label}: lost ${t.lost.length}, duplicates ${t.duplicates}, all ACKed in ${seconds(ms)}, ${shares}`);
      v.numbers[`${label}: lost`] = t.lost.length;
      v.numbers[`${label}: duplicates`] = t.duplicates;
      v.numbers[`${label}: all ACKed after`] = seconds(ms);
      v.numbers[`${label}: split`] = shares.join(" / ");
      v.check(t.lost.length === 0, `${label}: ${t.lost.length} alarms never reached the receiver`);
      v.check(t.duplicates === 0, `${label}: ${t.duplicates} alarms raised twice with nobody dying`);
      v.check(
        split.size === c.gateways && [...split.values()].every((n) => n > 0),
        `${label}: the work was not split (${shares.join(", ")})`,
      );
    } catch (err) {
      v.crashed(err);
    } finally {
      await site?.stop().catch(() => undefined);
    }
  }
  return v.result();
}

/** Scenarios 10 and 11: kill -9 of one gateway during a burst, its user directory deleted. */
export async function sharedKills(o: {
  scenario: number;
  transport: SiteTransport;
  runs: number;
  burst: number;
  seed?: number;
  log?: Log;
}): Promise<ScenarioResult> {
  const v = new Verdict(
    o.scenario,
    `${o.transport === "imap" ? "IMAP" : "Graph"}: kill -9 of one of 2 gateways and its disk lost, ${o.runs} runs`,
  );
  const log = o.log ?? (() => {});
  const seed = o.seed ?? Date.now() % 100_000;
  const random = seededRandom(seed);
  let site: SharedSite | undefined;
  try {
    site = await startSite(`${o.scenario}-kills`, o.transport, 2);
    const calibrationStart = Date.now();
    const calibration = await site.deliver("C0", o.burst);
    const cal = await waitForDelivery(() => [site?.receiver as never], calibration, 300_000);
    const burstMs = Date.now() - calibrationStart;
    v.check(
      cal.lost.length === 0 && cal.duplicates === 0,
      `calibration burst: lost ${cal.lost.length}, twice ${cal.duplicates}`,
    );
    log(`calibration: ${o.burst} emails through 2 gateways in ${seconds(burstMs)}`);
    const runs: {
      lost: number;
      duplicates: number;
      killAt: number;
      takeoverMs: number;
      drainMs: number;
      window: number;
    }[] = [];
    for (let run = 1; run <= o.runs; run++) {
      const victim = 1 + (run % 2);
      const started = Date.now();
      const delivering = site.deliver(`D${run.toString(16).padStart(3, "0")}`, o.burst);
      await sleep(Math.round(random() * burstMs));
      const killAt = Date.now() - started;
      const victimId = site.instanceOf(victim);
      // Timed from the kill itself: reading the victim's records first may take a while in a burst.
      await site.kill(victim, { loseUserDir: true });
      const killedAt = Date.now();
      const takeover = takeoverAfter(site, killedAt, victimId);
      // What a kill may repeat: alarms ACKed but whose emails had not yet left the claim folder (an email
      // stays there 1.5 tie-break delays after its claim, 1.5 s by default, then one round trip) and the
      // pump's window. Counted at the receiver over both gateways, so an upper bound for the victim's.
      const window =
        site.receiver.acked.filter((e) => e.at >= killedAt - SETTLE_WINDOW_MS && e.at <= killedAt).length + 5;
      const accounts = await delivering;
      // The machine is replaced at once, with an empty disk: a new gateway identity.
      await site.startGateway(victim, { freshUserDir: true });
      const t = await waitForDelivery(() => [site?.receiver as never], accounts, 300_000);
      const drainMs = Date.now() - killedAt;
      const takeoverMs = await takeover;
      runs.push({ lost: t.lost.length, duplicates: t.duplicates, killAt, takeoverMs, drainMs, window });
      if (takeoverMs > (LEASE_SECONDS + 3) * 1000) {
        // A slow takeover: what the survivors said about leases meanwhile, for the one who reads this.
        for (const g of site.gateways.values()) {
          const said = g.gateway.red
            .log()
            .split("\n")
            .filter((l) => /gateways live|released|lease|reconnect|round failed/.test(l));
          log(
            `  gw${g.index} (${site.instanceOf(g.index)}), victim ${victimId}:\n    ${said.slice(-12).join("\n    ")}`,
          );
        }
      }
      log(
        `run ${run}: gw${victim} killed at ${killAt} ms, lost ${t.lost.length}, duplicates ${t.duplicates} (window ${window}), ` +
          `takeover ${takeoverMs < 0 ? "none needed" : seconds(takeoverMs)}, all ACKed ${seconds(drainMs)} after the kill`,
      );
      v.check(t.lost.length === 0, `run ${run}: ${t.lost.length} alarms lost`);
      v.check(t.duplicates <= window, `run ${run}: ${t.duplicates} duplicates (in-flight window ${window})`);
      await site.waitForLive(2, 90_000);
    }
    const takeovers = runs.map((r) => r.takeoverMs).filter((ms) => ms >= 0);
    v.numbers.seed = seed;
    v.numbers.emails = o.burst * (o.runs + 1);
    v.numbers.kills = runs.length;
    v.numbers.lost = runs.reduce((s, r) => s + r.lost, 0);
    v.numbers.duplicates = runs.reduce((s, r) => s + r.duplicates, 0);
    v.numbers["max duplicates per kill"] =
      `${Math.max(0, ...runs.map((r) => r.duplicates))} (in-flight windows ${Math.min(...runs.map((r) => r.window))}-${Math.max(...runs.map((r) => r.window))})`;
    v.numbers.lease = `${LEASE_SECONDS} s`;
    v.note(
      "takeover: from the kill -9 to the survivor's log line that releases the victim's claim folder " +
        "(its lease expired; the emails go back to the watched folder and are claimed again at once)",
    );
    v.numbers["takeover after kill"] =
      takeovers.length > 0
        ? `max ${seconds(Math.max(...takeovers))}, median ${seconds(takeovers.sort((a, b) => a - b)[Math.floor(takeovers.length / 2)] ?? 0)} (${takeovers.length} runs)`
        : "none needed";
    v.numbers["max all ACKed after kill"] = seconds(Math.max(0, ...runs.map((r) => r.drainMs)));
    v.check(
      takeovers.every((ms) => ms <= (LEASE_SECONDS + 5) * 1000),
      `a takeover came later than lease + 5 s: ${takeovers.map(seconds).join(", ")}`,
    );
    v.note(`kill moments (ms after the burst began): ${runs.map((r) => r.killAt).join(", ")}`);
  } catch (err) {
    v.crashed(err);
  } finally {
    await site?.stop().catch(() => undefined);
  }
  return v.result();
}

/** What a watcher logs when it releases a dead peer's claim folder back to the watched folder. */
export const RELEASED = /released \d+ email/i;

/**
 * Watches the surviving gateways' logs from now on and resolves how long after `since` the first
 * one released the claim folder of `victim` (any dead peer's when not named; polled every 100 ms);
 * -1 when none did within 60 s.
 */
export async function takeoverAfter(site: SharedSite, since: number, victim?: string): Promise<number> {
  const count = (text: string) =>
    text.split("\n").filter((l) => RELEASED.test(l) && (!victim || l.includes(`of gateway ${victim}:`))).length;
  const before = new Map([...site.gateways.values()].map((g) => [g.index, count(g.gateway.red.log())]));
  while (Date.now() - since < 60_000) {
    for (const g of site.gateways.values()) {
      if (g.gateway.alive && count(g.gateway.red.log()) > (before.get(g.index) ?? 0)) return Date.now() - since;
    }
    await sleep(100);
  }
  return -1;
}

/** Scenario 12: one gateway cut from the mailbox for a while; it still reaches the receiver. */
export async function sharedCut(o: { cutMs: number; burst: number; log?: Log }): Promise<ScenarioResult> {
  const v = new Verdict(12, `one of 2 gateways cut from the mailbox ${seconds(o.cutMs)} while it reaches the receiver`);
  const log = o.log ?? (() => {});
  let site: SharedSite | undefined;
  try {
    site = await startSite("12-cut", "imap", 2);
    const victim = site.gateways.get(1);
    if (!victim) throw new Error("no gateway 1");
    const delivering = site.deliver("CC1", o.burst);
    await sleep(300);
    const pid = victim.gateway.red.child.pid ?? 0;
    site.proxy.block(pid);
    const cutAt = Date.now();
    log(`gw1 (pid ${pid}) cut from the mailbox`);
    const accounts = await delivering;
    await sleep(Math.max(0, cutAt + o.cutMs - Date.now()));
    site.proxy.block(null);
    log("gw1 reaches the mailbox again");
    const t = await waitForDelivery(() => [site?.receiver as never], accounts, 300_000);
    v.numbers.emails = o.burst;
    v.numbers.lost = t.lost.length;
    v.numbers.duplicates = t.duplicates;
    v.numbers["all ACKed after the cut began"] = seconds(Date.now() - cutAt);
    v.check(t.lost.length === 0, `${t.lost.length} alarms lost`);
    v.check(t.duplicates <= SHARED_IN_FLIGHT, `${t.duplicates} duplicates (bound ${SHARED_IN_FLIGHT})`);
    const status = victim.gateway.comms.statusesOf(NODE.connector, cutAt).map((s) => s.text);
    v.note(`gw1 connector statuses during and after the cut: ${[...new Set(status)].slice(0, 6).join(" → ")}`);
  } catch (err) {
    v.crashed(err);
  } finally {
    site?.proxy.block(null);
    await site?.stop().catch(() => undefined);
  }
  return v.result();
}

/** Scenario 13: both gateways restarted together during a burst; then the receiver down for a while. */
export async function sharedRestartAndOutage(o: {
  burst: number;
  outageMs: number;
  log?: Log;
}): Promise<ScenarioResult> {
  const v = new Verdict(13, `2 gateways restarted together; receiver down ${seconds(o.outageMs)}`);
  const log = o.log ?? (() => {});
  let site: SharedSite | undefined;
  try {
    site = await startSite("13-restart", "imap", 2);
    const delivering = site.deliver("AB1", o.burst);
    await sleep(500);
    await Promise.all([site.stopGateway(1), site.stopGateway(2)]);
    const accounts = await delivering;
    await Promise.all([site.startGateway(1), site.startGateway(2)]);
    const t = await waitForDelivery(() => [site?.receiver as never], accounts, 300_000);
    log(`restart together: lost ${t.lost.length}, duplicates ${t.duplicates}`);
    v.numbers["restart: lost"] = t.lost.length;
    v.numbers["restart: duplicates"] = t.duplicates;
    v.check(t.lost.length === 0, `restart: ${t.lost.length} alarms lost`);
    v.check(t.duplicates === 0, `restart: ${t.duplicates} alarms raised twice`);

    // Receiver down: both gateways hold what they claimed; nothing is raised twice when it returns.
    const port = site.receiver.tcpPort;
    await site.receiver.close();
    const downAt = Date.now();
    const outage = await site.deliver("AB2", o.burst);
    log(`receiver down for ${seconds(o.outageMs)}, ${o.burst} emails arriving`);
    await sleep(Math.max(0, downAt + o.outageMs - Date.now()));
    const back = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex"), tcpPort: port });
    const backAt = Date.now();
    const u = await waitForDelivery(() => [back], outage, 300_000);
    log(
      `receiver back: lost ${u.lost.length}, duplicates ${u.duplicates}, all ACKed in ${seconds(Date.now() - backAt)}`,
    );
    v.numbers["outage: emails"] = o.burst;
    v.numbers["outage: lost"] = u.lost.length;
    v.numbers["outage: duplicates"] = u.duplicates;
    v.numbers["outage: all ACKed after receiver back"] = seconds(Date.now() - backAt);
    v.check(u.lost.length === 0, `outage: ${u.lost.length} alarms lost`);
    v.check(u.duplicates === 0, `outage: ${u.duplicates} alarms raised twice`);
    await back.close();
  } catch (err) {
    v.crashed(err);
  } finally {
    await site?.stop().catch(() => undefined);
  }
  return v.result();
}
