// Issue #16, "Bad input": what people (and copied machines) do to a shared mailbox behind the
// gateways' backs, with real Node-RED processes, a real Dovecot and the DC-09 stand-in. Each case
// asserts what a user would notice: the gateway's log and status, and at the receiver that no alarm
// was lost (and, where the design promises it, none raised twice).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ImapFlow } from "imapflow";
import { SharedSite } from "../helpers/shared-site";
import { NODE } from "../helpers/soak-gateway";
import { folderState, pollUntil } from "../helpers/soak-mail";
import { waitForDelivery } from "../helpers/soak-report";
import { MAILBOX } from "../helpers/tenant";

const BASE = "Alarm gateways";
/** The mailbox owner's password (mail-stack.ts creates that user), for what a person does in Outlook. */
const OWNER_PASSWORD = "password-for-the-anchor";

/** Short leases and polls: a case takes seconds, not minutes. The ACK timeout keeps silence rounds short. */
const CONNECTOR = { leaseSeconds: 6, pollInterval: 2, redeliverAfter: 120 };
const LINE_DRIVER = { ackTimeout: 2 };

async function startSite(t: TestContext, name: string, gateways: number): Promise<SharedSite> {
  const site = await SharedSite.start({ name, transport: "imap", connector: CONNECTOR, lineDriver: LINE_DRIVER });
  t.after(() => site.stop());
  await Promise.all(Array.from({ length: gateways }, (_, i) => site.startGateway(i + 1)));
  await site.waitForLive(gateways, 60_000);
  return site;
}

function gw(site: SharedSite, index: number) {
  const g = site.gateways.get(index);
  if (!g) throw new Error(`gateway ${index} was not started`);
  return g.gateway;
}

/** The instance id gateway `index` keeps in its user directory (identity.ts). */
function instanceOf(site: SharedSite, index: number): string {
  const file = join(gw(site, index).userDir, "alarm-gateway", "shared-identity", NODE.connector, "instance-id");
  return readFileSync(file, "utf8").trim();
}

/** The connector's latest status text. */
function statusText(site: SharedSite, index: number): string {
  return gw(site, index).comms.statusesOf(NODE.connector).at(-1)?.text ?? "";
}

/** Emails gateway `index` says it holds for alarms not ACKed yet ("N awaiting ACK" in its status). */
function awaitingAck(site: SharedSite, index: number): number {
  return Number(/(\d+) awaiting ACK/.exec(statusText(site, index))?.[1] ?? 0);
}

/** A session of the mailbox owner, as Outlook would have: for moving and deleting by hand. */
async function asOwner<T>(site: SharedSite, work: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = new ImapFlow({
    host: "127.0.0.1",
    port: site.stack.dovecot.imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: MAILBOX, pass: OWNER_PASSWORD },
    disableAutoIdle: true,
    logger: false,
  } as ConstructorParameters<typeof ImapFlow>[0]);
  client.on("error", () => undefined); // surfaced by the failing command
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Message-IDs (without brackets) in a folder, by UID; null when the folder does not exist. */
async function folderIds(site: SharedSite, folder: string): Promise<Map<number, string> | null> {
  return asOwner(site, async (client) => {
    const listed = await client.list();
    if (!listed.some((f) => f.path === folder)) return null;
    const lock = await client.getMailboxLock(folder, { readOnly: true });
    try {
      const ids = new Map<number, string>();
      if (client.mailbox === false || client.mailbox.exists === 0) return ids;
      for (const m of await client.fetchAll("1:*", { uid: true, envelope: true }, { uid: true })) {
        ids.set(m.uid, m.envelope?.messageId?.replace(/^<|>$/g, "") ?? "");
      }
      return ids;
    } finally {
      lock.release();
    }
  });
}

/**
 * Waits until the claim folders named are empty (the gateways settled what they held), then checks
 * the watched folder: every settled email is back there read ("mark read"), once, none unread.
 */
async function waitSettled(site: SharedSite, claimFolders: string[], inInbox: number, timeoutMs = 30_000) {
  let last = "";
  await pollUntil(
    async () => {
      const sizes = await Promise.all(claimFolders.map(async (f) => [f, (await folderIds(site, f))?.size] as const));
      last = sizes.map(([f, n]) => `${f}: ${n ?? "missing"}`).join(", ");
      return sizes.every(([, n]) => n === 0) ? true : undefined;
    },
    timeoutMs,
    () => `empty claim folders (${last})`,
    500,
  );
  const inbox = await folderState(site.stack, "INBOX");
  assert.deepEqual(inbox.unseen, [], "no email left unread in the watched folder");
  assert.equal(inbox.seen.length, inInbox, "each settled email is back in the watched folder once");
}

