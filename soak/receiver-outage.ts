// Scenario 2: the receiver is down during a burst and comes back: every alarm delivered, in the
// order the emails arrived. With a backup receiver: failover within ack-timeout × attempts, for a
// receiver that stops answering and for one that refuses connections, and back to the primary.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { DC09_KEY, Gateway, NODE, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, folderState, soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import {
  ackedAlarms,
  type ScenarioResult,
  seconds,
  tally,
  Verdict,
  waitForDelivery,
} from "../test/helpers/soak-report";
import { type Dc09Receiver, startDc09Receiver } from "../test/standin/dc09-receiver";

export interface ReceiverOutageOptions {
  outageMs: number;
  /** Emails arriving while the receiver is down. */
  burst: number;
  /** Line-driver settings for the failover part (the example's: 5 s × 3). */
  ackTimeoutS?: number;
  attempts?: number;
  name?: string;
  log?: (line: string) => void;
}

const key = Buffer.from(DC09_KEY, "hex");

export async function receiverOutage(o: ReceiverOutageOptions): Promise<ScenarioResult> {
  const v = new Verdict(
    2,
    `receiver down ${seconds(o.outageMs)} during a ${o.burst}-email burst; failover to a backup`,
  );
  const log = o.log ?? (() => {});
  const name = o.name ?? "2-receiver-outage";
  rmSync(join(SOAK_DIR, name), { recursive: true, force: true });
  const stack = await startMailStack(name);
  try {
    await outage(stack, o, v, log, join(SOAK_DIR, name, "outage"));
    await failover(stack, o, v, log, join(SOAK_DIR, name, "failover"));
  } catch (err) {
    v.crashed(err);
  } finally {
    await stack.stop();
  }
  return v.result();
}

async function outage(stack: MailStack, o: ReceiverOutageOptions, v: Verdict, log: (l: string) => void, dir: string) {
  const receivers: Dc09Receiver[] = [await startDc09Receiver({ key })];
  const port = receivers[0]!.tcpPort;
  let gateway: Gateway | undefined;
  try {
    gateway = await Gateway.start({ dir, stack, receiverPort: port });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    const before = Array.from({ length: 5 }, (_, i) => soakAccount("B0", i));
    await appendEmails(stack, (i) => soakAlarmEmail(before[i]!), before.length, { sessions: 1 });
    const warm = await waitForDelivery(() => receivers, before, 30_000);
    v.check(warm.lost.length === 0, `before the outage: ${warm.lost.length} alarms not delivered`);

    await receivers[0]!.close();
    const downAt = Date.now();
    log(`receiver down for ${seconds(o.outageMs)}`);
    // One session, so that the mailbox order (UIDs) is the order written here.
    const accounts = Array.from({ length: o.burst }, (_, i) => soakAccount("B1", i));
    const appended = await appendEmails(stack, (i) => soakAlarmEmail(accounts[i]!), o.burst, {
      sessions: 1,
      spacingMs: Math.min(50, Math.floor(o.outageMs / 2 / o.burst)),
    });
    v.check(appended.refused.length === 0, `${appended.refused.length} appends refused`);
    const failing = await gateway.comms
      .waitForStatus(NODE.line, /failing/, { since: downAt, timeoutMs: 30_000 })
      .catch(() => undefined);
    v.check(failing !== undefined, "the line-driver status never said the receiver is failing");
    if (failing) v.note(`line-driver status during the outage: "${failing.text}"`);
    // Accepted into the outbox = the email is done with: marked read although nothing was delivered yet.
    let unreadDuringOutage = -1;
    for (let i = 0; i < 60 && Date.now() - downAt < o.outageMs - 1000; i++) {
      unreadDuringOutage = (await folderState(stack)).unseen.length;
      if (unreadDuringOutage === 0) break;
      await sleep(500);
    }
    v.check(unreadDuringOutage === 0, `${unreadDuringOutage} emails still unread during the outage (not accepted?)`);
    const deliveredDuringOutage = tally(receivers, accounts).delivered;
    await sleep(Math.max(0, downAt + o.outageMs - Date.now()));
    receivers.push(await startDc09Receiver({ key, tcpPort: port }));
    const upAt = Date.now();
    log("receiver back");
    const t = await waitForDelivery(() => receivers, accounts, 180_000);
    const back = receivers[1]!.acked.filter((e) => e.frame.id !== "NULL");
    const firstAckAfter = back.length > 0 ? back[0]!.at - upAt : Number.NaN;
    const lastAckAfter = back.length > 0 ? Math.max(...back.map((e) => e.at)) - upAt : Number.NaN;
    const inOrder = t.firstAckOrder.every((a, i) => a === accounts[i]);
    v.numbers["outage emails"] = o.burst;
    v.numbers.lost = t.lost.length;
    v.numbers.duplicates = t.duplicates;
    v.numbers["in order"] = inOrder ? "yes" : "no";
    v.numbers["first ACK after receiver back"] = seconds(firstAckAfter);
    v.numbers["all ACKed after receiver back"] = seconds(lastAckAfter);
    v.check(deliveredDuringOutage === 0, `${deliveredDuringOutage} alarms ACKed while the receiver was down?`);
    v.check(t.lost.length === 0, `${t.lost.length} alarms never delivered after the outage`);
    v.check(inOrder, `delivered out of order: ${t.firstAckOrder.slice(0, 10).join(",")}…`);
    // The transmitter backs off up to 60 s between rounds while the receiver is away.
    v.check(firstAckAfter <= 65_000, `first alarm only ${seconds(firstAckAfter)} after the receiver came back`);
  } finally {
    await gateway?.stop().catch(() => undefined);
    for (const r of receivers) await r.close().catch(() => undefined);
  }
}

