// The Microsoft Graph transport over real HTTPS against the Graph stand-in, tokens from the Entra ID
// stand-in: what a user notices (which emails come out, how often, in which order, what happens on the
// server, what the node's status says), read from the watcher's output and the stand-in's request log.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GraphApi, GraphApiError, userPath } from "../../src/core/graph/graph-api";
import {
  GRAPH_UID_VALIDITY,
  GraphMailboxWatcher,
  type GraphWatchedEmail,
  type GraphWatcherOptions,
  type GraphWatcherState,
} from "../../src/core/graph/graph-mailbox-watcher";
import { type GraphFolderProgress, GraphProgressStore } from "../../src/core/graph/graph-progress-store";
import { sendMail } from "../../src/core/graph/send-mail";
import type { TokenSource } from "../../src/core/mail/imap-login";
import { parseEmail } from "../../src/core/mail/parse-email";
import { validateOAuthSettings } from "../../src/core/oauth/settings";
import { TokenProvider } from "../../src/core/oauth/token-provider";
import { alarmEmail } from "../helpers/mail-stack";
import { GRAPH_HOST, MAILBOX, startTestTenant, TENANT_ID, type TestTenant } from "../helpers/tenant";
import { GraphStandin, type GraphStandinOptions } from "../standin/graph";
import { RUN_DIR } from "../standin/paths";

const dir = join(RUN_DIR, "graph-watcher-test");

