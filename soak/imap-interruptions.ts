// Scenario 3: the IMAP side goes away under the connector: Dovecot restarted during a burst, and
// the TCP connection cut in the middle of a FETCH (a proxy resetting it after 1 MB of a large
// email). The connector must be watching again within 5 s, and no alarm may be lost.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startMailStack } from "../test/helpers/mail-stack";
import type { Comms } from "../test/helpers/soak-comms";
import { DC09_KEY, Gateway, NODE, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, soakAccount, soakAlarmEmail, soakAlarmWithClip } from "../test/helpers/soak-mail";
import { type ScenarioResult, seconds, Verdict, waitForDelivery } from "../test/helpers/soak-report";
import { startDc09Receiver } from "../test/standin/dc09-receiver";

export interface ImapInterruptionsOptions {
  restarts: number;
  /** Emails appended before and again after each restart. */
  burst: number;
  cuts: number;
  name?: string;
  log?: (line: string) => void;
}

const RECONNECT_LIMIT_MS = 5000;

/**
 * How long after `from` the connector was watching again, having lost its connection after
 * `since`; undefined if it has not yet.
 */
function watchingAgain(comms: Comms, since: number, from: number): number | undefined {
  const after = comms.statusesOf(NODE.connector, since);
  const lostAt = after.findIndex((s) => !/^watching/.test(s.text));
  if (lostAt < 0) return undefined;
  const back = after.slice(lostAt).find((s) => /^watching/.test(s.text));
  return back ? Math.max(0, back.at - from) : undefined;
}

async function waitWatchingAgain(comms: Comms, since: number, from: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ms = watchingAgain(comms, since, from);
    if (ms !== undefined) return ms;
    if (Date.now() > deadline) return Number.POSITIVE_INFINITY;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function imapInterruptions(o: ImapInterruptionsOptions): Promise<ScenarioResult> {
  const v = new Verdict(3, `Dovecot restarted ${o.restarts}× during bursts, connection cut mid-FETCH ${o.cuts}×`);
  const log = o.log ?? (() => {});
  const name = o.name ?? "3-imap-interruptions";
  const dir = join(SOAK_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  const stack = await startMailStack(name, { viaProxy: true });
  const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
  let gateway: Gateway | undefined;
  const expected: string[] = [];
  const restartReconnects: number[] = [];
  const cutReconnects: number[] = [];
  try {
    gateway = await Gateway.start({ dir, stack, receiverPort: receiver.tcpPort });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    const proxy = stack.proxy!;

    for (let r = 0; r < o.restarts; r++) {
      const tag = `E${r.toString(16).padStart(2, "0")}`;
      const accounts = Array.from({ length: 2 * o.burst }, (_, i) => soakAccount(tag, i));
      expected.push(...accounts);
      await appendEmails(stack, (i) => soakAlarmEmail(accounts[i]!), o.burst);
      const restartedAt = Date.now();
      await stack.dovecot.restart(); // while the first half is being fetched, mapped, accepted
      const upAt = Date.now();
      const ms = await waitWatchingAgain(gateway.comms, restartedAt, upAt, 30_000);
      restartReconnects.push(ms);
      log(
        `restart ${r + 1}: Dovecot down ${seconds(upAt - restartedAt)}, connector watching ${ms} ms after it was back`,
      );
      await appendEmails(stack, (i) => soakAlarmEmail(accounts[o.burst + i]!), o.burst);
    }

    for (let c = 0; c < o.cuts; c++) {
      // Alternately fetched whole (4 MB) and streamed (12 MB, over the 10 MB in-memory limit).
      const bytes = c % 2 === 0 ? 4 * 1024 * 1024 : 12 * 1024 * 1024;
      const big = soakAccount(`F${c.toString(16).padStart(2, "0")}`, 0);
      const small = Array.from({ length: 5 }, (_, i) => soakAccount(`F${c.toString(16).padStart(2, "0")}`, i + 1));
      expected.push(big, ...small);
      const cut = proxy.cutAfter(1024 * 1024);
      await appendEmails(stack, (i) => (i === 0 ? soakAlarmWithClip(big, bytes) : soakAlarmEmail(small[i - 1]!)), 6, {
        sessions: 1,
      });
      let timer: NodeJS.Timeout | undefined;
      const cutAt = await Promise.race([
        cut.then(() => Date.now()),
        new Promise<number>((r) => {
          timer = setTimeout(() => r(0), 30_000);
        }),
      ]);
      clearTimeout(timer);
      if (!v.check(cutAt > 0, `cut ${c + 1}: the FETCH never passed 1 MB`)) continue;
      const ms = await waitWatchingAgain(gateway.comms, cutAt, cutAt, 30_000);
      cutReconnects.push(ms);
      const t = await waitForDelivery(() => [receiver], [big, ...small], 60_000);
      log(`cut ${c + 1} (${bytes >> 20} MB email): watching again after ${ms} ms; lost ${t.lost.length}`);
    }

    const t = await waitForDelivery(() => [receiver], expected, 120_000);
    const worst = (list: number[]) => (list.length > 0 ? Math.max(...list) : 0);
    v.numbers.emails = expected.length;
    v.numbers.lost = t.lost.length;
    v.numbers.duplicates = t.duplicates;
    v.numbers["max reconnect after Dovecot restart"] = `${worst(restartReconnects)} ms`;
    v.numbers["max reconnect after cut"] = `${worst(cutReconnects)} ms`;
    v.check(t.lost.length === 0, `${t.lost.length} alarms never delivered (${t.lost.slice(0, 5).join(", ")})`);
    v.check(
      worst(restartReconnects) <= RECONNECT_LIMIT_MS,
      `reconnect after a Dovecot restart took ${restartReconnects.join(", ")} ms (limit 5 s)`,
    );
    v.check(
      worst(cutReconnects) <= RECONNECT_LIMIT_MS,
      `reconnect after a cut took ${cutReconnects.join(", ")} ms (limit 5 s)`,
    );
    v.check(gateway.starts === 1 && gateway.alive, "Node-RED did not survive");
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await receiver.close();
    await stack.stop();
  }
  return v.result();
}
