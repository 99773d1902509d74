// What a user sees first: the demo flow `npm start` deploys, and each example as Import > Examples brings
// it in, before anything is filled in. Node-RED's editor validates every node (its own and ours) and
// marks a node that fails with a red triangle ("not properly configured") and refuses nothing, but the
// user is left guessing; none of ours may start that way.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { demoFlow } from "../../scripts/demo-flow";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { MAILBOX, startTestTenant, type TestTenant } from "../helpers/tenant";
import { RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { chromiumMissing, type EditorPage, invalidNodes, openEditor } from "./browser";

// Each example's nodes are checked as imported in test/editor/examples.test.ts, before it fills them in.
describe("editor validation of the demo flow, as first opened", { skip: chromiumMissing }, () => {
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
});