async function failover(stack: MailStack, o: ReceiverOutageOptions, v: Verdict, log: (l: string) => void, dir: string) {
  const ackTimeoutS = o.ackTimeoutS ?? 5;
  const attempts = o.attempts ?? 3;
  const boundMs = ackTimeoutS * attempts * 1000;
  const primary = await startDc09Receiver({ key });
  const backup = await startDc09Receiver({ key });
  let gateway: Gateway | undefined;
  let n = 0;
  const send = async (count: number) => {
    const accounts = Array.from({ length: count }, () => soakAccount("B2", n++));
    const report = await appendEmails(stack, (i) => soakAlarmEmail(accounts[i]!), count, { sessions: 1 });
    return { accounts, appendedAt: Date.now() - report.ms };
  };
  const via = (r: Dc09Receiver, accounts: string[]) => tally([r], accounts).delivered;
  try {
    gateway = await Gateway.start({
      dir,
      stack,
      receiverPort: primary.tcpPort,
      backupPort: backup.tcpPort,
      lineDriver: { ackTimeout: ackTimeoutS, attempts, supervision: 2 },
    });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    const warm = await send(3);
    await waitForDelivery(() => [primary, backup], warm.accounts, 30_000);
    v.check(via(primary, warm.accounts) === 3, "alarms did not go to the primary while it answered");

    // A primary that accepts the connection and never answers.
    primary.behaviour = "silent";
    const silent = await send(3);
    let t = await waitForDelivery(() => [primary, backup], silent.accounts, boundMs * 3 + 30_000);
    const firstAtPrimary = primary.received.find((e) => e.frame.account === silent.accounts[0])?.at ?? Number.NaN;
    const firstAtBackup = backup.acked.find((e) => e.frame.account === silent.accounts[0])?.at ?? Number.NaN;
    const silentFailoverMs = firstAtBackup - firstAtPrimary;
    log(`silent primary: failover in ${seconds(silentFailoverMs)} (bound ${seconds(boundMs)})`);
    v.check(t.lost.length === 0, `${t.lost.length} alarms lost while the primary was silent`);
    v.check(
      silentFailoverMs <= boundMs + 1000,
      `failover from a silent primary took ${seconds(silentFailoverMs)} > ${ackTimeoutS} s × ${attempts}`,
    );

    // Back to the primary once it answers a link test again.
    primary.behaviour = "ack";
    const healedAt = Date.now();
    await primary.waitFor((r) => r.some((e) => e.frame.id === "NULL" && e.at >= healedAt), 30_000);
    const again = await send(3);
    t = await waitForDelivery(() => [primary, backup], again.accounts, 30_000);
    const backToPrimary = via(primary, again.accounts) === 3;
    v.check(backToPrimary, "did not return to the primary after it answered a link test");

    // A primary that refuses connections (process gone).
    await primary.close();
    const refused = await send(3);
    t = await waitForDelivery(() => [backup], refused.accounts, boundMs * 3 + 30_000);
    const refusedFailoverMs =
      (backup.acked.find((e) => e.frame.account === refused.accounts[0])?.at ?? Number.NaN) - refused.appendedAt;
    log(`refusing primary: email appended → ACK by the backup in ${Math.round(refusedFailoverMs)} ms`);
    v.check(t.lost.length === 0, `${t.lost.length} alarms lost after the primary went away`);
    // Measured from the APPEND, so it includes the pickup (about a second) as well.
    v.check(
      refusedFailoverMs <= boundMs + 3000,
      `failover from a refusing primary took ${seconds(refusedFailoverMs)} from the APPEND`,
    );
    const all = [...warm.accounts, ...silent.accounts, ...again.accounts, ...refused.accounts];
    const total = tally([primary, backup], all);
    v.numbers["failover (silent primary)"] = `${seconds(silentFailoverMs)} (bound ${ackTimeoutS} s × ${attempts})`;
    v.numbers["failover (refusing primary, from APPEND)"] = `${Math.round(refusedFailoverMs)} ms`;
    v.numbers["back to primary"] = backToPrimary ? "yes" : "no";
    v.numbers["failover lost"] = total.lost.length;
    v.numbers["failover duplicates"] = total.duplicates;
    v.check(
      ackedAlarms([primary, backup]).every((e) => e.frame.encrypted),
      "an alarm frame went out unencrypted",
    );
  } finally {
    await gateway?.stop().catch(() => undefined);
    await primary.close().catch(() => undefined);
    await backup.close();
  }
}
