// Every example flow of the pack, as a user meets it: Import > Examples in headless Chromium, fill in
// the placeholders in the dialogs (the Office 365 app, the mailbox, the receiver), Deploy, and the
// flow runs without an error: the complete gateways turn an email dropped into the mailbox into an
// alarm at the DC-09 receiver or the Sur-Gard automation software.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { CLIENT_SECRET, MAILBOX } from "../helpers/tenant";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { REPO_ROOT, RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { type SurgardAutomation, startAutomationClient } from "../standin/surgard-automation";
import { chooseExample, chromiumMissing, type EditorPage, invalidNodes, openEditor } from "./browser";

const EXAMPLES = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.replace(/\.json$/, ""))
  .sort();

describe("examples: Import > Examples, fill in, deploy, run", { skip: chromiumMissing }, () => {
  let stack: MailStack;
  let receiver: Dc09Receiver;
  let red: NodeRedProcess;
  let editor: EditorPage;
  let page: Page;
  const automations: SurgardAutomation[] = [];

  before(async () => {
    stack = await startMailStack("editor-examples");
    receiver = await startDc09Receiver();
    red = await startNodeRed({ userDir: join(RUN_DIR, "nr-editor-examples") });
    editor = await openEditor(red.url);
    page = editor.page;
  });
  afterEach(async () => {
    await editor.cancelAll();
    for (const a of automations.splice(0)) await a.close();
    // The next example starts from an empty workspace, as after a fresh install.
    await red.deploy([]);
  });
  after(async () => {
    await editor?.close();
    await red?.stop();
    await receiver?.close();
    await stack?.stop();
  });

  async function importExample(title: string): Promise<string[]> {
    await page.goto(red.url);
    await page.waitForFunction(() => (window as any).RED?.nodes?.getType?.("line-driver"));
    await chooseExample(page, title);
    await page.waitForTimeout(300);
    await editor.screenshot(`example-import-${title.slice(0, 2)}`);
    await page.click("#red-ui-clipboard-dialog-ok");
    await page.waitForFunction(() => (window as any).RED.nodes.getWorkspaceOrder().length > 1);
    // Every node of the example valid as imported, before anything is filled in.
    const n = title.slice(0, 2);
    assert.deepEqual(
      (await invalidNodes(editor)).filter((line) => line.includes(` ex${n}-`)),
      [],
      `${title}: every node valid as imported`,
    );
    return page.evaluate(() => {
      const ids: string[] = [];
      (window as any).RED.nodes.eachNode((n: { id: string }) => {
        ids.push(n.id);
      });
      (window as any).RED.nodes.eachConfig((n: { id: string }) => {
        ids.push(n.id);
      });
      return ids;
    });
  }

  /** The Office 365 app, typed into the config node's dialog as its comment asks. */
  async function fillOfficeConfig(id: string): Promise<void> {
    await editor.edit(id, true);
    const f = stack.tenant.fields;
    await page.fill("#node-config-input-tenant", f.tenant ?? "");
    await page.fill("#node-config-input-clientId", f.clientId ?? "");
    await page.fill("#node-config-input-clientSecret", CLIENT_SECRET);
    await page.selectOption("#node-config-input-cloud", "custom");
    await page.fill("#node-config-input-authorityHost", f.authorityHost ?? "");
    await page.fill("#node-config-input-outlookHost", f.outlookHost ?? "");
    await page.fill("#node-config-input-graphHost", f.graphHost ?? "");
    await page.click("#node-config-dialog-ok");
    await page.waitForFunction(() => (window as any).RED.editor.getEditStack().length === 0);
  }

  /** A node's properties set as the user would in its dialog. */
  async function setProperties(id: string, props: Record<string, unknown>): Promise<void> {
    await page.evaluate(
      ({ nodeId, values }) => {
        const RED = (window as any).RED;
        const node = RED.nodes.node(nodeId);
        Object.assign(node, values);
        node.changed = true;
        node.dirty = true;
        RED.editor.validateNode(node);
        RED.nodes.dirty(true);
        RED.view.redraw();
      },
      { nodeId: id, values: props },
    );
  }

  async function deploy(): Promise<number> {
    const logFrom = red.log().length;
    const invalid = await page.evaluate(() => {
      const bad: string[] = [];
      (window as any).RED.nodes.eachNode((n: { id: string; valid: boolean }) => {
        if (!n.valid) bad.push(n.id);
      });
      (window as any).RED.nodes.eachConfig((n: { id: string; valid: boolean }) => {
        if (n.valid === false) bad.push(n.id);
      });
      return bad;
    });
    assert.deepEqual(invalid, [], "no node is flagged as not properly configured");
    await page.click("#red-ui-header-button-deploy");
    await page.waitForSelector(".red-ui-notification:has-text('Successfully deployed')", { timeout: 15_000 });
    return logFrom;
  }

  const status = (id: string) =>
    page.evaluate((nodeId) => (window as any).RED.nodes.node(nodeId)?.status?.text ?? "", id);

  async function waitForStatus(id: string, pattern: RegExp): Promise<void> {
    await page.waitForFunction(
      ({ nodeId, source }) => new RegExp(source).test((window as any).RED.nodes.node(nodeId)?.status?.text ?? ""),
      { nodeId: id, source: pattern.source },
      { timeout: 20_000 },
    );
  }

  function errorsSince(from: number): string[] {
    return red
      .log()
      .slice(from)
      .split("\n")
      .filter((l) => /\[error\]/.test(l));
  }

  async function debugMessages(): Promise<string> {
    return (await page.locator(".red-ui-debug-msg").allTextContents()).join("\n");
  }

  it("ships one example per node and the two complete gateways", () => {
    assert.ok(EXAMPLES.length >= 7, EXAMPLES.join(", "));
    assert.ok(EXAMPLES.some((t) => /Alarm email to DC-09/.test(t)));
    assert.ok(EXAMPLES.some((t) => /Alarm email to Sur-Gard/.test(t)));
  });

  for (const title of EXAMPLES) {
    it(`imports and deploys "${title}" without errors`, async () => {
      const ids = await importExample(title);
      const n = title.slice(0, 2);
      const has = (id: string) => ids.includes(id);
      if (has(`ex${n}-o365`)) await fillOfficeConfig(`ex${n}-o365`);
      if (has(`ex${n}-connector`)) await setProperties(`ex${n}-connector`, { mailbox: MAILBOX });
      const line = `ex${n}-line`;
      let sgPort: number | undefined;
      if (has(line)) {
        const protocol = await page.evaluate((id) => (window as any).RED.nodes.node(id).protocol, line);
        if (protocol === "surgard") {
          sgPort = await freePort();
          await setProperties(line, { sgPort });
        } else await setProperties(line, { host: "127.0.0.1", port: receiver.tcpPort });
      }
      if (has(`ex${n}-send`)) await setProperties(`ex${n}-send`, { from: MAILBOX });
      const logFrom = await deploy();
      await page.evaluate((tab) => (window as any).RED.workspaces.show(tab), `ex${n}-tab`);

      if (has(`ex${n}-connector`)) await waitForStatus(`ex${n}-connector`, /^watching INBOX/);
      if (sgPort) {
        const automation = await startAutomationClient({ lineDigits: 3, port: sgPort });
        automations.push(automation);
        await waitForStatus(line, /^automation: last ACK/);
      }

      // What each example says to do next.
      if (n === "02") {
        await red.api("POST", "/inject/ex02-alarm-email");
        await red.api("POST", "/inject/ex02-report-email");
        await page.waitForFunction(() => document.querySelectorAll(".red-ui-debug-msg").length >= 2);
        const shown = await debugMessages();
        assert.match(shown, /4471/);
        assert.match(shown, /rule|required/);
      }
      if (n === "03") {
        const before = receiver.acked.length;
        await red.api("POST", "/inject/ex03-inject");
        await receiver.waitFor(() => receiver.acked.length > before, 10_000);
        assert.match(receiver.acked.at(-1)?.frame.data ?? "", /#1234\|Nri1\/BA01/);
      }
      if (n === "04" || n === "06") {
        const automation = automations[0]!;
        if (n === "04") await red.api("POST", "/inject/ex04-inject");
        else await stack.dovecot.append(MAILBOX, alarmEmail("Alarm from the example"));
        await automation.waitFor((r) => r.some((p) => p.packet.kind === "cid"), 15_000);
        const cid = automation.received.find((p) => p.packet.kind === "cid")?.packet;
        assert.equal(cid?.kind === "cid" && cid.eventCode, "130");
      }
      if (n === "05") {
        const before = receiver.acked.length;
        await stack.dovecot.append(MAILBOX, alarmEmail("Alarm from the example"));
        await receiver.waitFor(() => receiver.acked.length > before, 15_000);
        assert.match(receiver.acked.at(-1)?.frame.data ?? "", /#123588\|Nri1\/BA01/);
        await waitForStatus(line, /^primary: last ACK/);
      }
      await page.waitForTimeout(300);
      await editor.screenshot(`example-deployed-${n}`);
      assert.deepEqual(errorsSince(logFrom), [], `${title}: no error in Node-RED's log after deploy`);
      for (const id of ids.filter((i) => i.startsWith(`ex${n}-`))) {
        assert.doesNotMatch(await status(id), /^(failing|token:|email-connector not started)/, `${id} status`);
      }
      assert.deepEqual(editor.pageErrors, []);
    });
  }
});
