// The o365-oauth-config dialog in headless Chromium against the stand-ins (Entra ID, Dovecot as
// Exchange IMAP, Graph): fields validated as typed, credential kind and cloud switches, the
// consent link, and the Test checklist for a good setup and each thing a real tenant gets wrong.
import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { emailConnectorDef } from "../helpers/flows";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT_DOMAIN, TENANT_ID } from "../helpers/tenant";
import { ensureTestCertificates } from "../standin/certs";
import { type DovecotServer, startDovecot } from "../standin/dovecot";
import { type AppRegistration, EntraStandin } from "../standin/entra";
import { GraphStandin } from "../standin/graph";
import { CERT_DIR, RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { chromiumMissing, type EditorPage, openEditor, textOf } from "./browser";

const SERVICE_PRINCIPAL = "5a7c9e1b-3d4f-4a6b-8c0d-1e2f3a4b5c6d";
const DENIED = "ceo@contoso.test";
const STRANGER = "nobody@contoso.test";
const NOT_PERMITTED = "frontdesk@contoso.test";

interface Stack {
  entra: EntraStandin;
  dovecot: DovecotServer;
  graph: GraphStandin;
  app: AppRegistration;
  outlookHost: string;
  graphHost: string;
  stop(): Promise<void>;
}

/** Office 365 in miniature, with the Graph host of the custom cloud being the Graph stand-in. */
async function startStack(): Promise<Stack> {
  const certs = ensureTestCertificates(CERT_DIR);
  const imapsPort = await freePort();
  const graphPort = await freePort();
  const outlookHost = `127.0.0.1:${imapsPort}`;
  const graphHost = `127.0.0.1:${graphPort}`;
  const app: AppRegistration = {
    clientId: CLIENT_ID,
    secret: CLIENT_SECRET,
    servicePrincipalId: SERVICE_PRINCIPAL,
    roles: {
      [`https://${outlookHost}`]: ["IMAP.AccessAsApp"],
      [`https://${graphHost}`]: ["Mail.ReadWrite", "Mail.Send"],
    },
  };
  const entra = new EntraStandin({
    certs,
    resources: [`https://${outlookHost}`, `https://${graphHost}`],
    tenants: [{ id: TENANT_ID, domains: [TENANT_DOMAIN], apps: [app] }],
  });
  await entra.start();
  const signingKey = { kid: entra.kid, publicKeyPem: entra.publicKeyPem };
  // Exchange lets the app into MAILBOX only: any other mailbox fails like a missing Add-MailboxPermission.
  const dovecot = await startDovecot({
    runDir: join(RUN_DIR, "dovecot-editor-config"),
    certs,
    tenantId: TENANT_ID,
    audience: `https://${outlookHost}`,
    signingKeys: [signingKey],
    mailboxes: [MAILBOX],
    imapsPort,
  });
  const graph = new GraphStandin({
    certs,
    signingKey,
    tenantId: TENANT_ID,
    audienceHost: graphHost,
    port: graphPort,
    mailboxes: [MAILBOX, DENIED],
    deniedMailboxes: [DENIED],
    authorityHost: entra.host,
  });
  await graph.start();
  return {
    entra,
    dovecot,
    graph,
    app,
    outlookHost,
    graphHost,
    async stop() {
      await graph.stop();
      await dovecot.stop();
      await entra.stop();
    },
  };
}

describe("o365-oauth-config dialog in Chromium", { skip: chromiumMissing }, () => {
  let stack: Stack;
  let red: NodeRedProcess;
  let editor: EditorPage;
  let page: Page;
  const testResponses: string[] = [];
  const fields = () => ({
    tenant: TENANT_ID,
    clientId: CLIENT_ID,
    credentialKind: "secret",
    cloud: "custom",
    authorityHost: stack.entra.host,
    outlookHost: stack.outlookHost,
    graphHost: stack.graphHost,
  });

  before(async () => {
    stack = await startStack();
    red = await startNodeRed({ userDir: join(RUN_DIR, "nr-editor-config") });
    await red.deploy([
      { id: "tab", type: "tab", label: "config" },
      {
        id: "cfg",
        type: "o365-oauth-config",
        name: "Contoso",
        ...fields(),
        credentials: { clientSecret: CLIENT_SECRET },
      },
      { id: "conn", z: "tab", x: 200, y: 100, ...emailConnectorDef({ oauth: "cfg" }), wires: [[]] },
    ]);
    editor = await openEditor(red.url, { waitForNode: "cfg" });
    page = editor.page;
    page.on("response", async (res) => {
      if (res.url().endsWith("/o365-oauth-config/test")) testResponses.push(await res.text().catch(() => ""));
    });
  });
  afterEach(() => editor?.cancelAll());
  after(async () => {
    await editor?.close();
    await red?.stop();
    await stack?.stop();
  });

  async function runTest(opts: { mailbox?: string; via?: "imap" | "graph" | "both" } = {}) {
    if (opts.mailbox !== undefined) await page.fill("#o365-test-mailbox", opts.mailbox);
    if (opts.via) await page.selectOption("#o365-test-via", opts.via);
    await page.evaluate(() => document.querySelector("#o365-test-result")?.replaceChildren());
    await page.click("#o365-test");
    const verdict = await page.waitForSelector("#o365-test-result .o365-verdict", { timeout: 30_000 });
    const states = await page.$$eval("#o365-test-result li[data-check]", (lis) =>
      Object.fromEntries(lis.map((li) => [li.getAttribute("data-check"), li.getAttribute("data-state")])),
    );
    return {
      ok: (await verdict.getAttribute("data-ok")) === "true",
      states,
      text: await textOf(page.locator("#o365-test-result")),
    };
  }

  const check = (id: string) => page.locator(`#o365-test-result li[data-check="${id}"]`);

  it("checks tenant, client id, secret, thumbprint and hosts as they are typed", async () => {
    await editor.edit("cfg", true);
    const hint = (name: string) => page.locator(`#o365-hint-${name}`);

    await editor.type("#node-config-input-clientId", "0f3e9d4c-8b7a");
    assert.ok(await hint("clientId").isVisible(), "hint shown while the client id is incomplete");
    assert.match(await textOf(hint("clientId")), /Not a GUID/);
    assert.match((await page.getAttribute("#node-config-input-clientId", "class")) ?? "", /input-error/);
    assert.equal(await page.inputValue("#o365-consent-url"), "", "no consent link for an invalid client id");
    await editor.type("#node-config-input-clientId", CLIENT_ID);
    assert.ok(!(await hint("clientId").isVisible()));
    assert.doesNotMatch((await page.getAttribute("#node-config-input-clientId", "class")) ?? "", /input-error/);

    await editor.type("#node-config-input-tenant", "common");
    assert.match(await textOf(hint("tenant")), /cannot be used for app-only access/);
    await editor.type("#node-config-input-tenant", "contoso");
    assert.match(await textOf(hint("tenant")), /Neither a GUID nor a domain/);
    await editor.type("#node-config-input-tenant", "contoso.onmicrosoft.com");
    assert.ok(!(await hint("tenant").isVisible()));

    await editor.type("#node-config-input-clientSecret", "7d8e9f00-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
    assert.match(await textOf(hint("clientSecret")), /Secret ID/);

    // The consent link follows the fields and the cloud, ready to copy.
    await page.selectOption("#node-config-input-cloud", "usgov");
    assert.equal(
      await page.inputValue("#o365-consent-url"),
      `https://login.microsoftonline.us/contoso.onmicrosoft.com/adminconsent?client_id=${CLIENT_ID}&state=alarm-gateway`,
    );
    await editor.type("#node-config-input-consentRedirectUri", "https://gateway.contoso.com/consented");
    assert.match(
      await page.inputValue("#o365-consent-url"),
      /&redirect_uri=https%3A%2F%2Fgateway\.contoso\.com%2Fconsented$/,
    );
    assert.equal(await page.isDisabled("#o365-consent-copy"), false);

    await page.selectOption("#node-config-input-cloud", "usdod");
    assert.equal(
      await textOf(page.locator("#o365-cloud-hosts")),
      "login.microsoftonline.us · outlook-dod.office365.us · dod-graph.microsoft.us",
    );
    assert.match(await textOf(page.locator("#o365-cloud-gcc")), /GCC tenants \(not GCC High\) .* choose Global/);
    assert.deepEqual(await page.$$eval("#node-config-input-cloud option", (os) => os.map((o) => o.textContent)), [
      "Global (login.microsoftonline.com)",
      "US Government GCC High",
      "US Government DoD",
      "China (21Vianet)",
      "Custom hosts",
    ]);

    await page.selectOption("#node-config-input-cloud", "custom");
    assert.ok(await page.isVisible("#node-config-input-graphHost"), "custom hosts shown");
    await editor.type("#node-config-input-graphHost", "https://graph.microsoft.com/v1.0");
    assert.match(await textOf(hint("graphHost")), /without https:\/\//);
    await page.selectOption("#node-config-input-cloud", "global");
    assert.ok(!(await page.isVisible("#node-config-input-graphHost")), "custom hosts hidden for a known cloud");
    assert.match(await textOf(page.locator("#o365-cloud-hosts")), /outlook\.office365\.com/);

    await page.selectOption("#node-config-input-credentialKind", "certificate");
    assert.ok(await page.isVisible("#node-config-input-privateKey"));
    assert.ok(!(await page.isVisible("#node-config-input-clientSecret")));
    await editor.type("#node-config-input-thumbprint", "AB:CD");
    assert.match(await textOf(hint("thumbprint")), /40 \(SHA-1\) or 64 \(SHA-256\)/);
    // A PEM pasted without its line breaks is put back into lines.
    await page.fill(
      "#node-config-input-certificate",
      `-----BEGIN CERTIFICATE-----MIIB${"A".repeat(100)}-----END CERTIFICATE-----`,
    );
    await page.dispatchEvent("#node-config-input-certificate", "change");
    assert.match(
      await page.inputValue("#node-config-input-certificate"),
      /^-----BEGIN CERTIFICATE-----\nMIIBA{60}\nA{40}\n-----END/,
    );
    await editor.screenshot("config-validation");
    await editor.cancel();
    assert.deepEqual(editor.pageErrors, []);
  });

  it("Test after deploy: stored secret, mailbox from the connector, IMAP and Graph logins all pass", async () => {
    await editor.edit("cfg", true);
    assert.equal(await page.inputValue("#o365-test-mailbox"), MAILBOX, "the connector's mailbox is proposed");
    assert.equal(await page.inputValue("#node-config-input-clientSecret"), "__PWRD__", "secret not in the editor");
    const result = await runTest({ via: "both" });
    assert.equal(result.ok, true, result.text);
    assert.deepEqual(result.states, {
      "token-outlook": "pass",
      "token-graph": "pass",
      "role-imap": "pass",
      "role-graphRead": "pass",
      "role-graphSend": "pass",
      "mailbox-imap": "pass",
      "mailbox-graph": "pass",
    });
    assert.match(await textOf(check("mailbox-imap")), /opened INBOX read-only/);
    assert.match(await textOf(check("mailbox-graph")), /read the Inbox/);
    await editor.screenshot("config-test-ready", "#o365-test-result .o365-verdict");
    await editor.cancel();
  });

  it("Test before deploy: a new config node added from the connector's dialog, secret typed", async () => {
    await editor.edit("conn");
    await page.click("#node-input-btn-oauth-add");
    await page.waitForSelector("#node-config-input-tenant", { state: "visible" });
    await page.waitForTimeout(400);
    const f = fields();
    await page.fill("#node-config-input-tenant", TENANT_DOMAIN);
    await page.fill("#node-config-input-clientId", f.clientId);
    await page.fill("#node-config-input-clientSecret", CLIENT_SECRET);
    await page.selectOption("#node-config-input-cloud", "custom");
    await page.fill("#node-config-input-authorityHost", f.authorityHost);
    await page.fill("#node-config-input-outlookHost", f.outlookHost);
    await page.fill("#node-config-input-graphHost", f.graphHost);
    assert.equal(await page.inputValue("#o365-test-mailbox"), MAILBOX, "taken from the connector's dialog");
    assert.equal(await page.inputValue("#o365-test-via"), "imap");
    const result = await runTest();
    assert.equal(result.ok, true, result.text);
    assert.equal(result.states["mailbox-imap"], "pass");
    assert.equal(result.states["mailbox-graph"], undefined, "Graph login not tried for an IMAP connector");
    await editor.screenshot("config-test-before-deploy", "#o365-test-result .o365-verdict");
    await editor.cancel();
    await editor.cancel();
  });

  it("Test with a wrong secret: AADSTS7000215 and which value to paste", async () => {
    await editor.edit("cfg", true);
    await page.fill("#node-config-input-clientSecret", "Wq8~this.is-not-the-secret");
    const result = await runTest({ mailbox: MAILBOX, via: "imap" });
    assert.equal(result.ok, false);
    assert.equal(result.states["token-outlook"], "fail");
    assert.match(await textOf(check("token-outlook")), /invalid client secret \(AADSTS7000215\)/);
    assert.match(await textOf(check("token-outlook").locator(".o365-fix")), /Value is needed, not its Secret ID/);
    assert.equal(result.states["mailbox-imap"], "skip", "no login without a token");
    await editor.screenshot("config-test-bad-secret", "#o365-test-result .o365-verdict");
    await editor.cancel();
  });

  it("Test without admin consent for IMAP.AccessAsApp: the role line fails with the consent link to copy", async () => {
    const roles = stack.app.roles[`https://${stack.outlookHost}`];
    stack.app.roles[`https://${stack.outlookHost}`] = [];
    try {
      await editor.edit("cfg", true);
      const result = await runTest({ mailbox: MAILBOX, via: "imap" });
      assert.equal(result.ok, false);
      assert.equal(result.states["token-outlook"], "pass");
      assert.equal(result.states["role-imap"], "fail");
      assert.match(await textOf(check("role-imap")), /IMAP\.AccessAsApp: not granted \(admin consent missing\)/);
      assert.equal(
        await textOf(check("role-imap").locator(".o365-consent-in-result")),
        `https://${stack.entra.host}/${TENANT_ID}/adminconsent?client_id=${CLIENT_ID}&state=alarm-gateway`,
      );
      assert.equal(await check("role-imap").locator(".o365-copy").count(), 1);
      assert.equal(result.states["mailbox-imap"], "skip");
      await editor.screenshot("config-test-missing-role", "#o365-test-result .o365-verdict");
      await editor.cancel();
    } finally {
      stack.app.roles[`https://${stack.outlookHost}`] = roles ?? [];
    }
  });

  it("Test of a mailbox Exchange does not let the app into: the two PowerShell commands, filled in", async () => {
    await editor.edit("cfg", true);
    const result = await runTest({ mailbox: NOT_PERMITTED, via: "imap" });
    assert.equal(result.ok, false);
    assert.equal(result.states["role-imap"], "pass");
    assert.equal(result.states["mailbox-imap"], "fail");
    const line = check("mailbox-imap");
    assert.match(await textOf(line), /Exchange service principal \/ mailbox permission/);
    assert.deepEqual(await line.locator(".o365-command").allInnerTexts(), [
      `New-ServicePrincipal -AppId ${CLIENT_ID} -ObjectId ${SERVICE_PRINCIPAL}`,
      `Add-MailboxPermission -Identity ${NOT_PERMITTED} -User ${SERVICE_PRINCIPAL} -AccessRights FullAccess`,
    ]);
    assert.match(await textOf(line.locator(".o365-fix")), /Enterprise application, not of the App registration/);
    await editor.screenshot("config-test-no-mailbox-permission", "#o365-test-result .o365-verdict");
    await editor.cancel();
  });

  it("Test over Graph: access policy (403 ErrorAccessDenied) and unknown mailbox (404)", async () => {
    await editor.edit("cfg", true);
    let result = await runTest({ mailbox: DENIED, via: "graph" });
    assert.equal(result.ok, false);
    assert.equal(result.states["mailbox-graph"], "fail");
    assert.equal(result.states["mailbox-imap"], undefined);
    assert.match(await textOf(check("mailbox-graph")), /Exchange limits which mailboxes it may read/);
    assert.deepEqual(await check("mailbox-graph").locator(".o365-command").allInnerTexts(), [
      `Test-ApplicationAccessPolicy -Identity ${DENIED} -AppId ${CLIENT_ID}`,
      `Test-ServicePrincipalAuthorization -Identity ${CLIENT_ID} -Resource ${DENIED}`,
    ]);
    assert.match(
      await textOf(check("mailbox-graph").locator(".o365-fix")),
      /Application Access Policy .* RBAC for Applications/,
    );
    await editor.screenshot("config-test-graph-access-policy", "#o365-test-result .o365-verdict");

    result = await runTest({ mailbox: STRANGER, via: "graph" });
    assert.equal(result.states["mailbox-graph"], "fail");
    assert.match(
      await textOf(check("mailbox-graph")),
      /Graph knows no mailbox nobody@contoso\.test \(404 ErrorInvalidUser/,
    );

    // Graph's own refusal of the app, whatever the mailbox: the same line, the same fix.
    stack.graph.failWith({ kind: "access-denied", count: 1 });
    result = await runTest({ mailbox: MAILBOX, via: "graph" });
    assert.equal(result.states["mailbox-graph"], "fail");
    assert.match(await textOf(check("mailbox-graph")), /Graph denied access to alarms@contoso\.test/);
    await editor.cancel();
  });

  it("Test with another authority host: the stored secret is not sent, the dialog says to type it", async () => {
    let connections = 0;
    const collector = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
    try {
      await editor.edit("cfg", true);
      const before = stack.entra.tokenRequestCount;
      await page.fill("#node-config-input-authorityHost", `127.0.0.1:${(collector.address() as AddressInfo).port}`);
      const result = await runTest({ mailbox: MAILBOX, via: "imap" });
      assert.equal(result.ok, false);
      assert.deepEqual(result.states, { "stored-credential": "fail" });
      assert.match(
        await textOf(check("stored-credential")),
        /not sent: these settings differ from the deployed node's/,
      );
      assert.match(await textOf(check("stored-credential").locator(".o365-fix")), /Enter it again/);
      assert.equal(connections, 0, "nothing reached the host the dialog named");
      assert.equal(stack.entra.tokenRequestCount, before);
      await editor.screenshot("config-test-stored-secret-withheld", "#o365-test-result .o365-verdict");
      await editor.cancel();
    } finally {
      await new Promise<void>((r) => collector.close(() => r()));
    }
  });

  it("Test when no administrator consented (AADSTS65001): the token line offers the consent link", async () => {
    stack.entra.failWith({ kind: "consent-required" });
    try {
      await editor.edit("cfg", true);
      const result = await runTest({ mailbox: MAILBOX, via: "imap" });
      assert.equal(result.states["token-outlook"], "fail");
      assert.match(await textOf(check("token-outlook")), /no admin consent in this tenant \(AADSTS65001\)/);
      assert.equal(
        await textOf(check("token-outlook").locator(".o365-consent-in-result")),
        `https://${stack.entra.host}/${TENANT_ID}/adminconsent?client_id=${CLIENT_ID}&state=alarm-gateway`,
      );
      await editor.cancel();
    } finally {
      stack.entra.failWith(undefined);
    }
  });

  it("never sends a secret back to the browser, and adds no script errors", () => {
    assert.ok(testResponses.length >= 7, `${testResponses.length} Test responses`);
    for (const body of testResponses) assert.ok(!body.includes(CLIENT_SECRET));
    assert.ok(!red.log().includes(CLIENT_SECRET));
    assert.deepEqual(editor.pageErrors, []);
  });
});
