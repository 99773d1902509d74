// email-connector when things go wrong: cut connections, expiring and bad tokens, untrusted
// certificates; and emails that are not plain text.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, loadConnector, useUserDir } from "../helpers/connector-flow";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { MAILBOX } from "../helpers/tenant";
import { ensureTestCertificates } from "../standin/certs";
import { RUN_DIR } from "../standin/paths";

before(() => new Promise<void>((r) => helper.startServer(() => r())));
after(() => new Promise<void>((r) => helper.stopServer(() => r())));
afterEach(() => helper.unload());

describe("email-connector through a proxy that cuts connections", () => {
  let stack: MailStack;
  before(async () => {
    stack = await startMailStack("proxy", { viaProxy: true, extraFolders: ["cut10", "cut1"] });
  });
  after(() => stack.stop());

  for (const [how, maxInMemoryMB] of [
    ["fetched whole", 10],
    ["streamed", 1],
  ] as const) {
    it(`reconnects after the connection is cut mid-FETCH (${how}) and delivers the email once`, async () => {
      useUserDir(`proxy-cut-${maxInMemoryMB}`);
      const c = await loadConnector(stack, { maxInMemoryMB, folder: `cut${maxInMemoryMB}` });
      await c.waitForStatus(/watching/);
      const attachment = Buffer.alloc(3 * 1024 * 1024, 7)
        .toString("base64")
        .replace(/.{76}/g, "$&\r\n");
      const raw =
        `From: cam@site.test\r\nTo: ${MAILBOX}\r\nSubject: big clip\r\nMessage-ID: <clip-${how}@site.test>\r\n` +
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
        `Motion zone 2\r\n--b\r\nContent-Type: video/mp4; name=clip.mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n--b--\r\n`;
      const cut = stack.proxy?.cutAfter(1024 * 1024); // a megabyte into the FETCH of the 4 MB message
      await stack.dovecot.append(MAILBOX, raw, { folder: `cut${maxInMemoryMB}` });
      await cut;
      const cutAt = Date.now();
      await c.waitForStatus(/reconnecting/, 5000);
      const [sent] = await c.waitForSent(1, 10_000);
      assert.ok((sent?.at ?? 0) - cutAt < 5000, "delivered within 5 s of the cut");
      assert.equal(sent?.msg.topic, "big clip");
      assert.equal(sent?.msg.payload.trim(), "Motion zone 2");
      assert.equal(sent?.msg.email.attachments[0].size, 3 * 1024 * 1024);
      await sleep(500);
      assert.equal(c.sent.length, 1, "once");
    });
  }
});

describe("email-connector and tokens", () => {
  it("keeps watching when the token expires during a long IDLE, and logs in afresh after a drop", async () => {
    const stack = await startMailStack("short-token", { viaProxy: true, lifetimeSeconds: 3 });
    try {
      useUserDir("short-token");
      const c = await loadConnector(stack, {});
      await c.waitForStatus(/watching/);
      const requestsAtLogin = stack.tenant.entra.tokenRequestCount;
      await sleep(4000); // the token used to log in has expired now
      await stack.dovecot.append(MAILBOX, alarmEmail("after expiry"));
      await c.waitForSent(1, 3000);
      stack.proxy?.cutAll();
      await stack.dovecot.append(MAILBOX, alarmEmail("after the drop"));
      await c.waitForSent(2, 10_000);
      assert.ok(stack.tenant.entra.tokenRequestCount > requestsAtLogin, "a fresh token for the new login");
    } finally {
      await helper.unload();
      await stack.stop();
    }
  });

  for (const kind of ["expired-token", "foreign-key"] as const) {
    it(`shows a refused ${kind === "expired-token" ? "expired" : "forged"} token clearly, renewing it once`, async () => {
      const stack = await startMailStack(`bad-${kind}`);
      try {
        stack.tenant.entra.failWith({ kind });
        useUserDir(`bad-${kind}`);
        const c = await loadConnector(stack, {});
        const text = await c.waitForStatus(/IMAP login refused/, 8000);
        assert.match(text, /IMAP login refused for alarms@contoso\.test \(AUTHENTICATIONFAILED\)/);
        assert.equal(c.statuses.find((s) => /IMAP login refused/.test(s.text ?? ""))?.fill, "red");
        assert.equal(stack.tenant.entra.tokenRequestCount, 2, "one token, then one forced renewal");
        const errors = callsOf(c.node, "error").map(String).join("\n");
        assert.match(errors, /New-ServicePrincipal/);
        // The tenant heals (clock fixed): the next attempt logs in.
        stack.tenant.entra.failWith(undefined);
        // (MSAL still holds the bad token: one forced renewal per 10 s at most, so allow a few retries)
        await c.waitForStatus(/watching/, 30_000);
      } finally {
        await helper.unload();
        await stack.stop();
      }
    });
  }

  it("shows missing admin consent for IMAP.AccessAsApp without trying to log in", async () => {
    const stack = await startMailStack("no-consent");
    try {
      stack.tenant.app.roles = {};
      useUserDir("no-consent");
      const c = await loadConnector(stack, {});
      const text = await c.waitForStatus(/admin consent missing for IMAP\.AccessAsApp/, 5000);
      assert.ok(text);
      assert.equal(c.statuses.find((s) => s.text === text)?.fill, "red");
    } finally {
      await helper.unload();
      await stack.stop();
    }
  });
});

