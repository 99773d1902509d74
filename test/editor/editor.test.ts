// The editor in headless Chromium: each node's dialog opens without script errors, the config
// node's Test button reports a working app, and the data-map's Try it maps a pasted email.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { emailConnectorDef } from "../helpers/flows";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { startTestTenant, type TestTenant } from "../helpers/tenant";
import { RUN_DIR } from "../standin/paths";

const CHROMIUM = "/usr/bin/chromium";
const FIXTURE = join(__dirname, "..", "fixtures", "emails", "plain-4-line.eml");

describe("editor in Chromium", { skip: !existsSync(CHROMIUM) && "Debian chromium is not installed" }, () => {
  let tenant: TestTenant;
  let red: NodeRedProcess;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

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
      { id: "dm", z, x: 350, y: 100, type: "data-map", map: { rules: [] }, wires: [["ld"], []] },
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
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(red.url);
    await page.waitForFunction(() => (window as any).RED?.nodes?.node("dm"), undefined, { timeout: 30_000 });
  });
  after(async () => {
    await browser?.close();
    await red?.stop();
    await tenant?.stop();
  });

  async function closeDialog(): Promise<void> {
    await page.click("#node-dialog-cancel, #node-config-dialog-cancel");
    await page.waitForTimeout(300);
  }

  it("opens every node's dialog without script errors", async () => {
    for (const id of ["conn", "dm", "ld"]) {
      await page.evaluate((nodeId) => (window as any).RED.editor.edit((window as any).RED.nodes.node(nodeId)), id);
      await page.waitForSelector(".red-ui-tray", { state: "visible" });
      await page.waitForTimeout(500);
      await closeDialog();
    }
    assert.deepEqual(pageErrors, []);
  });

  it("Test in the config node says the app is ready, without the secret being retyped", async () => {
    await page.evaluate(() => (window as any).RED.editor.editConfig("", "o365-oauth-config", "cfg"));
    await page.waitForSelector("#o365-test", { state: "visible" });
    const consent = await page.inputValue("#o365-consent-url");
    assert.match(consent, /\/adminconsent\?client_id=/);
    await page.click("#o365-test");
    const verdict = await page.waitForSelector(".o365-verdict", { timeout: 15_000 });
    assert.equal(await verdict.getAttribute("data-ok"), "true", await page.innerText("#o365-test-result"));
    assert.equal(await page.locator('#o365-test-result li[data-state="pass"]').count(), 5);
    await closeDialog();
    assert.deepEqual(pageErrors, []);
  });

  it("data-map starts from the classic preset and Try it maps a pasted email", async () => {
    await page.evaluate(() => (window as any).RED.editor.edit((window as any).RED.nodes.node("dm")));
    await page.waitForSelector("#node-input-dm-try", { state: "visible" });
    await page.waitForFunction(() => document.querySelectorAll("#node-input-rules-container > li").length > 0);
    const rules = await page.locator("#node-input-rules-container > li").count();
    assert.ok(rules >= 4, `${rules} rules from the preset`);
    await page.fill("#node-input-dm-raw", readFileSync(FIXTURE, "utf8"));
    await page.click("#node-input-dm-try");
    const verdict = await page.waitForSelector(".dm-try-verdict", { timeout: 10_000 });
    assert.equal(await verdict.getAttribute("data-ok"), "true", await page.innerText("#node-input-dm-try-result"));
    assert.match(await page.innerText("#node-input-dm-try-result"), /"account": "123588"/);
    await closeDialog();
    assert.deepEqual(pageErrors, []);
  });
});
