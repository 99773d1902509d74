// Headless Debian Chromium driven by playwright-core, for the editor tests: one page on a
// Node-RED editor, script errors collected, screenshots of the key dialogs kept as CI artefacts.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";
import { REPO_ROOT } from "../standin/paths";

export const CHROMIUM = "/usr/bin/chromium";
export const chromiumMissing = !existsSync(CHROMIUM) && "Debian chromium is not installed";
/** Git-ignored; CI keeps it as an artefact. */
export const ARTIFACTS = join(REPO_ROOT, "test", "artifacts");

export interface EditorPage {
  browser: Browser;
  page: Page;
  /** Uncaught errors of the editor's scripts (ours must add none). */
  pageErrors: string[];
  /** Saves test/artifacts/<name>.png, after scrolling `show` into view. */
  screenshot(name: string, show?: string): Promise<void>;
  /** Opens a node's edit tray (config nodes: their config tray) and waits until it is shown. */
  edit(id: string, config?: boolean): Promise<void>;
  /** Cancels the topmost tray. */
  cancel(): Promise<void>;
  /** Cancels every open tray (after a failed test). */
  cancelAll(): Promise<void>;
  /** Types like a user, key by key (Node-RED validates on keyup). */
  type(selector: string, text: string): Promise<void>;
  close(): Promise<void>;
}

export async function openEditor(url: string, opts: { waitForNode?: string } = {}): Promise<EditorPage> {
  const browser = await chromium.launch({
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
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => (window as any).RED?.nodes?.getType?.("inject"), undefined, { timeout: 30_000 });
  if (opts.waitForNode) {
    await page.waitForFunction((id) => (window as any).RED.nodes.node(id), opts.waitForNode, { timeout: 30_000 });
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const editor: EditorPage = {
    browser,
    page,
    pageErrors,
    async screenshot(name, show) {
      if (show) await page.locator(show).last().scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
    },
    async edit(id, config = false) {
      const depth = await editDepth(page);
      await page.evaluate(
        ({ nodeId, isConfig }) => {
          const RED = (window as any).RED;
          if (isConfig) RED.editor.editConfig("", RED.nodes.node(nodeId).type, nodeId);
          else RED.editor.edit(RED.nodes.node(nodeId));
        },
        { nodeId: id, isConfig: config },
      );
      await page.waitForFunction((n) => (window as any).RED.editor.getEditStack().length > n, depth);
      // The tray slides in; oneditprepare has run once it stands still.
      await page.waitForTimeout(400);
    },
    async cancel() {
      const depth = await editDepth(page);
      await page.locator(".red-ui-tray").last().locator("#node-dialog-cancel, #node-config-dialog-cancel").click();
      await page.waitForFunction((n) => (window as any).RED.editor.getEditStack().length < n, depth);
      await page.waitForTimeout(300);
    },
    async cancelAll() {
      for (let i = 0; i < 5 && (await editDepth(page)) > 0; i++) await editor.cancel();
    },
    async type(selector, text) {
      await page.fill(selector, "");
      await page.locator(selector).pressSequentially(text);
    },
    close: () => browser.close(),
  };
  return editor;
}

/** Menu > Import > Examples > this pack > `title`, as a user picks it; the caller presses Import. */
export async function chooseExample(page: Page, title: string): Promise<void> {
  const examples = "#red-ui-clipboard-dialog-import-tab-examples";
  await page.click("#red-ui-header-button-sidemenu");
  await page.click("#menu-item-import");
  await page.click("#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples");
  await page.click(`${examples} .red-ui-treeList-label-text:text-is("@alarm-gateway/node-red-o365")`);
  await page.click(`${examples} .red-ui-treeList-label-text:text-is("${title}")`);
}

/** How many dialogs are open, stacked (a config node's dialog opened from a node's dialog is two). */
function editDepth(page: Page): Promise<number> {
  return page.evaluate(() => (window as any).RED.editor.getEditStack().length as number);
}

/** The text as the user sees it (line breaks between blocks, hidden parts left out). */
export function textOf(locator: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what is asserted
  return locator.evaluate((e) => (e as HTMLElement).innerText);
}

/** Nodes (and config nodes) the editor marks invalid, with their validation errors. */
export function invalidNodes(editor: EditorPage): Promise<string[]> {
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