/** Gateway `index`'s log lines of the shared watcher and the line-driver, for a failure message. */
function sharedLog(site: SharedSite, index: number): string {
  const lines = gw(site, index).red.log().split("\n");
  return `gateway ${index} (${instanceOf(site, index)}):\n${lines
    .filter((l) => /email-connector|line-driver/.test(l))
    .slice(-60)
    .join("\n")}`;
}

function assertNoCrash(site: SharedSite, index: number): void {
  const g = gw(site, index);
  assert.ok(g.alive, `gateway ${index} exited`);
  const log = g.red.log();
  assert.doesNotMatch(log, /uncaught|unhandled|TypeError|ReferenceError/i, `gateway ${index} crashed or threw`);
}

describe("shared mailbox: bad input by people and copied machines", { concurrency: 1 }, () => {
  it("a claim folder deleted while its alarms await an ACK: delivered, nothing lost, folder recreated", async (t) => {
    const site = await startSite(t, "bad-delete", 2);
    const victim = instanceOf(site, 1);
    const folder = `${BASE}/${victim}`;

    site.receiver.behaviour = "silent";
    const first = await site.deliver("B1", 20);
    // Every alarm in an outbox, its email held in a claim folder: nothing can ACK them yet.
    await pollUntil(
      () => (awaitingAck(site, 1) + awaitingAck(site, 2) === first.length ? true : undefined),
      60_000,
      () => `${first.length} awaiting ACK (gw1: ${statusText(site, 1)} | gw2: ${statusText(site, 2)})`,
    );
    const held = awaitingAck(site, 1);
    assert.ok(held > 0, "gateway 1 holds none of the burst: the case tests nothing");
    assert.equal((await folderIds(site, folder))?.size, held, "gateway 1's claim folder holds its emails");

    const logFrom = gw(site, 1).red.log().length;
    const deletedAt = Date.now();
    await asOwner(site, (client) => client.mailboxDelete(folder));
    // What the operator sees: the connector reconnects (yellow), then says what became of each email.
    const moved = /was moved out of the claim folder by someone else; its alarm is still delivered/g;
    const said = () => gw(site, 1).red.log().slice(logFrom);
    await pollUntil(
      () => ((said().match(moved)?.length ?? 0) >= held ? true : undefined),
      30_000,
      () => `each of the ${held} held emails reported as moved away; log:\n${said()}`,
    );
    await sleep(500);
    assert.equal(said().match(moved)?.length, held, `each held email is reported once:\n${said()}`);
    assert.equal(said().match(/reconnecting in/g)?.length, 1, `one reconnect:\n${said()}`);
    const statuses = gw(site, 1)
      .comms.statusesOf(NODE.connector, deletedAt)
      .map((s) => s.text);
    assert.ok(
      statuses.some((s) => /^reconnecting in \d+ s: .*claim connection closed/.test(s)),
      `the status showed the reconnect: ${statuses.join(" | ")}`,
    );
    await pollUntil(
      async () => ((await folderIds(site, folder)) ? true : undefined),
      30_000,
      () => `the claim folder ${folder} recreated`,
    );
    await pollUntil(
      () => (/shared by 2 gateways, 0 in flight, \d+ awaiting ACK$/.test(statusText(site, 1)) ? true : undefined),
      30_000,
      () => `gateway 1 watching again (${statusText(site, 1)})`,
    );

    site.receiver.behaviour = "ack";
    const t1 = await waitForDelivery(() => [site.receiver], first, 90_000);
    assert.deepEqual(t1.lost, [], "alarms of the deleted folder's emails are still delivered");
    assert.equal(t1.duplicates, 0, "nobody else raised them");
    await gw(site, 1).red.waitForLog(/settled; it had been moved out of the claim folder, nothing to do there/, 10_000);

    // Keeps working: a new burst is shared by both, gateway 1 claiming into its new folder. Both
    // first count each other live again (a reconnect slower than the lease lets gateway 2 count
    // gateway 1 out and take everything meanwhile, as designed), and gateway 1 is past its join
    // grace (one renewal and one tie-break delay after a gap in its lease).
    await pollUntil(
      () => ([1, 2].every((i) => /shared by 2 gateways/.test(statusText(site, i))) ? true : undefined),
      30_000,
      () => `both gateways count 2 live (gw1: ${statusText(site, 1)} | gw2: ${statusText(site, 2)})`,
    );
    await sleep((CONNECTOR.leaseSeconds / 4 + 1) * 1000 + 500);
    const second = await site.deliver("B2", 16);
    const t2 = await waitForDelivery(() => [site.receiver], second, 60_000);
    assert.deepEqual(t2.lost, [], "new emails after the deletion are delivered");
    assert.equal(t2.duplicates, 0);
    const split = await site.split(second);
    assert.ok(
      (split.get(1) ?? 0) > 0,
      `gateway 1 took part in the new burst (${[...split].join(" / ")})\n${sharedLog(site, 1)}\n${sharedLog(site, 2)}`,
    );
    // The deleted folder's emails are gone with it; every other one is back, read.
    await waitSettled(site, [folder, `${BASE}/${instanceOf(site, 2)}`], first.length - held + second.length);
    assertNoCrash(site, 1);
    assertNoCrash(site, 2);
  });

  it("an email moved by hand out of a claim folder mid-delivery: its alarm is delivered, the log says so", async (t) => {
    const site = await startSite(t, "bad-move", 1);
    const folder = `${BASE}/${instanceOf(site, 1)}`;

    site.receiver.behaviour = "silent";
    const accounts = await site.deliver("C1", 5);
    await pollUntil(
      () => (awaitingAck(site, 1) === accounts.length ? true : undefined),
      60_000,
      () => `${accounts.length} awaiting ACK (${statusText(site, 1)})`,
    );
    const claimed = await folderIds(site, folder);
    const [uid, messageId] = [...(claimed ?? [])][2] ?? [];
    assert.ok(uid && messageId, `the claim folder holds the emails (${claimed?.size})`);
    await asOwner(site, async (client) => {
      const lock = await client.getMailboxLock(folder);
      try {
        assert.ok(await client.messageMove(String(uid), "Processing", { uid: true }), "move by hand");
      } finally {
        lock.release();
      }
    });

    const escaped = messageId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    await gw(site, 1).red.waitForLog(
      new RegExp(`<${escaped}> was moved out of the claim folder by someone else; its alarm is still delivered`),
      15_000,
    );
    site.receiver.behaviour = "ack";
    const tally = await waitForDelivery(() => [site.receiver], accounts, 60_000);
    assert.deepEqual(tally.lost, [], "the alarm of the moved email is delivered too");
    assert.equal(tally.duplicates, 0);
    await gw(site, 1).red.waitForLog(
      new RegExp(`<${escaped}> settled; it had been moved out of the claim folder, nothing to do there`),
      10_000,
    );
    // The person's folder keeps their email as they left it; the rest were settled as usual.
    const kept = await folderIds(site, "Processing");
    assert.deepEqual([...(kept ?? new Map()).values()], [messageId], "the moved email stays where the person put it");
    await waitSettled(site, [folder], accounts.length - 1);
    await gw(site, 1).comms.waitForStatus(NODE.connector, /shared by 1 gateway, 0 in flight$/, {
      since: Date.now() - 5_000,
      timeoutMs: 10_000,
    });
    assertNoCrash(site, 1);
  });

  it("a copied user directory: one process takes a new identity, a burst then goes out once", async (t) => {
    const site = await startSite(t, "bad-twin", 1);
    const original = instanceOf(site, 1);
    site.copyUserDir(1, 2);
    await site.startGateway(2);
    assert.equal(instanceOf(site, 2), original, "the copy starts with the same instance id");

    const clash =
      /another gateway process runs as (\S+) \(nonce \w+\): this user directory was copied; continuing as ([\w-]+)/;
    const renewedBy = await Promise.any(
      [1, 2].map(async (i) => {
        const line = await gw(site, i).red.waitForLog(clash, 30_000);
        return { index: i, line };
      }),
    );
    const [, oldId, newId] = clash.exec(renewedBy.line) ?? [];
    assert.equal(oldId, original);
    assert.notEqual(newId, original);
    await site.waitForLive(2, 30_000);
    const other = renewedBy.index === 1 ? 2 : 1;
    assert.equal(instanceOf(site, renewedBy.index), newId, "the new id is kept in the user directory");
    assert.equal(instanceOf(site, other), original, "the other process keeps the id");
    assert.doesNotMatch(gw(site, other).red.log(), clash, "only one of the two takes a new identity");

    const accounts = await site.deliver("D1", 40);
    const tally = await waitForDelivery(() => [site.receiver], accounts, 90_000);
    assert.deepEqual(tally.lost, [], "none lost");
    assert.equal(tally.duplicates, 0, "none raised twice");
    const split = await site.split(accounts);
    assert.ok(
      (split.get(1) ?? 0) > 0 && (split.get(2) ?? 0) > 0,
      `both gateways took part (${[...split].join(" / ")})`,
    );
    await waitSettled(site, [`${BASE}/${original}`, `${BASE}/${newId}`], accounts.length);
    assertNoCrash(site, 1);
    assertNoCrash(site, 2);
  });
});
