// MailboxWatcher on the real Dovecot, without Node-RED: what its state says while it works.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MailboxWatcher, type WatcherOptions } from "../../src/core/mail/mailbox-watcher";
import { ProgressStore } from "../../src/core/mail/progress-store";
import { uidSet } from "../../src/core/mail/uid-set";
import { validateOAuthSettings } from "../../src/core/oauth/settings";
import { TokenProvider } from "../../src/core/oauth/token-provider";
import type { WatchedEmail, WatcherState } from "../../src/core/watch/watcher";
import { type MailStack, startMailStack } from "../helpers/mail-stack";
import { soakAlarmWithClip } from "../helpers/soak-mail";
import { MAILBOX } from "../helpers/tenant";
import { RUN_DIR } from "../standin/paths";

function watcherOn(
  stack: MailStack,
  name: string,
  events: { at: number; what: string }[],
  more: Partial<WatcherOptions> = {},
): MailboxWatcher {
  const validation = validateOAuthSettings(stack.tenant.fields, stack.tenant.credentials);
  assert.ok(validation.ok);
  const tokens = new TokenProvider(validation.settings);
  const [host, port] = stack.outlookHost.split(":");
  return makeWatcher(name, events, {
    endpoint: { host: host!, port: Number(port), mailbox: MAILBOX, ca: stack.tenant.certs.ca },
    tokens: {
      get: () => tokens.getToken("outlook").then((t) => t.token),
      renewAfterRejection: (t) => tokens.renewAfterRejection("outlook", t).then((r) => r.token),
    },
    ...more,
  });
}

function makeWatcher(
  name: string,
  events: { at: number; what: string }[],
  opts: Partial<WatcherOptions> & Pick<WatcherOptions, "endpoint" | "tokens">,
): MailboxWatcher {
  const dir = join(RUN_DIR, "mailbox-watcher-test", name);
  rmSync(dir, { recursive: true, force: true });
  return new MailboxWatcher({
    folder: "INBOX",
    take: "unseen",
    onAccepted: { kind: "seen" },
    reviewFolder: null,
    redeliverAfterMs: 600_000,
    pollIntervalMs: 60_000,
    maxInFlight: 100,
    maxInMemoryAttachmentBytes: 1024 * 1024,
    spoolDir: join(dir, "spool"),
    backoff: { initialMs: 1000, maxMs: 60_000 },
    commandTimeoutMs: 60_000,
    store: new ProgressStore(join(dir, "progress.json")),
    emit: (e: WatchedEmail) => events.push({ at: Date.now(), what: `emit ${e.email.subject}` }),
    onState: (s: WatcherState) =>
      events.push({ at: Date.now(), what: s.kind === "reconnecting" ? `${s.kind} ${s.inMs}` : s.kind }),
    log: () => undefined,
    ...opts,
  });
}

/** The delays of the first `count` reconnects. */
async function reconnectDelays(watcher: MailboxWatcher, events: { what: string }[], count: number): Promise<number[]> {
  const delays = () => events.filter((e) => e.what.startsWith("reconnecting")).map((e) => Number(e.what.split(" ")[1]));
  watcher.start();
  try {
    for (let i = 0; i < 300 && delays().length < count; i++) await new Promise((r) => setTimeout(r, 20));
    return delays().slice(0, count);
  } finally {
    await watcher.stop();
  }
}

describe("MailboxWatcher reconnect delays", () => {
  const backoff = { initialMs: 5, maxMs: 60_000 };
  const refused = { host: "127.0.0.1", port: 1, mailbox: MAILBOX };

  // Found by the soak (scenario 4): after a 6 s Entra ID outage (HTTP 500) the connector was back only
  // after 2 minutes: MSAL holds a 5xx for 60 s, and by then the connector's backoff had grown to 60 s.
  it("retries a failing token endpoint at a short interval, not with the full backoff", async () => {
    const events: { at: number; what: string }[] = [];
    const outage = Object.assign(new Error("Entra ID had an internal error (AADSTS50000)"), { transient: true });
    const watcher = makeWatcher("token-outage", events, {
      endpoint: refused,
      backoff,
      tokens: { get: () => Promise.reject(outage), renewAfterRejection: () => Promise.reject(outage) },
    });
    const delays = await reconnectDelays(watcher, events, 9);
    assert.equal(delays.length, 9);
    assert.ok(Math.max(...delays) <= 50, `capped at 10 × the initial delay: ${delays.join(", ")}`);
  });

  it("keeps the full backoff when the IMAP server itself cannot be reached", async () => {
    const events: { at: number; what: string }[] = [];
    const watcher = makeWatcher("imap-refused", events, {
      endpoint: refused,
      backoff,
      tokens: { get: () => Promise.resolve("token"), renewAfterRejection: () => Promise.resolve("token") },
    });
    const delays = await reconnectDelays(watcher, events, 9);
    assert.ok(Math.max(...delays) > 50, `grows past 10 × the initial delay: ${delays.join(", ")}`);
  });
});

