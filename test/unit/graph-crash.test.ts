// kill -9 at random moments: a GraphMailboxWatcher in a child process, settling every email it is
// given, is killed again and again while mail keeps arriving. Afterwards every email must have been
// accepted (read on the server), and none may have come out again after its settlement was recorded.
// The child is this same file, started with GRAPH_CRASH_CHILD set.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GraphMailboxWatcher } from "../../src/core/graph/graph-mailbox-watcher";
import { GraphProgressStore } from "../../src/core/graph/graph-progress-store";
import { alarmEmail } from "../helpers/mail-stack";
import { CLIENT_ID, GRAPH_HOST, MAILBOX, startTestTenant, TENANT_ID, type TestTenant } from "../helpers/tenant";
import { GraphStandin } from "../standin/graph";
import { RUN_DIR } from "../standin/paths";

interface ChildConfig {
  host: string;
  token: string;
  store: string;
  spool: string;
  journal: string;
}

const childConfig = process.env.GRAPH_CRASH_CHILD;
if (childConfig) runChild(JSON.parse(childConfig) as ChildConfig);
else crashTests();

/** The child: watch, and settle each email as "accepted" a moment after it comes out. */
function runChild(cfg: ChildConfig): void {
  appendFileSync(cfg.journal, "start\n");
  const w = new GraphMailboxWatcher({
    host: cfg.host,
    mailbox: MAILBOX,
    folder: "Inbox",
    take: "unseen",
    onAccepted: { kind: "seen" },
    reviewFolder: null,
    redeliverAfterMs: 60_000,
    pollIntervalMs: 100,
    safetyCheckMs: 1000,
    maxInFlight: 5,
    maxInMemoryAttachmentBytes: 1024 * 1024,
    spoolDir: cfg.spool,
    backoff: { initialMs: 100, maxMs: 500 },
    tokens: { get: async () => cfg.token, renewAfterRejection: async () => cfg.token },
    store: new GraphProgressStore(cfg.store),
    emit: (e) => {
      appendFileSync(cfg.journal, `emit ${e.email.subject}\n`);
      setTimeout(() => {
        w.settle(e.ref, "accepted").then(
          (ok) => ok && appendFileSync(cfg.journal, `settled ${e.email.subject}\n`),
          () => undefined,
        );
      }, Math.random() * 60);
    },
    onState: () => undefined,
    log: () => undefined,
  });
  w.start();
}

function crashTests(): void {
  describe("GraphMailboxWatcher killed with SIGKILL at random moments", () => {
    const dir = join(RUN_DIR, "graph-crash-test");
    let tenant: TestTenant;
    let graph: GraphStandin;

    before(async () => {
      tenant = await startTestTenant();
      graph = new GraphStandin({
        certs: tenant.certs,
        signingKey: { kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem },
        tenantId: TENANT_ID,
        audienceHost: GRAPH_HOST,
        mailboxes: [MAILBOX],
        pageSize: 7,
        latencyMs: 5,
      });
      await graph.start();
    });
    after(async () => {
      await graph.stop();
      await tenant.stop();
    });

    it("loses no email and repeats none whose settlement was recorded", { timeout: 120_000 }, async () => {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const issuer = `https://sts.windows.net/${TENANT_ID}/`;
      const token = await tenant.entra.mintToken({
        aud: `https://${GRAPH_HOST}`,
        iss: issuer,
        idp: issuer,
        appid: CLIENT_ID,
        appidacr: "1",
        idtyp: "app",
        oid: "5d1c6b2e-8f3a-4c1d-9e2f-0a1b2c3d4e5f",
        sub: "5d1c6b2e-8f3a-4c1d-9e2f-0a1b2c3d4e5f",
        tid: TENANT_ID,
        roles: ["Mail.ReadWrite"],
      });
      const cfg: ChildConfig = {
        host: graph.host,
        token,
        store: join(dir, "progress.json"),
        spool: join(dir, "spool"),
        journal: join(dir, "journal.log"),
      };
      const start = (): ChildProcess =>
        spawn(process.execPath, ["--import", "tsx", __filename], {
          env: { ...process.env, GRAPH_CRASH_CHILD: JSON.stringify(cfg) },
          stdio: "ignore",
        });
      const kill = async (child: ChildProcess) => {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      };

      const subjects: string[] = [];
      const deliver = () => {
        const subject = `Crash alarm ${subjects.length + 1}`;
        subjects.push(subject);
        graph.deliver(MAILBOX, alarmEmail(subject));
      };
      for (let i = 0; i < 20; i++) deliver();
      let kills = 0;
      const starts = () =>
        (readFileSync(cfg.journal, { encoding: "utf8", flag: "a+" }).match(/^start$/gm) ?? []).length;
      for (; kills < 12; kills++) {
        const before = starts();
        const child = start();
        // The lifetime counts from the child's first line, not from the spawn: tsx start-up alone takes 0.6-2 s
        // depending on the machine's load, and a child killed before it runs tests nothing.
        await waitFor(() => starts() > before, 30_000);
        const lifetime = 200 + Math.random() * 1000;
        const until = Date.now() + lifetime;
        while (Date.now() < until) {
          if (Math.random() < 0.5) deliver();
          await sleep(60);
        }
        await kill(child);
      }
      const last = start();
      try {
        await waitFor(() => graph.messages(MAILBOX).every((m) => m.isRead), 30_000);
        await sleep(500);
      } finally {
        await kill(last);
      }

      const journal = readFileSync(cfg.journal, "utf8").trim().split("\n");
      const runs = journal.join("\n").split("start\n").slice(1);
      const busyRuns = runs.slice(0, -1).filter((r) => r.includes("emit ")).length;
      assert.ok(busyRuns >= kills / 2, `only ${busyRuns} of ${kills} killed children got to work`);
      const emitted = new Map<string, number>();
      const settledAt = new Map<string, number>();
      journal.forEach((line, i) => {
        if (line === "start") return;
        const [kind, ...rest] = line.split(" ");
        const subject = rest.join(" ");
        if (kind === "emit") {
          assert.ok(!settledAt.has(subject), `${subject} came out again after its settlement was recorded`);
          emitted.set(subject, (emitted.get(subject) ?? 0) + 1);
        } else if (kind === "settled") settledAt.set(subject, i);
      });
      const inbox = graph.messages(MAILBOX);
      assert.equal(inbox.length, subjects.length);
      assert.ok(
        inbox.every((m) => m.isRead),
        "every email was accepted",
      );
      for (const s of subjects) assert.ok(emitted.has(s), `${s} never came out`);
      const repeats = [...emitted.values()].reduce((n, c) => n + c - 1, 0);
      // Repeats are allowed only for emails in flight when a kill came (at most maxInFlight each time).
      assert.ok(repeats <= kills * 5, `${repeats} repeats after ${kills} kills`);
      console.log(`# ${subjects.length} emails, ${kills} kills (${busyRuns} mid-work), ${repeats} repeated offers`);
    });
  });
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(50);
  }
}
