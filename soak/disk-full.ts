// Scenario 5: the disk under Node-RED's user directory fills up. An alarm whose outbox record
// cannot be written must not be taken: its email stays unread, the line-driver says why, and
// once space returns the email comes round again and is delivered.
// The user directory is a small tmpfs that is filled with a file (root); where mounting is not
// allowed, the Node-RED process gets a file size limit instead (RLIMIT_FSIZE, prlimit).
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startMailStack } from "../test/helpers/mail-stack";
import { DC09_KEY, Gateway, NODE, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, folderState, pollUntil, soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import { ackedAlarms, type ScenarioResult, seconds, Verdict, waitForDelivery } from "../test/helpers/soak-report";
import { startDc09Receiver } from "../test/standin/dc09-receiver";

export interface DiskFullOptions {
  /** At most this many emails arrive while the disk is full (one at a time, until the outbox refuses one). */
  maxEmails: number;
  /** How long the disk stays full. */
  fullMs: number;
  /** The connector's "offer again after" (s): when an email that could not be taken comes round again. */
  redeliverAfterS: number;
  /** Default: tmpfs where mounting is allowed. */
  method?: Method;
  name?: string;
  log?: (line: string) => void;
}

const PUMP_FIX = "outbox pump retries only the outcome write";

export type Method = "tmpfs" | "prlimit";

function tryMount(dir: string): boolean {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", dir], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync("umount", ["-l", dir], { stdio: "pipe" });
  } catch {
    // not mounted
  }
}

