// SharedMailboxWatcher against the in-memory shared mailbox: several gateways, one mailbox.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { SharedMailboxWatcher, type SharedWatcherOptions } from "../../src/core/shared/shared-watcher";
import type { EmailRef, WatchedEmail } from "../../src/core/watch/watcher";
import { MemoryMailbox } from "../helpers/memory-shared-transport";
import { until } from "../helpers/until";

const root = mkdtempSync(join(tmpdir(), "shared-watcher-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** What the line-driver does: hold once durable, settle "accepted" on the ACK (after ackMs), or never. */
type Downstream = { ackMs: number } | "hold-only" | "nothing";

interface Gateway {
  watcher: SharedMailboxWatcher;
  emitted: WatchedEmail[];
  logs: string[];
  dir: string;
}

const running: Gateway[] = [];
after(async () => {
  for (const g of running) await g.watcher.stop();
});

let dirs = 0;
function gateway(
  box: MemoryMailbox,
  downstream: Downstream,
  more: Partial<SharedWatcherOptions> = {},
  dir = join(root, `gw${++dirs}`),
): Gateway {
  const g: Gateway = { emitted: [], logs: [], dir } as unknown as Gateway;
  g.watcher = new SharedMailboxWatcher({
    transport: box.transport(),
    identityDir: dir,
    onAccepted: { kind: "seen" },
    reviewFolder: "Review",
    redeliverAfterMs: 60_000,
    pollIntervalMs: 200,
    maxInFlight: 100,
    maxInMemoryAttachmentBytes: 1024 * 1024,
    spoolDir: join(dir, "spool"),
    backoff: { initialMs: 50, maxMs: 200 },
    leaseMs: 600,
    renewMs: 150,
    tieBreakDelayMs: 100,
    orphanAfterMs: 5_000,
    emit: (email) => {
      g.emitted.push(email);
      if (downstream === "nothing") return;
      void (async () => {
        assert.equal(await g.watcher.hold(email.ref), true);
        if (downstream === "hold-only") return;
        await sleep(downstream.ackMs);
        await g.watcher.settle(email.ref, "accepted");
      })();
    },
    onState: () => undefined,
    log: (level, message) => g.logs.push(`${level}: ${message}`),
    ...more,
  });
  g.watcher.start();
  running.push(g);
  return g;
}

async function stop(g: Gateway): Promise<void> {
  await g.watcher.stop();
  running.splice(running.indexOf(g), 1);
}

function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}@example.com`);
}

function settledSeen(box: MemoryMailbox): string[] {
  return box.settlements.filter((s) => s.found && s.action === "seen").map((s) => s.messageId as string);
}

function countOf(list: (string | null)[]): Map<string | null, number> {
  const counts = new Map<string | null, number>();
  for (const x of list) counts.set(x, (counts.get(x) ?? 0) + 1);
  return counts;
}

function assertOnce(list: (string | null)[], expected: string[], what: string): void {
  const counts = countOf(list);
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], `${what} more than once`);
  const missing = expected.filter((id) => !counts.has(id));
  assert.deepEqual(missing, [], `${what} never`);
}

const messageIdsOf = (g: Gateway) => g.emitted.map((e) => e.ref.messageId);

describe("SharedMailboxWatcher", () => {
  it("emails arriving while two gateways join are emitted after the tie-break, not at the next poll", async () => {
    const box = new MemoryMailbox();
    box.latencyMs = 20; // a claim takes a while, as on a real server
    // Polls an hour apart, leases renewed seldom: only the change event and the watcher's own wake-ups
    // can bring the emails out.
    const slow = { pollIntervalMs: 3_600_000, tieBreakDelayMs: 300, leaseMs: 8000, renewMs: 2000 };
    const gws = [gateway(box, { ackMs: 5 }, slow), gateway(box, { ackMs: 5 }, slow)];
    await until(() => gws.every((g) => g.watcher.instance !== ""), 2000, "identities");
    const expected = ids("joining", 20);
    box.deliver(expected); // inside the join grace and the contested window of both
    await until(
      () => gws.reduce((n, g) => n + g.emitted.length, 0) >= expected.length,
      5_000,
      "every email emitted within seconds",
    );
    assertOnce(gws.flatMap(messageIdsOf), expected, "emitted");
  });

  for (const n of [2, 3]) {
    it(`${n} gateways, 300 emails: each emitted and settled exactly once, the work split`, async () => {
      const box = new MemoryMailbox();
      const gws = Array.from({ length: n }, () => gateway(box, { ackMs: 5 }));
      await until(() => gws.every((g) => g.watcher.instance !== ""), 2000, "identities");
      await sleep(700); // every gateway sees the others and has passed its join grace
      const expected = ids(`split${n}`, 300);
      box.deliver(expected);
      await until(() => settledSeen(box).length >= 300, 15_000, "300 settlements");
      await sleep(300);
      assertOnce(gws.flatMap(messageIdsOf), expected, "emitted");
      assertOnce(settledSeen(box), expected, "settled");
      for (const g of gws) assert.ok(g.emitted.length > 300 / n / 3, `each emitted a share: ${g.emitted.length}`);
      assert.equal(box.unreadCount(), 0);
      for (const g of gws) assert.deepEqual(box.claimedIds(g.watcher.instance), []);
      for (const g of gws) await stop(g);
    });
  }

  it("racing MOVEs that both succeed during a membership change: each email emitted once", async () => {
    const box = new MemoryMailbox();
    box.doubleClaims = true;
    box.latencyMs = 5;
    // Every email is an orphan at once: every gateway claims every email, all contested.
    const opts = { orphanAfterMs: 0 };
    const a = gateway(box, { ackMs: 5 }, opts);
    const b = gateway(box, { ackMs: 5 }, opts);
    await until(() => a.watcher.instance !== "" && b.watcher.instance !== "", 2000, "identities");
    const expected = ids("race", 200);
    box.deliver(expected.slice(0, 100));
    const c = gateway(box, { ackMs: 5 }, opts); // joins meanwhile
    await sleep(50);
    box.deliver(expected.slice(100));
    await until(() => new Set(settledSeen(box)).size >= 200, 15_000, "200 settled");
    await sleep(500);
    assert.ok(box.discards.length > 0, "the race happened (copies discarded by tie-break)");
    assertOnce([a, b, c].flatMap(messageIdsOf), expected, "emitted");
    assertOnce(settledSeen(box), expected, "settled");
    for (const g of [a, b, c]) await stop(g);
  });

  it("a gateway cut off: a survivor raises its held emails within a lease; its own refs turn wait, then lost", async () => {
    const box = new MemoryMailbox();
    const survivor = gateway(box, { ackMs: 5 });
    const dead = gateway(box, "hold-only");
    await until(() => survivor.watcher.instance !== "" && dead.watcher.instance !== "", 2000, "identities");
    await sleep(700);
    const expected = ids("dead", 60);
    box.deliver(expected);
    await until(() => survivor.emitted.length + dead.emitted.length >= 60, 5000, "all emitted");
    const held = dead.emitted.map((e) => e.ref);
    assert.ok(held.length > 0, "the dead one held some");
    for (const ref of held) assert.equal(dead.watcher.mayDeliver(ref), "yes");
    await sleep(100); // its holds are recorded
    const cutAt = Date.now();
    box.cut.add(dead.watcher.instance);
    const wanted = new Set(held.map((r) => r.messageId));
    await until(
      () => [...wanted].every((id) => survivor.emitted.some((e) => e.ref.messageId === id)),
      3000,
      "takeover",
    );
    const took = Date.now() - cutAt;
    assert.ok(took <= 600 + 150 + 150, `taken over in ${took} ms`);
    // Its lease is stale in its own eyes by now: not "yes".
    for (const ref of held) assert.equal(dead.watcher.mayDeliver(ref), "wait");
    box.cut.delete(dead.watcher.instance);
    await until(() => held.every((ref) => dead.watcher.mayDeliver(ref) === "lost"), 3000, "lost after return");
    assert.ok(dead.logs.some((l) => l.includes("taken over")));
    await until(() => new Set(settledSeen(box)).size >= 60, 5000, "all settled");
    assertOnce(settledSeen(box), expected, "settled");
    await stop(survivor);
    await stop(dead);
  });

  it("a restart under the same identity resumes its claim folder", async () => {
    const box = new MemoryMailbox();
    const first = gateway(box, "nothing");
    await until(() => first.watcher.instance !== "", 2000, "identity");
    const expected = ids("resume", 5);
    box.deliver(expected);
    await until(() => first.emitted.length >= 5, 3000, "emitted");
    const instance = first.watcher.instance;
    await stop(first);
    assert.equal(box.claimedIds(instance).length, 5);
    const second = gateway(box, { ackMs: 1 }, {}, first.dir);
    await until(() => second.emitted.length >= 5, 3000, "resumed");
    assert.equal(second.watcher.instance, instance);
    assert.deepEqual(messageIdsOf(second).sort(), [...expected].sort());
    await until(() => settledSeen(box).length >= 5, 3000, "settled");
    assert.deepEqual(box.claimedIds(instance), []);
    assert.ok(!second.logs.some((l) => l.startsWith("error")), second.logs.join("\n"));
    await stop(second);
  });

  it("a copied identity: one of the two takes a new id, nothing is lost", async () => {
    const box = new MemoryMailbox();
    const dirA = join(root, "twinA");
    const dirB = join(root, "twinB");
    for (const d of [dirA, dirB]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "instance-id"), "copied-abcdef\n");
    }
    const a = gateway(box, { ackMs: 20 }, {}, dirA);
    const b = gateway(box, { ackMs: 20 }, {}, dirB);
    const expected = ids("twin", 80);
    for (let i = 0; i < 80; i += 10) {
      box.deliver(expected.slice(i, i + 10));
      await sleep(60);
    }
    await until(() => a.watcher.instance !== b.watcher.instance, 3000, "a new identity");
    const renewed = [a, b].filter((g) => g.watcher.instance !== "copied-abcdef");
    assert.equal(renewed.length, 1, "exactly one renewed");
    assert.ok(renewed[0]!.logs.some((l) => l.startsWith("error") && l.includes("copied")));
    await until(() => expected.every((id) => settledSeen(box).includes(id)), 10_000, "all settled");
    await until(() => box.claimedIds("copied-abcdef").length === 0, 5000, "twin folder empty");
    assert.equal(box.unreadCount(), 0);
    await stop(a);
    await stop(b);
  });

  it("an email moved away by hand and a deleted claim folder: logged, no crash, alarms still deliverable", async () => {
    const box = new MemoryMailbox();
    const g = gateway(box, "hold-only", { leaseMs: 1500, renewMs: 150 });
    await until(() => g.watcher.instance !== "", 2000, "identity");
    await sleep(400);
    const expected = ids("hand", 4);
    box.deliver(expected);
    await until(() => g.emitted.length >= 4, 3000, "emitted");
    await sleep(50);
    const refOf = (id: string) => g.emitted.find((e) => e.ref.messageId === id)?.ref as EmailRef;
    assert.equal(box.moveAway(g.watcher.instance, expected[0]!), true);
    await until(() => g.logs.some((l) => l.includes("moved out of the claim folder by someone")), 2000, "move noticed");
    assert.equal(g.watcher.mayDeliver(refOf(expected[0]!)), "yes");
    assert.equal(await g.watcher.settle(refOf(expected[0]!), "accepted"), true);

    assert.equal(box.deleteFolder(g.watcher.instance), 3);
    await until(() => g.logs.filter((l) => l.includes("moved out of the claim folder by someone")).length >= 4, 3000);
    for (const id of expected.slice(1)) assert.equal(g.watcher.mayDeliver(refOf(id)), "yes");
    for (const id of expected.slice(1)) assert.equal(await g.watcher.settle(refOf(id), "accepted"), true);
    // Still working: the folder was made again and new mail goes through.
    box.deliver(["after@example.com"]);
    await until(() => g.emitted.some((e) => e.ref.messageId === "after@example.com"), 3000, "new email");
    assert.deepEqual(box.claimedIds(g.watcher.instance), ["after@example.com"]);
    await stop(g);
  });

  it("a failed settle on the server is carried out later; the email is not offered twice", async () => {
    const box = new MemoryMailbox();
    const g = gateway(box, { ackMs: 1 });
    await until(() => g.watcher.instance !== "", 2000, "identity");
    await sleep(400);
    box.failNext.set("settle", 2);
    box.deliver(["retry-1@example.com", "retry-2@example.com"]);
    await until(() => settledSeen(box).length >= 2, 5000, "settled after failures");
    assert.equal(box.failNext.get("settle"), 0, "the failures happened");
    assertOnce(settledSeen(box), ["retry-1@example.com", "retry-2@example.com"], "settled");
    assertOnce(messageIdsOf(g), ["retry-1@example.com", "retry-2@example.com"], "emitted");
    assert.deepEqual(box.claimedIds(g.watcher.instance), []);
    await stop(g);
  });
});