describe("MailboxWatcher state", () => {
  let stack: MailStack;
  before(async () => {
    stack = await startMailStack("mailbox-watcher");
  });
  after(() => stack.stop());

  // Found by the soak (scenario 3): after a reconnect the status said "connecting" until a 12 MB
  // email waiting in the folder was downloaded and parsed, seconds after the login had succeeded.
  it("says watching once the folder is open, not only after the first check downloaded everything", async () => {
    await stack.dovecot.append(MAILBOX, soakAlarmWithClip("ABC001", 12 * 1024 * 1024));
    const events: { at: number; what: string }[] = [];
    const watcher = watcherOn(stack, "watching-early", events);
    watcher.start();
    try {
      for (let i = 0; i < 200 && !events.some((e) => e.what.startsWith("emit")); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const kinds = events.map((e) => e.what);
      const watching = kinds.indexOf("watching");
      const emitted = kinds.findIndex((k) => k.startsWith("emit"));
      assert.ok(emitted >= 0, `the email was emitted (${kinds.join(", ")})`);
      assert.ok(
        watching >= 0 && watching < emitted,
        `watching before the large email was emitted: ${kinds.join(", ")}`,
      );
    } finally {
      await watcher.stop();
    }
  });

  // Found by the soak (scenario 6): such an email reached review as if it merely lacked an account.
  it("passes an email past the MIME parser's limits on empty, saying why it could not be read", async () => {
    const parts = Array.from({ length: 1001 }, (_, i) => `--s\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join(
      "",
    );
    await stack.dovecot.append(
      MAILBOX,
      "From: Panel <a@b.test>\r\nSubject: parts\r\nMessage-ID: <parts@b.test>\r\n" +
        `Content-Type: multipart/mixed; boundary=s\r\n\r\n${parts}--s--\r\n`,
      { folder: "Processing" },
    );
    const emitted: WatchedEmail[] = [];
    const watcher = watcherOn(stack, "unreadable", [], { folder: "Processing", emit: (e) => emitted.push(e) });
    watcher.start();
    try {
      for (let i = 0; i < 100 && emitted.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(emitted.length, 1);
      assert.match(emitted[0]!.email.unreadable ?? "", /^unreadable email: Max allowed child nodes exceeded/);
      assert.equal(emitted[0]!.email.text, "");
      // What the server knows of it, so that the review can say which email could not be read.
      assert.equal(emitted[0]!.email.messageId, "parts@b.test");
      assert.equal(emitted[0]!.email.subject, "parts");
      assert.deepEqual(emitted[0]!.email.from, [{ address: "a@b.test", name: "Panel" }]);
    } finally {
      await watcher.stop();
    }
  });

  // Seen while chasing scenario 6's peak memory: only the count of emails in flight was bounded (1000), so a
  // folder of 5 MB camera emails behind a flow that settles slowly could hold gigabytes.
  it("fetches no more while the emails in flight add up to maxInFlightBytes, and goes on as they settle", async () => {
    const body = `${"x".repeat(76)}\r\n`.repeat(1300); // about 100 KB
    for (let i = 0; i < 5; i++) {
      await stack.dovecot.append(MAILBOX, `From: a@b.test\r\nSubject: big ${i}\r\n\r\n${body}`, {
        folder: "Processed",
      });
    }
    const emitted: WatchedEmail[] = [];
    const watcher = watcherOn(stack, "budget", [], {
      folder: "Processed",
      maxInFlightBytes: 150_000,
      emit: (e) => emitted.push(e),
    });
    watcher.start();
    const settle = async (n: number) => {
      for (let i = 0; i < 50 && emitted.length < n; i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500)); // and no more than that
    };
    try {
      await settle(2);
      assert.deepEqual(
        emitted.map((e) => e.email.subject),
        ["big 0", "big 1"],
        "one over the budget, then it waits",
      );
      await watcher.settle(emitted[0]!.ref, "accepted");
      await settle(3);
      assert.equal(emitted.length, 3, "one settled, one more fetched");
      for (const e of emitted.slice(1)) await watcher.settle(e.ref, "accepted");
      await settle(5);
      assert.deepEqual(
        emitted.map((e) => e.email.subject),
        ["big 0", "big 1", "big 2", "big 3", "big 4"],
      );
    } finally {
      await watcher.stop();
    }
  });
});

describe("uidSet", () => {
  it("writes runs of UIDs as ranges, in order", () => {
    assert.equal(uidSet([9, 3, 4, 5, 6, 7, 12, 1]), "1,3:7,9,12");
    assert.equal(uidSet([42]), "42");
    assert.equal(uidSet(Array.from({ length: 1000 }, (_, i) => i + 1)), "1:1000");
  });
});