describe("Graph transport against the Graph stand-in", () => {
  let tenant: TestTenant;
  let provider: TokenProvider;
  let graph: GraphStandin;
  let running: GraphMailboxWatcher[] = [];
  let apis: GraphApi[] = [];
  let testNo = 0;
  let renewals = 0;

  before(async () => {
    tenant = await startTestTenant();
    const v = validateOAuthSettings(tenant.fields, tenant.credentials);
    assert.ok(v.ok);
    provider = new TokenProvider(v.settings, { timeoutMs: 5000, minForcedRenewalIntervalMs: 0 });
  });
  after(() => tenant.stop());
  afterEach(async () => {
    for (const w of running) await w.stop();
    for (const a of apis) a.close();
    running = [];
    apis = [];
    await graph?.stop();
  });

  const tokens: TokenSource = {
    get: () => provider.getToken("graph", "Mail.ReadWrite").then((t) => t.token),
    renewAfterRejection: (rejected) => {
      renewals++;
      return provider.renewAfterRejection("graph", rejected).then((t) => t.token);
    },
  };

  async function standin(opts: Partial<GraphStandinOptions> = {}): Promise<GraphStandin> {
    graph = new GraphStandin({
      certs: tenant.certs,
      signingKey: { kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: GRAPH_HOST,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review", "Inbox/Alarms"],
      ...opts,
    });
    await graph.start();
    return graph;
  }

  function api(overrides: Partial<ConstructorParameters<typeof GraphApi>[0]> = {}): GraphApi {
    const a = new GraphApi({ host: graph.host, tokens, backoff: { initialMs: 100, maxMs: 1000 }, ...overrides });
    apis.push(a);
    return a;
  }

  /** A fresh progress file for this test (kept across watchers of the same test). */
  function storePath(): string {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `progress-${++testNo}.json`);
    rmSync(path, { force: true });
    return path;
  }

  function watch(path: string, overrides: Partial<GraphWatcherOptions> = {}) {
    const emitted: { at: number; e: GraphWatchedEmail }[] = [];
    const states: { at: number; s: GraphWatcherState }[] = [];
    const logs: string[] = [];
    const w = new GraphMailboxWatcher({
      host: graph.host,
      mailbox: MAILBOX,
      folder: "INBOX",
      take: "unseen",
      onAccepted: { kind: "seen" },
      reviewFolder: null,
      redeliverAfterMs: 600_000,
      pollIntervalMs: 150,
      safetyCheckMs: 60_000,
      maxInFlight: 1000,
      maxInMemoryAttachmentBytes: 10 * 1024 * 1024,
      spoolDir: join(dir, `spool-${testNo}`),
      backoff: { initialMs: 100, maxMs: 1000 },
      tokens,
      store: new GraphProgressStore(path),
      emit: (e) => emitted.push({ at: Date.now(), e }),
      onState: (s) => states.push({ at: Date.now(), s }),
      log: (level, message) => logs.push(`${level}: ${message}`),
      ...overrides,
    });
    running.push(w);
    w.start();
    const has = (kind: GraphWatcherState["kind"]) => states.some((x) => x.s.kind === kind);
    const errorReason = () => {
      const s = states.find((x) => x.s.kind === "error")?.s;
      return s?.kind === "error" ? s.reason : "";
    };
    const subjects = () => emitted.map((x) => x.e.email.subject);
    const stop = async () => {
      await w.stop();
      running = running.filter((x) => x !== w);
    };
    return { w, emitted, states, logs, has, errorReason, subjects, stop };
  }

  const deliver = (subject: string, opts: { receivedDateTime?: Date; folder?: string } = {}) =>
    graph.deliver(MAILBOX, alarmEmail(subject), opts);
  const inbox = () => graph.messages(MAILBOX, "inbox");
  const mailboxRequests = () => graph.requests.filter((r) => r.mailbox !== undefined);

  describe("GraphMailboxWatcher", () => {
    it("emits a backlog of 25 emails across delta pages exactly once, oldest first, parsed as IMAP parses", async () => {
      await standin({ pageSize: 10 });
      const base = Date.now() - 3_600_000;
      // delivered newest first, so that delta order and age order differ
      const stored = Array.from({ length: 25 }, (_, i) => 24 - i).map((i) =>
        deliver(`Alarm ${i}`, { receivedDateTime: new Date(base + i * 1000) }),
      );
      const { emitted, subjects, has } = watch(storePath());
      await waitFor(() => emitted.length >= 25, 8000);
      await waitFor(() => graph.requests.filter((r) => r.path.includes("/delta")).length >= 6); // several polls later
      assert.deepEqual(
        subjects(),
        Array.from({ length: 25 }, (_, i) => `Alarm ${i}`),
      );
      assert.equal(new Set(emitted.map((x) => x.e.ref.uid)).size, 25);
      const first = emitted[0]?.e;
      assert.ok(first);
      const original = stored.find((m) => m.subject === "Alarm 0");
      assert.equal(first.ref.uidValidity, GRAPH_UID_VALIDITY);
      assert.equal(first.ref.graphId, original?.id);
      assert.equal(first.receivedAt, new Date(base).toISOString().replace(/\.\d{3}Z$/, ".000Z"));
      assert.equal(first.size, original?.mime.length);
      assert.deepEqual(first.email, await parseEmail(original?.mime ?? Buffer.alloc(0), { maxInMemoryBytes: 1e7 }));
      assert.ok(
        graph.requests.some((r) => r.url.includes("skiptoken")),
        "the initial round came in pages",
      );
      assert.ok(has("watching"));
      assert.ok(
        inbox().every((m) => !m.isRead),
        "nothing marked read before settlement",
      );
    });

    it("connectors of many tenants reuse a few warm connections to Graph, not one pool each", async () => {
      await standin();
      // 20 connectors' APIs (as 20 email-connector nodes make), each asking Graph 5 times, one after another.
      const many = Array.from({ length: 20 }, () => api());
      for (let round = 0; round < 5; round++) {
        for (const a of many) await a.get(`${userPath(MAILBOX)}/mailFolders/inbox`);
      }
      assert.ok(
        graph.connectionsAccepted <= 2,
        `100 requests one after another took ${graph.connectionsAccepted} TLS connections`,
      );
    });

    it("picks up new mail while polling", async () => {
      await standin();
      const { emitted, has } = watch(storePath());
      await waitFor(() => has("watching"));
      const t0 = Date.now();
      deliver("Fire zone 2");
      await waitFor(() => emitted.length === 1, 3000);
      assert.ok((emitted[0]?.at ?? 0) - t0 < 1500, "within a few polls");
      assert.equal(emitted[0]?.e.email.subject, "Fire zone 2");
    });

    it("marks an email read only after it was settled, and a second settlement is ignored", async () => {
      await standin();
      const m = deliver("Burglary");
      const { w, emitted } = watch(storePath());
      await waitFor(() => emitted.length === 1);
      await sleep(500);
      assert.equal(emitted.length, 1, "emitted once while in flight");
      assert.equal(inbox()[0]?.isRead, false, "untouched before settlement");
      assert.equal(w.inFlightCount, 1);
      const ref = emitted[0]?.e.ref;
      assert.ok(ref);
      // the ref as it comes back through a flow: plain EmailRef, without graphId
      assert.equal(
        await w.settle({ uidValidity: ref.uidValidity, uid: ref.uid, messageId: ref.messageId }, "accepted"),
        true,
      );
      await waitFor(() => graph.messages(MAILBOX).find((x) => x.id === m.id)?.isRead === true);
      assert.equal(await w.settle(ref, "accepted"), false);
      assert.equal(w.inFlightCount, 0);
      // The stand-in records a request's status once its answer is written, just after the change itself.
      await waitFor(() => graph.requests.some((r) => r.method === "PATCH" && r.status !== 0));
      const patches = graph.requests.filter((r) => r.method === "PATCH");
      assert.equal(patches.length, 1);
      assert.equal(patches[0]?.status, 200);
    });

    it("moves accepted emails to the named folder after settlement", async () => {
      await standin();
      deliver("Panic");
      const { w, emitted } = watch(storePath(), { onAccepted: { kind: "move", folder: "Processed" } });
      await waitFor(() => emitted.length === 1);
      await sleep(300);
      assert.equal(graph.messages(MAILBOX, "Processed").length, 0, "not moved before settlement");
      await w.settle(emitted[0]!.e.ref, "accepted");
      await waitFor(() => graph.messages(MAILBOX, "Processed").length === 1);
      assert.equal(inbox().length, 0);
      await sleep(400);
      assert.equal(emitted.length, 1);
    });

    it("moves into a child folder given as a path", async () => {
      await standin();
      deliver("Tamper");
      const { w, emitted } = watch(storePath(), { onAccepted: { kind: "move", folder: "Inbox/Alarms" } });
      await waitFor(() => emitted.length === 1);
      await w.settle(emitted[0]!.e.ref, "accepted");
      await waitFor(() => graph.messages(MAILBOX, "Inbox/Alarms").length === 1);
    });

    it("deletes accepted emails after settlement", async () => {
      await standin();
      deliver("Smoke");
      const { w, emitted } = watch(storePath(), { onAccepted: { kind: "delete" } });
      await waitFor(() => emitted.length === 1);
      await sleep(300);
      assert.equal(inbox().length, 1, "not deleted before settlement");
      await w.settle(emitted[0]!.e.ref, "accepted");
      await waitFor(() => inbox().length === 0);
      assert.equal(graph.requests.filter((r) => r.method === "DELETE").length, 1);
    });

    it("moves rejected emails to the review folder", async () => {
      await standin();
      deliver("Not an alarm");
      const { w, emitted } = watch(storePath(), { reviewFolder: "Review" });
      await waitFor(() => emitted.length === 1);
      await w.settle(emitted[0]!.e.ref, "rejected");
      await waitFor(() => graph.messages(MAILBOX, "Review").length === 1);
      assert.equal(graph.messages(MAILBOX, "Review")[0]?.isRead, false);
    });

    it("leaves a rejected email unread without a review folder, and never offers it again", async () => {
      await standin();
      deliver("Spam");
      const path = storePath();
      const first = watch(path, { safetyCheckMs: 300 });
      await waitFor(() => first.emitted.length === 1);
      await first.w.settle(first.emitted[0]!.e.ref, "rejected");
      await sleep(1000); // several delta rounds and unread listings
      assert.equal(first.emitted.length, 1);
      await first.stop();
      const second = watch(path, { safetyCheckMs: 300 });
      await waitFor(() => second.has("watching"));
      await sleep(700);
      assert.equal(second.emitted.length, 0, "not offered again after a restart");
      assert.equal(inbox()[0]?.isRead, false);
    });

    it("forgets settlements once their email is no longer unread, and keeps those left unread", async () => {
      await standin();
      deliver("Accepted");
      deliver("Rejected");
      const path = storePath();
      const { w, emitted } = watch(path, { safetyCheckMs: 300 });
      await waitFor(() => emitted.length === 2);
      await w.settle(emitted[0]!.e.ref, "accepted");
      await w.settle(emitted[1]!.e.ref, "rejected");
      await waitFor(() => {
        const saved = JSON.parse(readFileSync(path, "utf8")) as GraphFolderProgress;
        return saved.settled.length === 1 && saved.pending.length === 0;
      }, 3000);
      const saved = JSON.parse(readFileSync(path, "utf8")) as GraphFolderProgress;
      assert.equal(saved.settled[0]?.uid, emitted[1]?.e.ref.uid, "the unread one is remembered");
    });

    it("offers an email again with the same uid when settled with retry", async () => {
      await standin();
      deliver("Flood");
      const { w, emitted } = watch(storePath());
      await waitFor(() => emitted.length === 1);
      await w.settle(emitted[0]!.e.ref, "retry");
      await waitFor(() => emitted.length === 2);
      assert.equal(emitted[1]?.e.ref.uid, emitted[0]?.e.ref.uid);
      assert.equal(inbox()[0]?.isRead, false);
      await w.settle(emitted[1]!.e.ref, "accepted");
      await waitFor(() => inbox()[0]?.isRead === true);
    });

    it("offers an unsettled email again after redeliverAfterMs, never twice while in flight", async () => {
      await standin();
      deliver("Medical");
      const { w, emitted } = watch(storePath(), { redeliverAfterMs: 1000 });
      await waitFor(() => emitted.length === 1);
      await sleep(800);
      assert.equal(emitted.length, 1);
      await waitFor(() => emitted.length === 2, 3000);
      const gap = (emitted[1]?.at ?? 0) - (emitted[0]?.at ?? 0);
      assert.ok(gap >= 1000, `offered again after ${gap} ms`);
      assert.equal(emitted[1]?.e.ref.uid, emitted[0]?.e.ref.uid);
      await w.settle(emitted[0]!.e.ref, "accepted"); // a late settlement through the first message still counts
      await waitFor(() => inbox()[0]?.isRead === true);
      await sleep(1200);
      assert.equal(emitted.length, 2);
    });

    it("resumes after a restart: settled not repeated, unsettled offered again as the same uid, nothing skipped", async () => {
      await standin();
      const m1 = deliver("One");
      deliver("Two");
      const m3 = deliver("Three");
      const path = storePath();
      const a = watch(path);
      await waitFor(() => a.emitted.length === 3);
      const uidOf = (subject: string, list: typeof a.emitted) =>
        list.find((x) => x.e.email.subject === subject)?.e.ref.uid;
      await a.w.settle(a.emitted.find((x) => x.e.email.subject === "One")!.e.ref, "accepted");
      await waitFor(() => graph.messages(MAILBOX).find((m) => m.id === m1.id)?.isRead === true);
      await a.stop();

      deliver("Four"); // while stopped
      graph.setRead(MAILBOX, m3.id, true); // someone read it in Outlook meanwhile
      const b = watch(path);
      await waitFor(() => b.emitted.length >= 2);
      await sleep(600);
      assert.deepEqual(b.subjects().sort(), ["Four", "Two"]);
      assert.equal(uidOf("Two", b.emitted), uidOf("Two", a.emitted), "same uid as before the restart");
      assert.ok((uidOf("Four", b.emitted) ?? 0) > 3, "a new uid for a new email");
      assert.ok(
        b.logs.some((l) => /uid 3 not offered again: it was read/.test(l)),
        b.logs.join("\n"),
      );
    });

    it("an email taken on but not yet offered when the process died is offered at the next start", async () => {
      await standin();
      const path = storePath();
      const a = watch(path, { maxInFlight: 1 });
      deliver("First");
      deliver("Second");
      await waitFor(() => a.emitted.length === 1);
      await sleep(400); // the delta link is past both; only one is in flight
      const saved = JSON.parse(readFileSync(path, "utf8")) as GraphFolderProgress;
      assert.equal(saved.pending.length, 2);
      assert.ok(saved.deltaLink);
      await a.stop();
      const b = watch(path, { safetyCheckMs: 600_000 });
      await waitFor(() => b.emitted.length === 2);
      assert.deepEqual(b.subjects(), ["First", "Second"]);
      assert.deepEqual(
        b.emitted.map((x) => x.e.ref.uid),
        saved.pending.map((p) => p.uid),
        "offered from the saved pending list, not found afresh",
      );
    });

    it("finishes settlements recorded before a crash; a move that already went through counts as done", async () => {
      await standin();
      const moved = deliver("Moved before the crash");
      const seen = deliver("Not yet marked");
      graph.move(MAILBOX, moved.id, "Processed"); // the server moved it; the answer never arrived
      const path = storePath();
      const progress: GraphFolderProgress = {
        folderId: "inbox",
        deltaLink: null,
        newSince: null,
        oldIds: [],
        nextUid: 3,
        pending: [],
        settled: [
          {
            uid: 1,
            graphId: moved.id,
            messageId: null,
            outcome: "accepted",
            action: { kind: "move", folder: "Processed" },
            applied: false,
          },
          { uid: 2, graphId: seen.id, messageId: null, outcome: "accepted", action: { kind: "seen" }, applied: false },
        ],
      };
      writeFileSync(path, JSON.stringify(progress));
      const { emitted, states, has } = watch(path);
      await waitFor(() => has("watching"));
      await waitFor(() => inbox().find((m) => m.id === seen.id)?.isRead === true);
      await sleep(400);
      assert.equal(emitted.length, 0, "settled emails are not offered again");
      assert.equal(graph.messages(MAILBOX, "Processed").length, 1, "moved once");
      assert.ok(graph.requests.some((r) => r.method === "POST" && r.path.endsWith("/move") && r.status === 404));
      assert.ok(!states.some((x) => x.s.kind === "error"), JSON.stringify(states));
      const store = new GraphProgressStore(path);
      const { progress: after } = await store.load();
      assert.ok(after.settled.filter((s) => s.uid <= 2).every((s) => s.applied));
    });

    it("recovers from a lost delta state (410): nothing repeated, nothing missed", async () => {
      await standin();
      deliver("Before");
      const { w, emitted, logs } = watch(storePath());
      await waitFor(() => emitted.length === 1);
      await w.settle(emitted[0]!.e.ref, "rejected"); // stays unread: only our memory keeps it from coming back
      await sleep(300);
      graph.expireDeltaTokens();
      deliver("After");
      await waitFor(() => emitted.length === 2);
      await sleep(600);
      assert.deepEqual(
        emitted.map((x) => x.e.email.subject),
        ["Before", "After"],
      );
      assert.ok(graph.requests.some((r) => r.status === 410));
      assert.ok(logs.some((l) => /no longer valid/.test(l)));
    });

    it('"new" mode leaves the emails already there alone and takes those that arrive after the first start', async () => {
      await standin();
      const old = deliver("Old unread");
      deliver("Old too");
      const path = storePath();
      const a = watch(path, { take: "new", safetyCheckMs: 300 });
      await waitFor(() => a.has("watching"));
      await sleep(700);
      assert.equal(a.emitted.length, 0);
      deliver("New one");
      await waitFor(() => a.emitted.length === 1);
      assert.equal(a.emitted[0]?.e.email.subject, "New one");
      // an old email marked unread again is still old
      graph.setRead(MAILBOX, old.id, true);
      graph.setRead(MAILBOX, old.id, false);
      await sleep(700);
      assert.equal(a.emitted.length, 1);
      await a.stop();
      deliver("While stopped");
      const b = watch(path, { take: "new", safetyCheckMs: 300 });
      await waitFor(() => b.emitted.length >= 2);
      await sleep(500);
      assert.deepEqual(b.subjects().sort(), ["New one", "While stopped"]);
    });

    it("spools large attachments like the IMAP watcher and removes them after settlement", async () => {
      await standin();
      const clip = Buffer.alloc(4096, 7).toString("base64");
      const mime = alarmEmail("Clip", "", "").replace(
        "Content-Type: text/plain; charset=utf-8\r\n\r\n",
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmotion\r\n' +
          '--b\r\nContent-Type: video/mp4; name="clip.mp4"\r\nContent-Disposition: attachment; filename="clip.mp4"\r\n' +
          `Content-Transfer-Encoding: base64\r\n\r\n${clip}\r\n--b--\r\n`,
      );
      graph.deliver(MAILBOX, mime);
      const { w, emitted } = watch(storePath(), { maxInMemoryAttachmentBytes: 1024 });
      await waitFor(() => emitted.length === 1);
      const [att] = emitted[0]!.e.email.attachments;
      assert.equal(att?.filename, "clip.mp4");
      assert.equal(att?.size, 4096);
      assert.equal(att?.content, null);
      assert.ok(att?.path && existsSync(att.path));
      await w.settle(emitted[0]!.e.ref, "accepted");
      assert.ok(!existsSync(att.path), "spool file removed after settlement");
    });

    it("names a folder that does not exist", async () => {
      await standin();
      const { has, errorReason } = watch(storePath(), { folder: "Alarmz" });
      await waitFor(() => has("error"));
      assert.match(errorReason(), /folder "Alarmz" not found in mailbox alarms@contoso\.test/);
    });

    it("names a move folder that does not exist before taking any email", async () => {
      await standin();
      deliver("Waiting");
      const { has, errorReason, emitted } = watch(storePath(), { onAccepted: { kind: "move", folder: "Procesed" } });
      await waitFor(() => has("error"));
      assert.match(errorReason(), /folder "Procesed" not found/);
      assert.equal(emitted.length, 0);
    });
  });

  describe("requests: throttling, concurrency, tokens, errors, sendMail", () => {
    it("GETs of several mailboxes at one moment go in one JSON batch, each answered and throttled as its own", async () => {
      const boxes = ["a@contoso.test", "b@contoso.test", "c@contoso.test"];
      await standin({ mailboxes: boxes });
      for (const m of boxes) graph.deliver(m, alarmEmail(`for ${m}`));
      // One GraphApi per mailbox, as each watcher has; the same token source (one tenant). No retry after a 429
      // here: its Retry-After (the window's rest) would be a minute.
      const [a, b, c] = boxes.map(() => api({ maxThrottleRetries: 0 })) as [GraphApi, GraphApi, GraphApi];
      const list = (x: GraphApi, m: string) =>
        x.request<{ value: { subject: string }[] }>("GET", x.url(`${userPath(m)}/messages`, { $select: "subject" }), {
          batch: true,
        });
      const first = await Promise.all([list(a, boxes[0]!), list(b, boxes[1]!), list(c, boxes[2]!)]);
      assert.deepEqual(
        first.map((r) => r.body.value.map((v) => v.subject)),
        boxes.map((m) => [`for ${m}`]),
      );
      assert.deepEqual([graph.batches, graph.batchedRequests], [1, 3], "one round trip for three mailboxes");
      // Mailbox a uses up its request limit; in the next batch only a is refused, and only a is throttled.
      graph.requestLimit = { requests: 3, windowMs: 60_000 };
      await a.get(`${userPath(boxes[0]!)}/messages`);
      await a.get(`${userPath(boxes[0]!)}/messages`);
      const second = await Promise.allSettled([list(a, boxes[0]!), list(b, boxes[1]!), list(c, boxes[2]!)]);
      assert.equal(graph.batches, 2);
      assert.equal(second[0].status, "rejected");
      assert.equal(((second[0] as PromiseRejectedResult).reason as GraphApiError).status, 429);
      assert.deepEqual(
        second.slice(1).map((r) => r.status),
        ["fulfilled", "fulfilled"],
      );
    });

    it("after a 429 with Retry-After 2, no request goes to the mailbox for 2 s, and the node says throttled", async () => {
      await standin();
      const { emitted, states, has } = watch(storePath());
      await waitFor(() => has("watching"));
      graph.failWith({ kind: "throttle", retryAfterSeconds: 2, count: 1 });
      await waitFor(() => has("throttled"));
      graph.deliver(MAILBOX, alarmEmail("After the pause"));
      await waitFor(() => emitted.length === 1, 6000);
      const log = mailboxRequests();
      const i = log.findIndex((r) => r.status === 429);
      const throttledAt = log[i]?.at ?? 0;
      const next = log[i + 1];
      assert.ok(next, "a request after the 429");
      assert.ok(next.at - throttledAt >= 2000, `next request ${next.at - throttledAt} ms after the 429`);
      const state = states.find((x) => x.s.kind === "throttled")?.s;
      assert.deepEqual(state, { kind: "throttled", retryInMs: 2000 });
      await waitFor(() => states[states.length - 1]?.s.kind === "watching");
    });

    it("stops at once while it waits out a long Retry-After", async () => {
      await standin();
      const { w, has } = watch(storePath());
      await waitFor(() => has("watching"));
      graph.failWith({ kind: "throttle", retryAfterSeconds: 30, count: 1 });
      await waitFor(() => has("throttled"));
      const t0 = Date.now();
      await w.stop();
      running = running.filter((x) => x !== w);
      assert.ok(Date.now() - t0 < 500, `stop took ${Date.now() - t0} ms`);
    });

    it("without Retry-After it backs off exponentially, 429 and 503 alike, and says throttled meanwhile", async () => {
      await standin();
      const { emitted, states, has } = watch(storePath());
      await waitFor(() => has("watching"));
      graph.failWith({ kind: "throttle", status: 503, count: 3 });
      graph.deliver(MAILBOX, alarmEmail("Eventually"));
      await waitFor(() => emitted.length === 1, 6000);
      const waits = states.filter((x) => x.s.kind === "throttled").map((x) => (x.s as { retryInMs: number }).retryInMs);
      assert.equal(waits.length, 3, JSON.stringify(states));
      // full jitter: each wait lies in [ceiling / 2, ceiling], ceilings 100, 200, 400 ms
      waits.forEach((ms, n) => {
        const ceiling = 100 * 2 ** n;
        assert.ok(ms >= ceiling / 2 && ms <= ceiling, `wait ${n}: ${ms} ms`);
      });
      const log = mailboxRequests();
      const throttled = log.flatMap((r, i) => (r.status === 503 ? [i] : []));
      throttled.forEach((i, n) => {
        const gap = (log[i + 1]?.at ?? 0) - (log[i]?.at ?? 0);
        assert.ok(gap >= (waits[n] ?? 0) - 5, `request after 503 #${n} came ${gap} ms later, wait was ${waits[n]}`);
      });
    });

    it("keeps at most 4 requests in flight for a mailbox while a backlog of 50 is fetched and settled", async () => {
      await standin({ latencyMs: 25 });
      for (let i = 0; i < 50; i++) graph.deliver(MAILBOX, alarmEmail(`Backlog ${i}`));
      const emitted: GraphWatchedEmail[] = [];
      const { w } = watch(storePath(), {
        emit: (e) => {
          emitted.push(e);
          void w.settle(e.ref, "accepted");
        },
      });
      await waitFor(() => graph.messages(MAILBOX).every((m) => m.isRead), 20_000);
      assert.equal(emitted.length, 50);
      assert.equal(new Set(emitted.map((e) => e.ref.uid)).size, 50);
      assert.ok(graph.maxConcurrent <= 4, `stand-in saw ${graph.maxConcurrent} at once`);
      assert.ok(graph.maxConcurrent >= 2, "requests do run in parallel");
      assert.ok(!graph.requests.some((r) => r.status === 429), "never over MailboxConcurrency");
    });

    it("GraphApi queues parallel callers to 4 per mailbox", async () => {
      await standin({ latencyMs: 30 });
      const a = api();
      const results = await Promise.all(
        Array.from({ length: 20 }, () => a.get<{ value: unknown[] }>(`${userPath(MAILBOX)}/mailFolders`)),
      );
      assert.equal(results.length, 20);
      assert.equal(graph.maxConcurrent, 4);
      assert.ok(!graph.requests.some((r) => r.status === 429));
    });

    it("401: renews the token exactly once, then shows a clear error, and recovers on its own", async () => {
      await standin();
      const { emitted, states, has, errorReason } = watch(storePath());
      await waitFor(() => has("watching"));
      renewals = 0;
      graph.failWith({ kind: "unauthorized", count: 2 });
      await waitFor(() => has("error"));
      assert.equal(renewals, 1);
      assert.match(errorReason(), /^Graph refused the token \(InvalidAuthenticationToken\)/);
      const unauthorized = graph.requests.filter((r) => r.status === 401);
      assert.equal(unauthorized.length, 2, "the request and its one retry with a renewed token");
      graph.deliver(MAILBOX, alarmEmail("After recovery"));
      await waitFor(() => emitted.length === 1);
      assert.equal(states[states.length - 1]?.s.kind, "watching");
      assert.equal(renewals, 1);
    });

    it("403 ErrorAccessDenied names the mailbox and the application access policy, and recovers", async () => {
      await standin();
      graph.failWith({ kind: "access-denied" });
      const { has, logs, emitted, errorReason } = watch(storePath());
      await waitFor(() => has("error"));
      const reason = errorReason();
      assert.match(reason, /Graph denied access to mailbox alarms@contoso\.test \(ErrorAccessDenied\)/);
      assert.match(reason, /Application Access Policy or RBAC for Applications/);
      assert.ok(logs.some((l) => /Ask the Exchange administrator/.test(l)));
      graph.failWith(undefined);
      graph.deliver(MAILBOX, alarmEmail("Allowed now"));
      await waitFor(() => emitted.length === 1, 5000);
    });

    it("404 for the mailbox names it: unknown user, or a user without an Exchange Online mailbox", async () => {
      await standin({ usersWithoutMailbox: ["onprem@contoso.test"] });
      const unknown = watch(storePath(), { mailbox: "nobody@contoso.test" });
      const onprem = watch(storePath(), { mailbox: "onprem@contoso.test" });
      await waitFor(() => unknown.has("error") && onprem.has("error"));
      assert.match(
        unknown.errorReason(),
        /mailbox nobody@contoso\.test not found in Exchange Online \(ErrorInvalidUser\)/,
      );
      assert.match(onprem.errorReason(), /mailbox onprem@contoso\.test not found .*MailboxNotEnabledForRESTAPI/);
    });

    it("sendMail posts subject, body, recipients and attachments as Graph expects", async () => {
      await standin();
      await sendMail(api(), MAILBOX, {
        subject: "Alarm 123588: burglary",
        body: { contentType: "Text", content: "Zone 3, Lager\nKühlraum" },
        toRecipients: ["ops@contoso.test", { address: "lead@contoso.test", name: "Shift lead" }],
        ccRecipients: ["audit@contoso.test"],
        attachments: [{ name: "event.txt", contentType: "text/plain", content: Buffer.from("E130 03 003") }],
      });
      assert.equal(graph.sent.length, 1);
      const { mailbox, body } = graph.sent[0]!;
      assert.equal(mailbox, MAILBOX);
      assert.equal(body.message.subject, "Alarm 123588: burglary");
      assert.deepEqual(body.message.body, { contentType: "Text", content: "Zone 3, Lager\nKühlraum" });
      assert.deepEqual(body.message.toRecipients, [
        { emailAddress: { address: "ops@contoso.test" } },
        { emailAddress: { address: "lead@contoso.test", name: "Shift lead" } },
      ]);
      assert.deepEqual(body.message.ccRecipients, [{ emailAddress: { address: "audit@contoso.test" } }]);
      assert.equal(body.message.attachments[0]["@odata.type"], "#microsoft.graph.fileAttachment");
      assert.equal(Buffer.from(body.message.attachments[0].contentBytes, "base64").toString(), "E130 03 003");
      assert.equal(body.saveToSentItems, true);
      assert.equal(graph.messages(MAILBOX, "sentitems").length, 1, "a copy in Sent Items");
      const post = graph.requests.find((r) => r.method === "POST");
      assert.equal(post?.path, `/v1.0/users/${MAILBOX}/sendMail`);
      assert.equal(post?.status, 202);
    });

    it("sendMail failures are explained like any request's, and a message without recipients is never sent", async () => {
      await standin({ deniedMailboxes: ["alarms@contoso.test"] });
      const a = api();
      await assert.rejects(
        sendMail(a, MAILBOX, {
          subject: "x",
          body: { contentType: "HTML", content: "<b>x</b>" },
          toRecipients: ["a@b.c"],
        }),
        (err: unknown) =>
          err instanceof GraphApiError && err.status === 403 && /Application Access Policy/.test(err.message),
      );
      await assert.rejects(
        sendMail(a, MAILBOX, { subject: "x", body: { contentType: "Text", content: "x" }, toRecipients: [] }),
        /no recipient/,
      );
      assert.equal(graph.requests.filter((r) => r.method === "POST").length, 1, "the empty one was never sent");
    });

    it("sendMail waits out a 429 and is sent once", async () => {
      await standin();
      graph.failWith({ kind: "throttle", retryAfterSeconds: 1, count: 1 });
      const t0 = Date.now();
      await sendMail(api(), MAILBOX, {
        subject: "x",
        body: { contentType: "Text", content: "x" },
        toRecipients: ["a@b.c"],
      });
      assert.ok(Date.now() - t0 >= 1000);
      assert.equal(graph.sent.length, 1);
    });

    it("never sends the token to another host, even when a link points there", async () => {
      await standin();
      await assert.rejects(
        api().get("https://graph.example.invalid/v1.0/users/x/messages"),
        (err: unknown) => err instanceof GraphApiError && err.code === "ForeignHost",
      );
      assert.equal(graph.requests.length, 0);
    });

    it("a failing token source reaches the caller with its own error", async () => {
      await standin();
      class MissingConsent extends Error {
        readonly transient = false;
      }
      const failure = new MissingConsent("admin consent missing for Mail.ReadWrite");
      const a = api({
        tokens: { get: () => Promise.reject(failure), renewAfterRejection: () => Promise.reject(failure) },
      });
      await assert.rejects(a.get(`${userPath(MAILBOX)}/mailFolders`), (err: unknown) => err === failure);
      const { has, errorReason } = watch(storePath(), {
        tokens: { get: () => Promise.reject(failure), renewAfterRejection: () => Promise.reject(failure) },
      });
      await waitFor(() => has("error"));
      assert.equal(errorReason(), "admin consent missing for Mail.ReadWrite");
      await sleep(10);
    });
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}
