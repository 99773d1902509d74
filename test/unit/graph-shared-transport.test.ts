// Shared mode over Microsoft Graph: GraphSharedTransport against the Graph stand-in over real HTTPS,
// tokens from the Entra ID stand-in. Several transports on one mailbox stand for several gateways;
// what is asserted is what the mailbox shows afterwards (which folder holds which email) and what
// each transport was told.
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GraphApi, GraphApiError, userPath } from "../../src/core/graph/graph-api";
import type { TokenSource } from "../../src/core/mail/imap-login";
import { validateOAuthSettings } from "../../src/core/oauth/settings";
import { TokenProvider } from "../../src/core/oauth/token-provider";
import { GraphSharedTransport, type GraphSharedTransportOptions } from "../../src/core/shared/graph-shared-transport";
import { ConfigurationError } from "../../src/core/watch/watcher";
import { alarmEmail } from "../helpers/mail-stack";
import { GRAPH_HOST, MAILBOX, startTestTenant, TENANT_ID, type TestTenant } from "../helpers/tenant";
import { GraphStandin, type GraphStandinOptions } from "../standin/graph";

const BASE = "Alarm gateways";
const HOUR = 3_600_000;

describe("GraphSharedTransport against the Graph stand-in", () => {
  let tenant: TestTenant;
  let provider: TokenProvider;
  let graph: GraphStandin | undefined;
  let transports: GraphSharedTransport[] = [];
  let apis: GraphApi[] = [];

  before(async () => {
    tenant = await startTestTenant();
    const v = validateOAuthSettings(tenant.fields, tenant.credentials);
    assert.ok(v.ok);
    provider = new TokenProvider(v.settings, { timeoutMs: 5000, minForcedRenewalIntervalMs: 0 });
  });
  after(() => tenant.stop());
  afterEach(async () => {
    for (const t of transports) await t.close();
    for (const a of apis) a.close();
    transports = [];
    apis = [];
    await graph?.stop();
    graph = undefined;
  });

  const tokens: TokenSource = {
    get: () => provider.getToken("graph", "Mail.ReadWrite").then((t) => t.token),
    renewAfterRejection: (rejected) => provider.renewAfterRejection("graph", rejected).then((t) => t.token),
  };

  async function standin(opts: Partial<GraphStandinOptions> = {}): Promise<GraphStandin> {
    const g = new GraphStandin({
      certs: tenant.certs,
      signingKey: { kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: GRAPH_HOST,
      mailboxes: [MAILBOX],
      folders: ["Processed"],
      ...opts,
    });
    await g.start();
    graph = g;
    return g;
  }

  /** One gateway process: its own GraphApi (its own 4 slots), all of them sharing Exchange's limit. */
  function api(): GraphApi {
    const a = new GraphApi({
      host: graph!.host,
      tokens,
      backoff: { initialMs: 20, maxMs: 200 },
      maxThrottleRetries: 50,
    });
    apis.push(a);
    return a;
  }

  function transport(overrides: Partial<GraphSharedTransportOptions> = {}) {
    const logs: string[] = [];
    const t = new GraphSharedTransport({
      host: graph!.host,
      mailbox: MAILBOX,
      folder: "inbox",
      tokens,
      api: api(),
      pollIntervalMs: 60_000,
      log: (level, message) => logs.push(`${level}: ${message}`),
      ...overrides,
    });
    transports.push(t);
    return Object.assign(t, { logs });
  }

  const deliver = (subject: string, receivedDateTime?: Date) =>
    graph!.deliver(MAILBOX, alarmEmail(subject), receivedDateTime ? { receivedDateTime } : undefined);
  const folder = (path: string) => graph!.messages(MAILBOX, path);
  const subjects = (path: string) =>
    folder(path)
      .map((m) => m.subject)
      .sort();

  async function text(source: Buffer | Readable): Promise<string> {
    if (Buffer.isBuffer(source)) return source.toString("utf8");
    const chunks: Buffer[] = [];
    for await (const c of source) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  it("open creates the coordination, Leases and claim folders; two gateways racing to create them both succeed", async () => {
    const g = await standin({ latencyMs: 5 });
    const a = transport();
    const b = transport();
    await Promise.all([a.open("gw-a"), b.open("gw-b")]);
    for (const path of [BASE, `${BASE}/Leases`, `${BASE}/gw-a`, `${BASE}/gw-b`]) assert.ok(g.folderId(MAILBOX, path));
    // the loser of the race was told 409 ErrorFolderExists and took the winner's folder
    assert.ok(g.requests.some((r) => r.method === "POST" && r.status === 409));
    const top = await api().get<{ value: { id: string }[] }>(`${userPath(MAILBOX)}/mailFolders`, {
      $filter: `displayName eq '${BASE}'`,
    });
    assert.equal(top.value.length, 1, "one coordination folder, not two");
    assert.deepEqual((await a.listInstances()).sort(), ["gw-a", "gw-b"]);
    // opening again (a restart) finds what is there
    const again = transport();
    await again.open("gw-a");
    assert.deepEqual((await again.listInstances()).sort(), ["gw-a", "gw-b"]);
  });

  it("open refuses an instance name that cannot be a folder, and a watched folder that does not exist", async () => {
    await standin();
    await assert.rejects(transport().open("Leases"), ConfigurationError);
    await assert.rejects(transport().open("a/b"), ConfigurationError);
    await assert.rejects(transport({ folder: "Nowhere" }).open("gw-a"), ConfigurationError);
  });

  it("listWatched: unread emails of the watched folder, oldest first, at most the limit", async () => {
    const g = await standin();
    const base = Date.now() - HOUR;
    const third = deliver("third", new Date(base + 3000));
    const first = deliver("first", new Date(base + 1000));
    const read = deliver("read", new Date(base + 500));
    g.setRead(MAILBOX, read.id, true);
    const second = deliver("second", new Date(base + 2000));
    const t = transport();
    await t.open("gw-a");
    assert.deepEqual(
      (await t.listWatched(10)).map((c) => c.id),
      [first.id, second.id, third.id],
    );
    assert.deepEqual(await t.listWatched(2), [
      { id: first.id, key: first.id },
      { id: second.id, key: second.id },
    ]);
    // why the filter leads with receivedDateTime: Exchange refuses an $orderby the $filter does not start with
    await assert.rejects(
      api().get(`${userPath(MAILBOX)}/mailFolders/inbox/messages`, {
        $filter: "isRead eq false",
        $orderby: "receivedDateTime",
      }),
      (err: unknown) => err instanceof GraphApiError && err.code === "InefficientFilter",
    );
  });

  it("two gateways claiming the same 200 emails at once: each is claimed exactly once, the loser sees it absent", async () => {
    const g = await standin({ latencyMs: 2 });
    for (let i = 0; i < 200; i++) deliver(`alarm ${i}`);
    const a = transport();
    const b = transport();
    await Promise.all([a.open("gw-a"), b.open("gw-b")]);
    const [listedA, listedB] = await Promise.all([a.listWatched(1000), b.listWatched(1000)]);
    assert.equal(listedA.length, 200);
    assert.deepEqual(
      listedB.map((c) => c.key),
      listedA.map((c) => c.key),
    );
    g.maxConcurrent = 0;
    const movesFrom = g.requests.length;
    // B works through the list in another order, so that the two meet somewhere in it
    const orderB = listedB.map((c) => c.id).sort(() => Math.random() - 0.5);
    const [wonA, wonB] = await Promise.all([a.claim(listedA.map((c) => c.id)), b.claim(orderB)]);
    const moves = g.requests.slice(movesFrom).filter((r) => r.method === "POST" && r.path.endsWith("/move"));
    // every email was moved by both: once with 201, once (by the later one) with 404 ErrorItemNotFound
    assert.equal(moves.filter((r) => r.status === 201).length, 200);
    assert.equal(moves.filter((r) => r.status === 404).length, 200);
    const both = [...wonA.keys()].filter((id) => wonB.has(id));
    assert.deepEqual(both, [], "no email claimed by both");
    assert.equal(wonA.size + wonB.size, 200, "every email claimed by one of them");
    assert.equal(folder("inbox").length, 0);
    const inA = folder(`${BASE}/gw-a`).map((m) => m.id);
    const inB = folder(`${BASE}/gw-b`).map((m) => m.id);
    assert.deepEqual(inA.sort(), [...wonA.values()].sort(), "A's claimed ids are the ids in A's claim folder");
    assert.deepEqual(inB.sort(), [...wonB.values()].sort());
    // the claimed id is a new one: the watched-folder id names nothing any more
    for (const [from, to] of wonA) assert.notEqual(from, to);
    // Exchange's limit of 4 requests per mailbox held, although each gateway has its own 4 slots
    assert.ok(g.requests.some((r) => r.status === 429) || g.maxConcurrent <= 4);
    const claimed = await a.listClaimed("gw-a");
    assert.deepEqual(claimed.map((c) => c.id).sort(), inA.sort());
    assert.ok(claimed.every((c) => c.messageId && !c.messageId.startsWith("<")));
    assert.equal((await b.listClaimed("gw-a")).length, wonA.size, "a peer's claim folder is listed too");
  });

  it("the same race with immutable ids would claim emails twice: why claiming uses default ids", async () => {
    await standin();
    for (let i = 0; i < 20; i++) deliver(`alarm ${i}`);
    const a = transport();
    const b = transport();
    await Promise.all([a.open("gw-a"), b.open("gw-b")]);
    const claimA = graph!.folderId(MAILBOX, `${BASE}/gw-a`);
    const claimB = graph!.folderId(MAILBOX, `${BASE}/gw-b`);
    const immutable = { headers: { Prefer: 'IdType="ImmutableId"' } };
    const apiA = api();
    const apiB = api();
    const listed = await apiA.get<{ value: { id: string }[] }>(
      `${userPath(MAILBOX)}/mailFolders/inbox/messages`,
      { $select: "id", $top: 100 },
      immutable,
    );
    assert.equal(listed.value.length, 20);
    const move = (api: GraphApi, id: string, destinationId: string) =>
      api
        .post<{ id: string }>(`${userPath(MAILBOX)}/messages/${id}/move`, { destinationId }, immutable)
        .then((m) => m.id)
        .catch((err: unknown) => (err instanceof GraphApiError && err.itemNotFound ? null : Promise.reject(err)));
    const results = await Promise.all(
      listed.value.map(async ({ id }) => {
        const [toA, toB] = await Promise.all([move(apiA, id, claimA), move(apiB, id, claimB)]);
        return { id, toA, toB };
      }),
    );
    // both moves succeed, and the id stays: each gateway believes it holds every email
    assert.ok(results.every((r) => r.toA === r.id && r.toB === r.id));
    assert.equal(folder(`${BASE}/gw-a`).length + folder(`${BASE}/gw-b`).length, 20);
    // the same with default ids: a late mover is told 404 ErrorItemNotFound
    const one = deliver("one more");
    const first = await apiA.post<{ id: string }>(`${userPath(MAILBOX)}/messages/${one.id}/move`, {
      destinationId: claimA,
    });
    assert.notEqual(first.id, one.id);
    await assert.rejects(
      apiB.post(`${userPath(MAILBOX)}/messages/${one.id}/move`, { destinationId: claimB }),
      (err: unknown) => err instanceof GraphApiError && err.status === 404 && err.code === "ErrorItemNotFound",
    );
  });

  it("fetch returns the whole email with its size and receipt time; gone ones are skipped", async () => {
    await standin();
    const received = new Date(Date.now() - 60_000);
    deliver("fetch me", received);
    deliver("gone");
    const t = transport();
    await t.open("gw-a");
    const won = await t.claim((await t.listWatched(10)).map((c) => c.id));
    const ids = [...won.values()];
    const goneId = folder(`${BASE}/gw-a`).find((m) => m.subject === "gone")!.id;
    graph!.remove(MAILBOX, goneId);
    const got = [];
    for await (const e of t.fetch(ids)) got.push({ ...e, text: await text(e.source) });
    assert.equal(got.length, 1);
    const stored = folder(`${BASE}/gw-a`)[0]!;
    assert.equal(got[0]!.id, stored.id);
    assert.equal(got[0]!.text, stored.mime.toString("utf8"));
    assert.equal(got[0]!.size, stored.mime.length);
    assert.equal(got[0]!.receivedAt, new Date(Math.floor(received.getTime() / 1000) * 1000).toISOString());
  });

  it("settle: seen and none put it back read, move files it, delete deletes it; a gone email is false", async () => {
    await standin();
    for (const s of ["seen", "none", "move", "delete", "stale"]) deliver(s);
    const t = transport();
    await t.open("gw-a");
    await t.claim((await t.listWatched(10)).map((c) => c.id));
    const idOf = (s: string) => folder(`${BASE}/gw-a`).find((m) => m.subject === s)!.id;
    assert.equal(await t.settle(idOf("seen"), { kind: "seen" }), true);
    assert.equal(await t.settle(idOf("none"), { kind: "none" }), true);
    assert.equal(await t.settle(idOf("move"), { kind: "move", folder: "Processed" }), true);
    assert.equal(await t.settle(idOf("delete"), { kind: "delete" }), true);
    const stale = idOf("stale");
    graph!.move(MAILBOX, stale, "inbox"); // moved away by hand: its claimed id names nothing now
    assert.equal(await t.settle(stale, { kind: "seen" }), false);
    assert.equal(await t.settle(stale, { kind: "delete" }), false);
    assert.equal(await t.settle(stale, { kind: "move", folder: "Processed" }), false);
    assert.deepEqual(subjects("inbox"), ["none", "seen", "stale"]);
    assert.deepEqual(
      folder("inbox")
        .filter((m) => m.isRead)
        .map((m) => m.subject)
        .sort(),
      ["none", "seen"],
    );
    assert.deepEqual(subjects("Processed"), ["move"]);
    assert.deepEqual(subjects(`${BASE}/gw-a`), []);
    // settled emails are read: the watched listing passes them by, the one moved by hand stays a candidate
    assert.equal((await t.listWatched(10)).length, 1);
    // a review folder that does not exist is a configuration error, not a lost email
    deliver("review");
    const review = graph!.messages(MAILBOX, "inbox").find((m) => m.subject === "review")!;
    const reviewId = (await t.claim([review.id])).get(review.id)!;
    await assert.rejects(t.settle(reviewId, { kind: "move", folder: "Nowhere" }), ConfigurationError);
    // discard: the tie-break loser's copy goes; twice is no error
    await t.discard(reviewId);
    await t.discard(reviewId);
    assert.deepEqual(subjects(`${BASE}/gw-a`), []);
  });

  it("release: a dead peer's emails go back unread, its lease items go, its folder stays", async () => {
    await standin();
    for (const s of ["one", "two", "three"]) deliver(s);
    const dead = transport();
    const live = transport();
    await Promise.all([dead.open("gw-dead"), live.open("gw-live")]);
    const won = await dead.claim((await dead.listWatched(10)).map((c) => c.id));
    assert.equal(won.size, 3);
    await dead.renewLease("gw-dead", "n1");
    await live.renewLease("gw-live", "n2");
    // one was half settled when it died: read, still in its claim folder
    const half = folder(`${BASE}/gw-dead`)[0]!;
    graph!.setRead(MAILBOX, half.id, true);
    assert.equal(await live.release("gw-dead"), 3);
    assert.deepEqual(subjects("inbox"), ["one", "three", "two"]);
    assert.ok(
      folder("inbox").every((m) => !m.isRead),
      "released emails are unread again",
    );
    // The folder stays (a late claim into a deleted folder would vanish with it), empty and leaseless.
    assert.deepEqual(subjects(`${BASE}/gw-dead`), []);
    assert.deepEqual((await live.listInstances()).sort(), ["gw-dead", "gw-live"]);
    assert.deepEqual(
      (await live.readLeases()).map((l) => l.instance),
      ["gw-live"],
    );
    assert.equal((await live.listWatched(10)).length, 3, "candidates again for any gateway");
    // the dead one's old ids name nothing now
    for (const id of won.values()) assert.equal(await dead.settle(id, { kind: "seen" }), false);
    // releasing again (two live peers at once) finds nothing to do
    assert.equal(await live.release("gw-dead"), 0);
    // it was not dead after all: its next renewal finds its lease gone and writes a new one
    await dead.renewLease("gw-dead", "n1");
    assert.ok(dead.logs.some((l) => l.includes("taken for dead")));
    deliver("four");
    const four = folder("inbox").find((m) => m.subject === "four")!;
    assert.equal((await dead.claim([four.id])).size, 1);
    assert.deepEqual(subjects(`${BASE}/gw-dead`), ["four"], "claimed into <base>/gw-dead");
    assert.deepEqual((await live.listInstances()).sort(), ["gw-dead", "gw-live"]);
    await assert.rejects(live.release("gw-live"));
  });

  for (const skew of [HOUR, -HOUR]) {
    it(`leases age by the server's clock, ${skew > 0 ? "an hour ahead of" : "an hour behind"} this machine's`, async () => {
      const g = await standin({ clockOffsetMs: skew });
      const a = transport();
      const b = transport();
      await Promise.all([a.open("gw-a"), b.open("gw-b")]);
      const before = Date.now();
      const firstA = await a.renewLease("gw-a", "na");
      const firstB = await b.renewLease("gw-b", "nb");
      // the time stamp is the server's (second precision, as Graph writes it), an hour off ours
      assert.ok(Math.abs(firstA - (before + skew)) < 3000, `renewedAt ${new Date(firstA).toISOString()}`);
      await sleep(2100);
      const secondB = await b.renewLease("gw-b", "nb");
      assert.ok(secondB - firstB >= 2000, "B's renewal moved its lease on by the server's clock");
      const leases = await a.readLeases();
      const of = (instance: string) => leases.find((l) => l.instance === instance)!;
      assert.equal(leases.length, 2, "one lease per instance and nonce, however often renewed");
      assert.equal(of("gw-a").renewedAt, firstA);
      assert.equal(of("gw-b").renewedAt, secondB);
      // A's age, measured against B's fresh renewal: both server times, so the skew cancels
      assert.ok(secondB - of("gw-a").renewedAt >= 2000);
      assert.equal(folder(`${BASE}/Leases`).length, 2, "renewals change the item, they add none");
      // a lease item deleted (by a peer that took A for dead) is written anew
      g.remove(MAILBOX, folder(`${BASE}/Leases`).find((m) => m.subject.includes("gw-a"))!.id);
      const renewed = await a.renewLease("gw-a", "na");
      assert.ok(renewed >= secondB);
      assert.equal((await b.readLeases()).length, 2);
      // a restarted process (same instance, new nonce) shows as a second lease of that instance
      const restarted = transport();
      await restarted.open("gw-a");
      await restarted.renewLease("gw-a", "na2");
      assert.deepEqual(
        (await b.readLeases())
          .filter((l) => l.instance === "gw-a")
          .map((l) => l.nonce)
          .sort(),
        ["na", "na2"],
      );
    });
  }

  it("onChange fires every poll interval until close", async () => {
    await standin();
    const t = transport({ pollIntervalMs: 100 });
    let calls = 0;
    t.onChange(() => calls++);
    await t.open("gw-a");
    await sleep(350);
    await t.close();
    const seen = calls;
    assert.ok(seen >= 2, `${seen} calls`);
    await sleep(250);
    assert.equal(calls, seen);
  });
});