/** Writes a file until the file system refuses: ENOSPC. */
function fill(path: string): number {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

function limitFileSize(pid: number, bytes: number | "unlimited"): void {
  execFileSync("prlimit", ["--pid", String(pid), `--fsize=${bytes}:`], { stdio: "pipe" });
}

export async function diskFull(o: DiskFullOptions): Promise<ScenarioResult> {
  const v = new Verdict(5, `disk full for ${seconds(o.fullMs)}: outbox write fails`);
  const log = o.log ?? (() => {});
  const name = o.name ?? "5-disk-full";
  const dir = join(SOAK_DIR, name);
  const userDir = join(dir, "userdir");
  unmount(userDir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(userDir, { recursive: true });
  const method: Method = o.method !== "prlimit" && tryMount(userDir) ? "tmpfs" : "prlimit";
  v.numbers.method = method === "tmpfs" ? "tmpfs of 16 MiB, filled" : "file size limit (RLIMIT_FSIZE)";
  const stack = await startMailStack(name);
  const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
  let gateway: Gateway | undefined;
  const filler = join(userDir, "filler");
  try {
    gateway = await Gateway.start({
      dir,
      stack,
      receiverPort: receiver.tcpPort,
      userDir,
      keepUserDir: true,
      connector: { redeliverAfter: o.redeliverAfterS },
    });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    const warm = [soakAccount("5A", 0)];
    await appendEmails(stack, () => soakAlarmEmail(warm[0]!), 1);
    v.check(
      (await waitForDelivery(() => [receiver], warm, 30_000)).lost.length === 0,
      "the first alarm was not delivered",
    );

    const pid = gateway.red.child.pid!;
    const outboxLog = join(userDir, "alarm-gateway", `line-driver-${NODE.line}`, "outbox.log");
    if (method === "tmpfs") log(`disk filled: ${fill(filler) >> 20} MiB of filler`);
    else limitFileSize(pid, statSync(outboxLog).size);
    const fullAt = Date.now();
    // One at a time until one is refused: the first few may still fit in the log file's last page.
    const accounts: string[] = [];
    let failure: string | undefined;
    for (let i = 0; i < o.maxEmails && failure === undefined; i++) {
      accounts.push(soakAccount("5B", i));
      await appendEmails(stack, () => soakAlarmEmail(accounts[i]!), 1);
      failure = await gateway.red.waitForLog(/outbox write failed[^\n]*/, 1500).catch(() => undefined);
    }
    v.numbers["emails while full"] = accounts.length;
    v.check(failure !== undefined, `no outbox write failure in the log after ${accounts.length} emails`);
    if (failure) v.numbers.logged = `"${failure.slice(0, 100)}"`;
    const status = await gateway.comms
      .waitForStatus(NODE.line, /outbox|disk|space|write/i, { since: fullAt, timeoutMs: 5000 })
      .catch(() => undefined);
    const shown = [...new Set(gateway.comms.statusesOf(NODE.line, fullAt).map((s) => s.text))];
    v.numbers["line-driver status"] = `"${(status?.text ?? shown.at(-1) ?? "").slice(0, 80)}"`;
    v.check(
      status !== undefined,
      `the line-driver status did not say the outbox write failed (shown: ${shown.join(" | ") || "nothing new"})`,
    );
    await sleep(Math.max(0, fullAt + o.fullMs - Date.now()));
    // Emails of ours while full, by account: unread ones, and read ones (their alarm must be stored).
    const unreadWhileFull = new Set<string>();
    const inbox = await folderState(stack);
    for (const [uid, id] of inbox.messageIds) {
      const account = accounts.find((a) => id.startsWith(`soak-${a.toLowerCase()}@`));
      if (account && inbox.unseen.includes(uid)) unreadWhileFull.add(account);
    }
    v.numbers["unread while full"] = `${unreadWhileFull.size}/${accounts.length}`;
    // The first few may fit in the last page of the outbox log and of the connector's journal:
    // those alarms are stored, so delivering them and marking their emails read is right.
    const stored = Math.max(0, ...shown.map((t) => Number(/queued (\d+)/.exec(t)?.[1] ?? 0)));
    const delivered = new Set(
      ackedAlarms([receiver])
        .map((e) => e.frame.account)
        .filter((a) => accounts.includes(a)),
    );
    const readNotStored = accounts.filter((a) => !unreadWhileFull.has(a) && !delivered.has(a));
    v.check(
      readNotStored.length <= stored,
      `${readNotStored.length} emails marked read although their alarm was neither delivered nor stored`,
    );
    v.check(unreadWhileFull.size > 0, "the email whose alarm the outbox refused was marked read");
    v.numbers["most queued while full"] = stored;
    v.numbers["delivered while full"] = delivered.size;
    // Alarms the outbox did take are safe and must go out at once, full disk or not.
    v.check(
      stored === 0 || delivered.size > 0,
      `${stored} alarms stored in the outbox were not delivered while the disk was full`,
    );

    if (method === "tmpfs") rmSync(filler, { force: true });
    else limitFileSize(pid, "unlimited");
    const freedAt = Date.now();
    log("space back");
    const t = await waitForDelivery(() => [receiver], accounts, o.redeliverAfterS * 1000 + 60_000);
    const lastAck = Math.max(...receiver.acked.filter((e) => accounts.includes(e.frame.account)).map((e) => e.at));
    v.numbers["last ACK after space returned"] = lastAck > freedAt ? seconds(lastAck - freedAt) : "none (all before)";
    v.numbers.lost = t.lost.length;
    v.numbers.duplicates = t.duplicates;
    v.check(t.lost.length === 0, `${t.lost.length} alarms not delivered after space returned`);
    v.check(t.duplicates === 0, `${t.duplicates} alarms sent again while their outcome could not be written`, {
      waitsFor: PUMP_FIX,
    });
    const unread = await pollUntil(
      async () => ((await folderState(stack)).unseen.length === 0 ? 0 : undefined),
      o.redeliverAfterS * 1000 + 30_000,
      () => "every email read",
    ).catch(async () => (await folderState(stack)).unseen.length);
    v.numbers["all read after space returned"] = seconds(Date.now() - freedAt);
    v.check(unread === 0, `${unread} emails still unread ${o.redeliverAfterS + 30} s after space returned`);
    v.check(gateway.alive && gateway.starts === 1, "Node-RED did not survive the full disk");
    v.note(
      `with the example's "offer again after" of 600 s an email refused by a full disk waits up to 10 min; here ${o.redeliverAfterS} s`,
    );
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await receiver.close();
    await stack.stop();
    unmount(userDir);
  }
  return v.result();
}
