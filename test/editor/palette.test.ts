// The npm pack tarball installed into a clean Node-RED through the palette manager's upload button
// (Manage palette > Install > upload), as a user without access to the npm registry does: npm runs
// offline with an empty cache, so the tarball must carry its dependencies (bundleDependencies).
// The palette then shows the pack's nodes in their own category, with icons.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { CREDENTIAL_SECRET, freePort } from "../helpers/node-red-process";
import { REPO_ROOT, RUN_DIR } from "../standin/paths";
import { chromiumMissing, type EditorPage, openEditor } from "./browser";

const MODULE = "@alarm-gateway/node-red-o365";
const PACK = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  version: string;
  "node-red": { nodes: Record<string, string> };
};

interface CleanNodeRed {
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * Node-RED as installed from npm, with the palette manager on: nothing linked, no NODE_PATH, no
 * catalogue fetched from the Internet, and npm told to stay offline with an empty cache (the registry is out
 * of reach and nothing was ever downloaded on this machine).
 */
async function startCleanNodeRed(userDir: string): Promise<CleanNodeRed> {
  const port = await freePort();
  rmSync(userDir, { recursive: true, force: true });
  mkdirSync(userDir, { recursive: true });
  writeFileSync(join(userDir, "package.json"), JSON.stringify({ name: "node-red-project", private: true }));
  const settings = {
    uiPort: port,
    uiHost: "127.0.0.1",
    flowFile: "flows.json",
    credentialSecret: CREDENTIAL_SECRET,
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { tours: false, palette: { catalogues: [] } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: true, allowUpload: true } },
  };
  writeFileSync(join(userDir, "settings.js"), `module.exports = ${JSON.stringify(settings)};\n`);
  const child: ChildProcess = spawn(
    process.execPath,
    [join(REPO_ROOT, "node_modules", "node-red", "red.js"), "-u", userDir, "-s", join(userDir, "settings.js")],
    {
      env: {
        ...process.env,
        NODE_PATH: "",
        npm_config_offline: "true",
        npm_config_cache: join(userDir, "empty-npm-cache"),
        npm_config_update_notifier: "false",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const deadline = Date.now() + 30_000;
  while (!/Server now running at/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`Node-RED did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}

describe("palette manager: upload the npm pack tarball into a clean Node-RED", { skip: chromiumMissing }, () => {
  const packDir = join(RUN_DIR, "pack-palette");
  let tarball: string;
  let red: CleanNodeRed;
  let editor: EditorPage;
  let page: Page;

  before(async () => {
    rmSync(packDir, { recursive: true, force: true });
    mkdirSync(packDir, { recursive: true });
    const [info] = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", packDir], { cwd: REPO_ROOT, encoding: "utf8" }),
    ) as { filename: string }[];
    tarball = join(packDir, info!.filename);
    red = await startCleanNodeRed(join(RUN_DIR, "nr-palette-upload"));
    editor = await openEditor(red.url);
    page = editor.page;
  });
  after(async () => {
    await editor?.close();
    await red?.stop();
  });

  it("starts without the pack", async () => {
    const types = await page.evaluate(
      (t) => t.map((type) => !!(window as any).RED.nodes.getType(type)),
      Object.keys(PACK["node-red"].nodes),
    );
    assert.ok(
      types.every((known) => !known),
      "none of the pack's types before the upload",
    );
  });

  it("installs through Manage palette > Install > upload, and the nodes appear", async () => {
    await page.click("#red-ui-header-button-sidemenu");
    await page.click("#menu-item-edit-palette");
    await page.click("#red-ui-tab-install .red-ui-tab-label");
    await page.locator(".red-ui-palette-editor-upload-button input[type=file]").setInputFiles(tarball);
    await page.waitForSelector(".red-ui-palette-editor-upload", { state: "visible" });
    await editor.screenshot("palette-upload");
    await page.click(".red-ui-palette-editor-upload-buttons button.primary");
    await page.waitForFunction(
      (types) => types.every((type) => !!(window as any).RED.nodes.getType(type)),
      Object.keys(PACK["node-red"].nodes),
      { timeout: 120_000 },
    );
    const installed = JSON.parse(readFileSync(join(RUN_DIR, "nr-palette-upload", "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    assert.match(installed.dependencies[MODULE] ?? "", /^file:nodes\/alarm-gateway-node-red-o365-.*\.tgz$/);
    assert.match(red.log(), /Added node types:[\s\S]*o365-oauth-config/);
    await page
      .click("#node-dialog-ok, #node-dialog-close, .red-ui-tray-footer button:has-text('Close')")
      .catch(() => undefined);
  });

  it("shows the pack's nodes in its own palette category, each icon answering 200", async () => {
    const palette = await page.evaluate((module) => {
      const RED = (window as any).RED;
      const out: { type: string; category: string; inPalette: boolean; icon: string; fontAwesome: boolean }[] = [];
      for (const type of RED.nodes.registry.getNodeTypes()) {
        const def = RED.nodes.getType(type);
        if (!def?.set || def.set.module !== module) continue;
        const entry = document.querySelector(`.red-ui-palette-node[data-palette-type="${type}"]`);
        const icon = entry?.querySelector(".red-ui-palette-icon") as HTMLElement | null;
        out.push({
          type,
          category: def.category,
          inPalette: !!entry,
          icon: icon ? getComputedStyle(icon).backgroundImage : "",
          fontAwesome: typeof def.icon === "string" && def.icon.startsWith("font-awesome/"),
        });
      }
      return out;
    }, MODULE);
    const types = palette.map((p) => p.type).sort();
    assert.deepEqual(types, Object.keys(PACK["node-red"].nodes).sort());
    for (const p of palette) {
      if (p.category === "config") {
        assert.equal(p.inPalette, false, `${p.type} is a config node: not in the palette`);
        continue;
      }
      assert.equal(p.category, "alarm gateway", `${p.type} category`);
      assert.ok(p.inPalette, `${p.type} is in the palette`);
      if (p.fontAwesome && p.type === "o365-send-mail") continue; // a Font Awesome icon: no URL to fetch
      const url = /url\("?([^")]+)"?\)/.exec(p.icon)?.[1];
      assert.ok(url, `${p.type} has an icon image (${p.icon || "none"})`);
      const res = await fetch(new URL(url, red.url));
      assert.equal(res.status, 200, `${p.type} icon ${url}`);
      assert.match(res.headers.get("content-type") ?? "", /svg/, `${p.type} icon is an SVG`);
    }
    await page.evaluate(() => {
      const header = Array.from(document.querySelectorAll(".red-ui-palette-header")).find((h) =>
        /alarm gateway/.test(h.textContent ?? ""),
      );
      header?.scrollIntoView();
    });
    await editor.screenshot("palette-alarm-gateway");
    assert.deepEqual(editor.pageErrors, []);
  });
});
