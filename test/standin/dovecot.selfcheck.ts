// Self-check of the Dovecot stand-in: npx tsx test/standin/dovecot.selfcheck.ts (as root).
// Exits 0 when every check passes.
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { ensureTestCertificates } from "./certs";
import { type DovecotServer, dovecotAvailable, startDovecot } from "./dovecot";

const TENANT = "11111111-2222-3333-4444-555555555555";
const APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const MAILBOX = "alarms@contoso.test";
const AUDIENCE = "https://outlook.office365.com";
const KID = "standin-key-1";

let failures = 0;
async function check(name: string, fn: () => Promise<string | undefined>): Promise<void> {
  const t0 = Date.now();
  try {
    const detail = await fn();
    console.log(`PASS ${name} (${Date.now() - t0} ms)${detail ? `: ${detail}` : ""}`);
  } catch (error) {
    failures++;
    console.log(`FAIL ${name} (${Date.now() - t0} ms): ${error instanceof Error ? error.message : String(error)}`);
  }
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function message(subject: string): { raw: string; messageId: string } {
  const messageId = `<${randomUUID()}@contoso.test>`;
  const raw = [
    "From: panel@contoso.test",
    `To: ${MAILBOX}`,
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    `Date: ${new Date().toUTCString()}`,
    "",
    "Zone 3 burglary",
    "",
  ].join("\r\n");
  return { raw, messageId };
}

async function main(): Promise<void> {
  if (!dovecotAvailable()) throw new Error("dovecot not installed");
  const base = join(tmpdir(), `dovecot-selfcheck-${process.pid}`);
  const certs = ensureTestCertificates(join(base, "certs"));
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const publicKeyPem = await exportSPKI(publicKey);

  const token = async (over: { aud?: string; exp?: number; kid?: string } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ tid: TENANT, oid: randomUUID(), appid: APP, roles: ["IMAP.AccessAsApp"] })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: over.kid ?? KID })
      .setAudience(over.aud ?? AUDIENCE)
      .setIssuer(`https://sts.windows.net/${TENANT}/`)
      .setSubject(randomUUID())
      .setIssuedAt(now - 60)
      .setNotBefore(now - 60)
      .setExpirationTime(over.exp ?? now + 3600)
      .sign(privateKey);
  };

  let server: DovecotServer | undefined;
  const t0 = Date.now();
  server = await startDovecot({
    runDir: join(base, "run"),
    certs,
    tenantId: TENANT,
    audience: AUDIENCE,
    signingKeys: [{ kid: KID, publicKeyPem }],
    mailboxes: [MAILBOX],
    passwordUsers: [{ user: MAILBOX, password: "secret" }],
    extraFolders: ["Processing", "Review"],
  });
  const srv = server;
  console.log(
    `started in ${Date.now() - t0} ms: imaps ${srv.imapsPort}, imap ${srv.imapPort}, ` +
      `oauth2 setting "${srv.audienceSetting}", log ${srv.logPath}`,
  );

  const oauthClient = (accessToken: string, user = MAILBOX, extra: Record<string, unknown> = {}) =>
    new ImapFlow({
      host: "127.0.0.1",
      port: srv.imapsPort,
      secure: true,
      tls: { ca: certs.ca },
      auth: { user, accessToken },
      logger: false,
      ...extra,
    });
  const refused = async (client: ImapFlow): Promise<string> => {
    client.on("error", () => undefined);
    const started = Date.now();
    try {
      await client.connect();
    } catch (error) {
      const e = error as { authenticationFailed?: boolean; serverResponseCode?: string };
      assert(e.authenticationFailed === true, `expected authenticationFailed, got ${String(error)}`);
      return `${e.serverResponseCode ?? "?"} after ${Date.now() - started} ms`;
    }
    await client.logout();
    throw new Error("login unexpectedly succeeded");
  };

  try {
    await check("XOAUTH2 login with TLS verification", async () => {
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const client = oauthClient(await token());
        const started = Date.now();
        await client.connect();
        times.push(Date.now() - started);
        const folders = (await client.list()).map((f) => f.path);
        await client.logout();
        for (const f of ["INBOX", "Sent Items", "Deleted Items", "Junk Email", "Drafts", "Processing", "Review"]) {
          assert(folders.includes(f), `folder ${f} missing in ${folders.join(", ")}`);
        }
      }
      return `connect+login ${times.join("/")} ms`;
    });
    await check("wrong audience refused", async () =>
      refused(oauthClient(await token({ aud: "https://graph.microsoft.com" }))),
    );
    await check("expired token refused", async () =>
      refused(oauthClient(await token({ exp: Math.floor(Date.now() / 1000) - 3600 }))),
    );
    await check("unknown kid refused", async () => refused(oauthClient(await token({ kid: "nope" }))));
    await check("unknown mailbox refused", async () => refused(oauthClient(await token(), "nobody@contoso.test")));
    await check("password login wrong password refused", async () =>
      refused(
        new ImapFlow({
          host: "127.0.0.1",
          port: srv.imapsPort,
          secure: true,
          tls: { ca: certs.ca },
          auth: { user: MAILBOX, pass: "wrong" },
          logger: false,
        }),
      ),
    );

    let firstUid = 0;
    const first = message("Alarm 1");
    await check("append returns UID", async () => {
      firstUid = await srv.append(MAILBOX, first.raw);
      assert(firstUid > 0, "no uid");
      const second = await srv.append(MAILBOX, message("Alarm 2").raw, { flags: ["\\Seen"] });
      assert(second === firstUid + 1, `uids ${firstUid}, ${second}`);
      const processing = await srv.append(MAILBOX, message("Moved").raw, { folder: "Processing" });
      const list = await srv.list(MAILBOX);
      assert(list.length === 2, `INBOX has ${list.length}`);
      assert(list[0].messageId === first.messageId && list[0].subject === "Alarm 1", JSON.stringify(list[0]));
      assert(list[1].flags.includes("\\Seen"), JSON.stringify(list[1]));
      return `uids ${firstUid}, ${second}; Processing uid ${processing}`;
    });

    await check("password user sees the same mailbox", async () => {
      const client = new ImapFlow({
        host: "127.0.0.1",
        port: srv.imapPort,
        secure: false,
        doSTARTTLS: false,
        auth: { user: MAILBOX, pass: "secret" },
        logger: false,
      });
      await client.connect();
      const lock = await client.getMailboxLock("INBOX", { readOnly: true });
      const seen = await client.fetchAll("1:*", { uid: true, envelope: true });
      lock.release();
      await client.logout();
      const admin = await srv.list(MAILBOX);
      assert(
        JSON.stringify(seen.map((m) => [m.uid, m.envelope?.messageId])) ===
          JSON.stringify(admin.map((m) => [m.uid, m.messageId])),
        "different contents",
      );
      return `${seen.length} messages, same UIDs and Message-IDs`;
    });

    await check("IDLE client gets exists after append", async () => {
      const delays: number[] = [];
      const client = oauthClient(await token(), MAILBOX, { autoIdleDelay: 200 });
      await client.connect();
      await client.mailboxOpen("INBOX");
      for (let i = 0; i < 5; i++) {
        // Let auto-IDLE start and Dovecot's 500 ms notify timer from our own sync run out.
        await new Promise((r) => setTimeout(r, 1000));
        const got = new Promise<number>((resolveExists, reject) => {
          const timer = setTimeout(() => reject(new Error("no exists within 5 s")), 5000);
          client.once("exists", () => {
            clearTimeout(timer);
            resolveExists(Date.now());
          });
        });
        const sent = Date.now();
        await srv.append(MAILBOX, message(`Idle ${i}`).raw);
        delays.push((await got) - sent);
      }
      await client.logout();
      const median = [...delays].sort((a, b) => a - b)[2];
      assert(median >= 400 && median < 1000, `median ${median} ms`);
      return `delays ${delays.join("/")} ms, median ${median} ms`;
    });

    await check("1000 appends", async () => {
      const started = Date.now();
      const uids = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => srv.append(MAILBOX, message(`Bulk ${i}`).raw, { folder: "Review" })),
      );
      assert(new Set(uids).size === 1000, "duplicate uids");
      const ms = Date.now() - started;
      return `${ms} ms (${(ms / 1000).toFixed(2)} ms each)`;
    });

    await check("restart keeps mail, same ports", async () => {
      const before = await srv.list(MAILBOX);
      const ports = [srv.imapsPort, srv.imapPort];
      const started = Date.now();
      await srv.restart();
      const took = Date.now() - started;
      assert(srv.imapsPort === ports[0] && srv.imapPort === ports[1], "ports changed");
      const after = await srv.list(MAILBOX);
      assert(JSON.stringify(before) === JSON.stringify(after), "mail differs after restart");
      const client = oauthClient(await token());
      await client.connect();
      await client.logout();
      return `${after.length} messages kept, restart ${took} ms`;
    });

    await check("resetUidValidity changes uidValidity", async () => {
      const read = async () => {
        const client = oauthClient(await token());
        await client.connect();
        const mailbox = await client.mailboxOpen("INBOX");
        await client.logout();
        return mailbox.uidValidity;
      };
      const before = await read();
      await srv.resetUidValidity(MAILBOX);
      const after = await read();
      assert(before !== after, `unchanged ${before}`);
      const list = await srv.list(MAILBOX);
      assert(list.length > 0, "messages lost");
      return `${before} -> ${after}, ${list.length} messages kept (uids ${list.map((m) => m.uid).join(",")})`;
    });

    await check("kill then start again", async () => {
      await srv.kill();
      assert(await portClosed(srv.imapsPort), "imaps port still open after kill");
      await srv.start();
      const n = (await srv.list(MAILBOX)).length;
      return `${n} messages after kill+start`;
    });

    await check("second instance concurrently", async () => {
      const other = await startDovecot({
        runDir: join(base, "run2"),
        certs,
        tenantId: TENANT,
        audience: "https://127.0.0.1:12345",
        signingKeys: [{ kid: KID, publicKeyPem }],
        mailboxes: ["other@contoso.test"],
      });
      try {
        const a = oauthClient(await token(), MAILBOX);
        const b = new ImapFlow({
          host: "127.0.0.1",
          port: other.imapsPort,
          secure: true,
          tls: { ca: certs.ca },
          auth: { user: "other@contoso.test", accessToken: await token({ aud: "https://127.0.0.1:12345" }) },
          logger: false,
        });
        await Promise.all([a.connect(), b.connect()]);
        await Promise.all([a.logout(), b.logout()]);
        return `ports ${other.imapsPort}/${other.imapPort}`;
      } finally {
        await other.stop();
      }
    });

    await check("stop closes the port", async () => {
      const started = Date.now();
      await srv.stop();
      const took = Date.now() - started;
      assert(await portClosed(srv.imapsPort), "imaps still open");
      assert(await portClosed(srv.imapPort), "imap still open");
      server = undefined;
      return `stopped in ${took} ms`;
    });
  } finally {
    if (server) await server.kill();
  }
  // Keep the run dirs (logs) of a failed run for inspection.
  if (failures === 0) rmSync(base, { recursive: true, force: true });
  else console.log(`run dirs kept in ${base}`);
}

function portClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

main().then(
  () => {
    console.log(failures === 0 ? "ALL PASS" : `${failures} check(s) failed`);
    process.exit(failures === 0 ? 0 : 1);
  },
  (error: unknown) => {
    console.log(`FATAL ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
