// Scenario 1: kill -9 of Node-RED at a random moment during each burst of alarm emails, restart,
// and count at the receiver: every email raised at least once, and how many twice.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startMailStack } from "../test/helpers/mail-stack";
import { DC09_KEY, Gateway, NODE, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, folderState, pollUntil, soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import {
  type ScenarioResult,
  seconds,
  seededRandom,
  type Tally,
  tally,
  Verdict,
  waitForDelivery,
} from "../test/helpers/soak-report";
import { startDc09Receiver } from "../test/standin/dc09-receiver";

/**
 * Alarms a kill can catch between the receiver's ACK and the outbox's record of it: the one being
 * sent and up to 4 delivered ones whose outcome is on its way to disk (OutboxPump's window).
 * Each is sent again after the restart, with its sequence number: a repeat, never a loss.
 */
const IN_FLIGHT = 5;

export interface Kill9Options {
  runs: number;
  burst: number;
  seed?: number;
  /** Per burst, after the restart. */
  drainTimeoutMs?: number;
  name?: string;
  log?: (line: string) => void;
}

export async function killNine(o: Kill9Options): Promise<ScenarioResult> {
  const v = new Verdict(1, `kill -9 during ${o.burst}-email bursts, ${o.runs} runs`);
  const log = o.log ?? (() => {});
  const seed = o.seed ?? Date.now() % 100_000;
  const random = seededRandom(seed);
  const dir = join(SOAK_DIR, o.name ?? "1-kill9");
  rmSync(dir, { recursive: true, force: true });
  const stack = await startMailStack(o.name ?? "soak-kill9");
  const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
  let gateway: Gateway | undefined;
  const drainTimeoutMs = o.drainTimeoutMs ?? 180_000;
  try {
    gateway = await Gateway.start({ dir, stack, receiverPort: receiver.tcpPort });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });

    const burst = (tag: string) => {
      const accounts = Array.from({ length: o.burst }, (_, i) => soakAccount(tag, i));
      const started = Date.now();
      const appending = appendEmails(stack, (i) => soakAlarmEmail(accounts[i]!, { zone: (i % 9999) + 1 }), o.burst);
      return { accounts, started, appending };
    };
    // One burst without a kill: how long a burst takes, so that kills land inside one.
    const calibration = burst("C0");
    await calibration.appending;
    const calibrated = await waitForDelivery(() => [receiver], calibration.accounts, drainTimeoutMs);
    const burstMs = Date.now() - calibration.started;
    v.check(calibrated.lost.length === 0, `calibration burst lost ${calibrated.lost.length} without any kill`);
    log(`calibration: ${o.burst} emails delivered in ${seconds(burstMs)}`);

    const runs: (Tally & { killAtMs: number; ackedAtKill: number; drainMs: number; unseen: number })[] = [];
    for (let run = 1; run <= o.runs; run++) {
      const tag = `D${run.toString(16).padStart(3, "0")}`;
      const b = burst(tag);
      // Odd runs: a random time within a burst's length (any stage: fetching, mapping, accepting);
      // even runs: once a random share of the burst is ACKed (the whole chain busy).
      if (run % 2 === 1) await sleep(Math.max(0, Math.round(random() * burstMs) - (Date.now() - b.started)));
      else {
        const k = 1 + Math.floor(random() * (o.burst - 1));
        await receiver
          .waitFor(() => tally([receiver], b.accounts).delivered >= k, drainTimeoutMs)
          .catch(() => undefined); // killed all the same
      }
      const killAtMs = Date.now() - b.started;
      const ackedAtKill = tally([receiver], b.accounts).delivered;
      await gateway.kill();
      const appended = await b.appending;
      v.check(appended.refused.length === 0, `run ${run}: Dovecot refused ${appended.refused.length} appends`);
      const restartedAt = Date.now();
      await gateway.restart();
      const t = await waitForDelivery(() => [receiver], b.accounts, drainTimeoutMs);
      // Delivered is not enough: every email must also be marked read, or it would be offered again.
      const unseen = await pollUntil(
        async () => {
          const state = await folderState(stack);
          return state.unseen.length === 0 ? 0 : undefined;
        },
        60_000,
        () => "every email marked read",
      ).catch(async () => (await folderState(stack)).unseen.length);
      const drainMs = Date.now() - restartedAt;
      runs.push({ ...t, killAtMs, ackedAtKill, drainMs, unseen });
      log(
        `run ${run}: killed at ${killAtMs} ms (${ackedAtKill}/${o.burst} ACKed), after restart: lost ${t.lost.length}, ` +
          `duplicates ${t.duplicates} (new seq ${t.newSeqDuplicates}), unread ${unseen}, drained in ${seconds(drainMs)}`,
      );
      v.check(
        t.lost.length === 0,
        `run ${run}: ${t.lost.length} emails never reached the receiver (${t.lost.slice(0, 5).join(", ")}…)`,
      );
      v.check(
        t.duplicates <= IN_FLIGHT,
        `run ${run}: ${t.duplicates} duplicates after one kill (at most ${IN_FLIGHT} alarms are in flight)`,
      );
      v.check(unseen === 0, `run ${run}: ${unseen} emails left unread after delivery`);
    }
    const total = (f: (r: (typeof runs)[number]) => number) => runs.reduce((s, r) => s + f(r), 0);
    v.numbers.seed = seed;
    v.numbers.emails = o.burst * (o.runs + 1);
    v.numbers.kills = runs.length;
    v.numbers.lost = total((r) => r.lost.length) + calibrated.lost.length;
    v.numbers.duplicates = total((r) => r.duplicates);
    v.numbers["new-seq duplicates"] = total((r) => r.newSeqDuplicates);
    v.numbers["max duplicates per kill"] =
      `${Math.max(0, ...runs.map((r) => r.duplicates))} (in-flight window ${IN_FLIGHT})`;
    v.numbers["burst without kill"] = seconds(burstMs);
    v.numbers["max drain after restart"] = seconds(Math.max(0, ...runs.map((r) => r.drainMs)));
    v.check(
      v.numbers["new-seq duplicates"] === 0,
      "a repeat carried a new sequence number: the centre sees a new alarm",
    );
    v.note(
      `kill moments (ms after the burst began, alarms ACKed by then): ${runs.map((r) => `${r.killAtMs} (${r.ackedAtKill})`).join(", ")}`,
    );
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await receiver.close();
    await stack.stop();
  }
  return v.result();
}