describe("email-connector and TLS", () => {
  it("verifies the server certificate, and trusts an extra CA only when named", async () => {
    const foreign = ensureTestCertificates(join(RUN_DIR, "proxy-ca-certs"));
    const stack = await startMailStack("foreign-ca", { certs: foreign });
    try {
      useUserDir("foreign-ca");
      const refused = await loadConnector(stack, {});
      const text = await refused.waitForStatus(/TLS certificate .* not trusted/, 5000);
      assert.match(text, /Extra CA/);
      await helper.unload();
      const trusting = await loadConnector(stack, { caFile: foreign.caPath });
      await trusting.waitForStatus(/watching/, 5000);
      await stack.dovecot.append(MAILBOX, alarmEmail("through the proxy CA"));
      await trusting.waitForSent(1);
    } finally {
      await helper.unload();
      await stack.stop();
    }
  });
});

describe("email-connector and what emails contain", () => {
  let stack: MailStack;
  before(async () => {
    stack = await startMailStack("content");
  });
  after(() => stack.stop());

  it("turns HTML-only, attachments and non-UTF-8 charsets into the same message shape", async () => {
    useUserDir("content");
    const c = await loadConnector(stack, { maxInMemoryMB: 1 });
    await c.waitForStatus(/watching/);
    const html =
      `From: logger@freezer.test\r\nTo: ${MAILBOX}\r\nSubject: Temperature\r\nMessage-ID: <t1@freezer.test>\r\n` +
      "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
      "<html><body><p><b>High Temperature Alarm</b> at Pantry Freezer 3, site 4471</p></body></html>\r\n";
    const latin1 =
      `From: =?ISO-8859-1?Q?K=FChlhaus?= <kuehl@site.test>\r\nTo: ${MAILBOX}\r\n` +
      "Subject: =?ISO-8859-1?Q?T=FCr_offen?=\r\nMessage-ID: <l1@site.test>\r\nMIME-Version: 1.0\r\n" +
      "Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nT=FCr 3 ge=F6ffnet\r\n";
    const big = Buffer.alloc(2 * 1024 * 1024, 1);
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
    const withFiles =
      `From: cam@site.test\r\nTo: ${MAILBOX}\r\nSubject: Picture\r\nMessage-ID: <p1@site.test>\r\nMIME-Version: 1.0\r\n` +
      "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nMotion\r\n" +
      `--zz\r\nContent-Type: image/jpeg; name=snap.jpg\r\nContent-Disposition: attachment; filename=snap.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n${jpeg.toString("base64")}\r\n` +
      `--zz\r\nContent-Type: video/mp4; name=clip.mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n${big.toString("base64").replace(/.{76}/g, "$&\r\n")}\r\n--zz--\r\n`;
    for (const raw of [html, latin1, withFiles]) await stack.dovecot.append(MAILBOX, raw);
    const [h, l, p] = (await c.waitForSent(3)).map((s) => s.msg);
    assert.match(
      h.payload,
      /HIGH TEMPERATURE ALARM at Pantry Freezer 3, site 4471|High Temperature Alarm at Pantry Freezer 3, site 4471/,
    );
    assert.match(h.email.html, /<b>High Temperature Alarm<\/b>/);
    assert.equal(l.topic, "Tür offen");
    assert.equal(l.payload.trim(), "Tür 3 geöffnet");
    assert.equal(l.email.from[0].name, "Kühlhaus");
    const [snap, clip] = p.email.attachments;
    assert.equal(snap.filename, "snap.jpg");
    assert.equal(snap.contentType, "image/jpeg");
    assert.deepEqual(Buffer.from(snap.content), jpeg);
    assert.equal(clip.size, big.length);
    assert.equal(clip.content, null, "large attachment not held in memory");
    assert.ok(clip.path, "but kept in a file");
    const { readFileSync, existsSync } = await import("node:fs");
    assert.deepEqual(readFileSync(clip.path), big);
    await c.settle({ emailRef: p.emailRef });
    assert.equal(existsSync(clip.path), false, "spooled file removed after settlement");
  });
});
