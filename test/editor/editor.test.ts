// The editor in headless Chromium: each node's dialog opens without script errors, each node has
// Node-RED-style help, the config node's Test button reports a working app, and the data-map's
// rules take msg properties and environment variables and Try it maps a pasted email.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { emailConnectorDef } from "../helpers/flows";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { startTestTenant, type TestTenant } from "../helpers/tenant";
import { REPO_ROOT, RUN_DIR } from "../standin/paths";
import { chromiumMissing, type EditorPage, openEditor, textOf } from "./browser";

const FIXTURE = join(__dirname, "..", "fixtures", "emails", "plain-4-line.eml");
const PACK = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  "node-red": { nodes: Record<string, string> };
};
const TYPES = Object.keys(PACK["node-red"].nodes);

describe("editor in Chromium", { skip: chromiumMissing }, () => {
  let tenant: TestTenant;
  let red: NodeRedProcess;
  let editor: EditorPage;
  let page: Page;

  before(async () => {
    tenant = await startTestTenant();
    red = await startNodeRed({ userDir: join(RUN_DIR, "nr-editor") });
    const z = "tab";
    await red.deploy([
      { id: z, type: "tab", label: "editor" },
      {
        id: "cfg",
        type: "o365-oauth-config",
        name: "stand-in",
        ...tenant.fields,
        credentials: { ...tenant.credentials },
      },
      { id: "conn", z, x: 150, y: 100, ...emailConnectorDef({ oauth: "cfg" }), wires: [["dm"]] },
      { id: "dm", z, x: 350, y: 100, type: "data-map", map: { rules: [] }, wires: [["ld"], ["send"]] },
      {
        id: "send",
        z,
        x: 550,
        y: 160,
        type: "o365-send-mail",
        oauth: "cfg",
        from: "alarms@contoso.test",
        to: "email.from[0].address",
        toType: "msg",
        wires: [[]],
      },
      {
        id: "ld",
        z,
        x: 550,
        y: 100,
        type: "line-driver",
        host: "127.0.0.1",
        port: 1,
        transport: "tcp",
        prefix: "1",
        wires: [[]],
      },
    ]);
    editor = await openEditor(red.url, { waitForNode: "dm" });
    page = editor.page;
  });
  afterEach(() => editor?.cancelAll());
  after(async () => {
    await editor?.close();
    await red?.stop();
    await tenant?.stop();
  });

  it("opens every node's dialog without script errors", async () => {
    for (const id of ["conn", "dm", "ld", "send"]) {
      await editor.edit(id);
      await editor.cancel();
    }
    await editor.edit("cfg", true);
    await editor.cancel();
    assert.deepEqual(editor.pageErrors, []);
  });

  it("email-connector: the mailbox may come from an environment variable, stored as $-{NAME} for Node-RED", async () => {
    await editor.edit("conn");
    await page.evaluate(() => {
      const input = (window as any).$("#node-input-mailbox");
      input.typedInput("type", "env");
      input.typedInput("value", "ALARM_MAILBOX");
    });
    await page.click("#node-dialog-ok");
    await page.waitForFunction(() => (window as any).RED.editor.getEditStack().length === 0);
    const stored = await page.evaluate(() => {
      const n = (window as any).RED.nodes.node("conn");
      return { mailbox: n.mailbox, valid: n.valid };
    });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Node-RED's own ${NAME} syntax, stored as text
    assert.deepEqual(stored, { mailbox: "${ALARM_MAILBOX}", valid: true });
    await editor.edit("conn");
    assert.equal(await page.evaluate(() => (window as any).$("#node-input-mailbox").typedInput("type")), "env");
    assert.equal(
      await page.evaluate(() => (window as any).$("#node-input-mailbox").typedInput("value")),
      "ALARM_MAILBOX",
    );
    assert.deepEqual(editor.pageErrors, []);
  });

  it("every node has help in Node-RED's style: a tooltip paragraph, Inputs, Outputs, Details, References", async () => {
    const help = await page.evaluate((types) => {
      const out: Record<string, { first: string; headings: string[]; paletteTip: string }> = {};
      for (const type of types) {
        const script = document.querySelector(`script[data-help-name="${type}"]`);
        const doc = new DOMParser().parseFromString(script?.innerHTML ?? "", "text/html");
        out[type] = {
          first: doc.body.firstElementChild?.tagName ?? "",
          headings: Array.from(doc.querySelectorAll("h3")).map((h) => h.textContent ?? ""),
          paletteTip: (window as any).RED.nodes.getType(type)?.category ?? "",
        };
      }
      return out;
    }, TYPES);
    for (const type of TYPES) {
      const h = help[type]!;
      assert.equal(h.first, "P", `${type}: the first paragraph is the palette tooltip`);
      const config = h.paletteTip === "config";
      const expected = config ? ["Details", "References"] : ["Inputs", "Outputs", "Details", "References"];
      for (const heading of expected) assert.ok(h.headings.includes(heading), `${type} help has ${heading}`);
      if (!config) assert.equal(h.paletteTip, "alarm gateway", `${type} is in the pack's own palette category`);
    }
  });

  it("Test in the config node says the app is ready, without the secret being retyped", async () => {
    await editor.edit("cfg", true);
    const consent = await page.inputValue("#o365-consent-url");
    assert.match(consent, /\/adminconsent\?client_id=/);
    // This tenant's Outlook host is not reachable: check tokens and roles only.
    await page.fill("#o365-test-mailbox", "");
    await page.click("#o365-test");
    const verdict = await page.waitForSelector(".o365-verdict", { timeout: 15_000 });
    assert.equal(await verdict.getAttribute("data-ok"), "true", await textOf(page.locator("#o365-test-result")));
    assert.equal(await page.locator('#o365-test-result li[data-state="pass"]').count(), 5);
    assert.equal(await page.locator('#o365-test-result li[data-check="mailbox"]').getAttribute("data-state"), "skip");
    await editor.cancel();
    assert.deepEqual(editor.pageErrors, []);
  });

  it("data-map rules take a msg property and a constant from an environment variable", async () => {
    await editor.edit("dm");
    await page.waitForFunction(() => document.querySelectorAll("#node-input-rules-container > li").length > 0);
    await page.click("#node-input-rules-container-row .red-ui-editableList-addButton, .red-ui-editableList-addButton");
    const row = page.locator("#node-input-rules-container > li").last();
    await row.locator(".dm-field").fill("area");
    await row.locator(".dm-source").selectOption("constant");
    await page.evaluate(() => {
      const input = (window as any)
        .$("#node-input-rules-container > li")
        .last()
        .find(".dm-source-params input[data-param]");
      input.typedInput("type", "env");
      input.typedInput("value", "SITE_AREA");
    });
    await page.click("#node-input-rules-container-row .red-ui-editableList-addButton, .red-ui-editableList-addButton");
    const msgRow = page.locator("#node-input-rules-container > li").last();
    await msgRow.locator(".dm-field").fill("user");
    await msgRow.locator(".dm-source").selectOption("msg");
    assert.equal(
      await page.evaluate(() =>
        (window as any)
          .$("#node-input-rules-container > li")
          .last()
          .find(".dm-source-params input[data-param]")
          .typedInput("type"),
      ),
      "msg",
    );
    await msgRow.locator(".dm-source-params input.red-ui-typedInput-input").fill("payload.user");
    await page.click("#node-dialog-ok");
    await page.waitForFunction(() => (window as any).RED.editor.getEditStack().length === 0);
    const rules = await page.evaluate(() => (window as any).RED.nodes.node("dm").map.rules.slice(-2));
    assert.deepEqual(
      rules.map((r: { field: string; source: unknown }) => [r.field, r.source]),
      [
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Node-RED's own ${NAME} syntax, substituted on deploy
        ["area", { kind: "constant", value: "${SITE_AREA}" }],
        ["user", { kind: "msg", path: "payload.user" }],
      ],
    );
    await editor.edit("dm");
    const restored = await page.evaluate(() => {
      const input = (window as any)
        .$("#node-input-rules-container > li")
        .eq(-2)
        .find(".dm-source-params input[data-param]");
      return [input.typedInput("type"), input.typedInput("value")];
    });
    assert.deepEqual(restored, ["env", "SITE_AREA"]);
    assert.deepEqual(editor.pageErrors, []);
  });

  it("data-map starts from the classic preset and Try it maps a pasted email", async () => {
    await page.evaluate(() => {
      const RED = (window as any).RED;
      const node = RED.nodes.node("dm");
      node.map = { rules: [] };
    });
    await editor.edit("dm");
    await page.waitForSelector("#node-input-dm-try", { state: "visible" });
    await page.waitForFunction(() => document.querySelectorAll("#node-input-rules-container > li").length > 0);
    const rules = await page.locator("#node-input-rules-container > li").count();
    assert.ok(rules >= 4, `${rules} rules from the preset`);
    await page.fill("#node-input-dm-raw", readFileSync(FIXTURE, "utf8"));
    await page.click("#node-input-dm-try");
    const verdict = await page.waitForSelector(".dm-try-verdict", { timeout: 10_000 });
    const result = await textOf(page.locator("#node-input-dm-try-result"));
    assert.equal(await verdict.getAttribute("data-ok"), "true", result);
    assert.match(result, /"account": "123588"/);
    await editor.screenshot("data-map-try-it", "#node-input-dm-try-result");
    await editor.cancel();
    assert.deepEqual(editor.pageErrors, []);
  });

  it("Try it names the device preset a pasted camera email looks like; its tables are edited as JSON", async () => {
    await editor.edit("dm");
    await page.waitForSelector("#node-input-dm-try", { state: "visible" });
    const raw = readFileSync(join(__dirname, "..", "fixtures", "presets", "hikvision", "dvr-motion.eml"), "utf8");
    await page.fill("#node-input-dm-raw", raw);
    await page.click("#node-input-dm-try");
    const load = await page.waitForSelector('.dm-try-load-preset[data-preset="hikvision"]', { timeout: 10_000 });
    assert.match(await textOf(page.locator(".dm-try-preset")), /Hikvision/);
    await load.click();
    const tables = JSON.parse(await page.inputValue("#node-input-dm-tables")) as Record<string, { kind: string }>;
    assert.equal(tables.events?.kind, "events", "the preset's events table is in the dialog");
    assert.equal(tables.accounts?.kind, "values");
    // The fixture comes without our server's Authentication-Results, as from a local test server.
    await page.uncheck("#node-input-dm-spoof-require");
    // Not set up yet: the DVR's address belongs to no account.
    await page.click("#node-input-dm-try");
    await page.waitForSelector('.dm-try-verdict[data-ok="false"]', { timeout: 10_000 });
    assert.match(await textOf(page.locator("#node-input-dm-try-result")), /account is required but empty/);
    // As an integrator would: this DVR reports for account 4471.
    const withAccount = {
      ...tables,
      accounts: { kind: "values", entries: [{ match: ["dvr@cams.example.com"], value: "4471" }] },
    };
    await page.fill("#node-input-dm-tables", JSON.stringify(withAccount, null, 2));
    await page.click("#node-input-dm-try");
    const verdict = await page.waitForSelector(".dm-try-verdict", { timeout: 10_000 });
    const mapped = await textOf(page.locator("#node-input-dm-try-result"));
    assert.equal(await verdict.getAttribute("data-ok"), "true", mapped);
    assert.match(mapped, /"account": "4471"/);
    assert.match(mapped, /"eventCode": "BA"/);
    assert.match(mapped, /"zone": 2/);
    // Text that is not JSON is said, and the tables saved before are kept.
    await page.fill("#node-input-dm-tables", "{ not json");
    await page.click("#node-input-dm-try");
    await page.waitForSelector(".dm-try-error", { timeout: 10_000 });
    assert.match(await textOf(page.locator("#node-input-dm-tables-problem")), /Not valid JSON/);
    assert.match(await textOf(page.locator("#node-input-dm-try-result")), /Not valid JSON/);
    await editor.cancel();
    assert.deepEqual(editor.pageErrors, []);
  });
});
