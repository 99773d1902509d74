// What a user sees first: the demo flow `npm start` deploys, and each example as Import > Examples brings
// it in, before anything is filled in. Node-RED's editor validates every node (its own and ours) and
// marks a node that fails with a red triangle ("not properly configured") and refuses nothing, but the
// user is left guessing; none of ours may start that way.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { demoFlow } from "../../scripts/demo-flow";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { MAILBOX, startTestTenant, type TestTenant } from "../helpers/tenant";
import { REPO_ROOT, RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { chooseExample, chromiumMissing, type EditorPage, openEditor } from "./browser";

const EXAMPLES = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.replace(/\.json$/, ""))
  .sort();

/** Every node and config node the editor holds that it judged invalid, with the properties it names. */
function invalidNodes(editor: EditorPage): Promise<string[]> {
  return editor.page.evaluate(() => {
    const RED = (window as any).RED;
    // Inline callbacks: a named function here would be compiled with a helper the page does not have.
    const all: { id: string; type: string; valid?: boolean; validationErrors?: string[] }[] = [];
    RED.nodes.eachNode((n: (typeof all)[number]) => {
      all.push(n);
    });
    RED.nodes.eachConfig((n: (typeof all)[number]) => {
      all.push(n);
    });
    return all
      .filter((n) => n.valid === false)
      .map((n) => `${n.type} ${n.id}: ${(n.validationErrors ?? []).join(", ")}`);
  });
}

describe("editor validation of the demo flow and every example, as first opened", { skip: chromiumMissing }, () => {
  let tenant: TestTenant;
  let red: NodeRedProcess;
  let editor: EditorPage;
  before(async () => {
    tenant = await startTestTenant();
    red = await startNodeRed({ userDir: join(RUN_DIR, "nr-editor-validation") });
  });
  after(async () => {
    await editor?.close();
    await red?.stop();
    await tenant?.stop();
  });

  for (const transport of ["graph", "imap"] as const) {
    it(`the demo flow (${transport} mailbox): every node valid`, async () => {
      await red.deploy(
        demoFlow({
          tenant,
          mailbox: MAILBOX,
          receiverPort: await freePort(),
          sendAlarmUrl: "http://127.0.0.1:18080/send-alarm",
          transport,
        }),
      );
      editor ??= await openEditor(red.url);
      await editor.page.goto(red.url);
      await editor.page.waitForFunction(() => (window as any).RED?.nodes?.node?.("demo-inject"), undefined, {
        timeout: 30_000,
      });
      const count = await editor.page.evaluate(() => {
        let n = 0;
        (window as any).RED.nodes.eachNode(() => {
          n++;
        });
        return n;
      });
      assert.ok(count >= 8, `the demo flow is in the editor (${count} nodes)`);
      assert.deepEqual(await invalidNodes(editor), []);
      await editor.screenshot(`validation-demo-${transport}`);
    });
  }

  for (const title of EXAMPLES) {
    it(`example "${title}": every node valid as imported`, async () => {
      await red.deploy([]);
      editor ??= await openEditor(red.url);
      const page = editor.page;
      await page.goto(red.url);
      await page.waitForFunction(() => (window as any).RED?.nodes?.getType?.("line-driver"));
      await chooseExample(page, title);
      await page.click("#red-ui-clipboard-dialog-ok");
      const n = title.slice(0, 2);
      await page.waitForFunction((id) => (window as any).RED.nodes.workspace(id), `ex${n}-tab`);
      assert.deepEqual(await invalidNodes(editor), []);
      await page.evaluate((tab) => (window as any).RED.workspaces.show(tab), `ex${n}-tab`);
      await editor.screenshot(`validation-example-${n}`);
      // Leave without the "unsaved changes" question.
      await page.evaluate(() => (window as any).RED.nodes.dirty(false));
    });
  }
});
