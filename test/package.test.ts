// What a user gets from npm: pack the module, install the tarball into a fresh Node-RED
// user directory, start Node-RED and see the nodes and their icon load.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { type NodeRedProcess, startNodeRed } from "./helpers/node-red-process";
import { REPO_ROOT, RUN_DIR } from "./standin/paths";

describe("npm pack from a clean checkout", () => {
  it("builds the nodes first (prepack): the tarball holds their JavaScript", () => {
    // The files a clone has (tracked and new, not ignored): no nodes/*.js, which are built.
    const checkout = join(RUN_DIR, "clean-checkout");
    rmSync(checkout, { recursive: true, force: true });
    const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    })
      .split("\0")
      .filter((f) => f && existsSync(join(REPO_ROOT, f)));
    for (const f of files) {
      mkdirSync(dirname(join(checkout, f)), { recursive: true });
      copyFileSync(join(REPO_ROOT, f), join(checkout, f));
    }
    assert.equal(existsSync(join(checkout, "nodes", "line-driver.js")), false, "a clone has no built nodes");
    symlinkSync(join(REPO_ROOT, "node_modules"), join(checkout, "node_modules"), "dir"); // as after npm ci
    const out = execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: checkout, encoding: "utf8" });
    const [info] = JSON.parse(out.slice(out.indexOf("["))) as { files: { path: string }[] }[];
    const shipped = info?.files.map((f) => f.path) ?? [];
    const registered = Object.values(
      JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"))["node-red"].nodes as Record<string, string>,
    );
    for (const js of registered) assert.ok(shipped.includes(js), `${js} is in the tarball`);
    assert.ok(shipped.includes("nodes/icons/o365-mail.svg"), "icons copied where Node-RED looks");
  });
});

describe("npm pack → install into a fresh Node-RED user dir", () => {
  const packDir = join(RUN_DIR, "pack");
  const userDir = join(RUN_DIR, "nr-packaged");
  let red: NodeRedProcess | undefined;
  after(() => red?.stop());

  it("ships exactly the runtime, editor, locales, icons and examples", () => {
    rmSync(packDir, { recursive: true, force: true });
    mkdirSync(packDir, { recursive: true });
    // Built by npm test already (prepack is tested above): not rebuilt under other tests' feet.
    const out = execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", packDir], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    assert.ok(info);
    const files = info.files.map((f) => f.path).sort();
    for (const required of [
      "package.json",
      "README.md",
      "LICENSE",
      "CHANGELOG.md",
      "nodes/o365-oauth-config.js",
      "nodes/o365-oauth-config.html",
      "nodes/locales/en-US/o365-oauth-config.json",
      "nodes/locales/en-US/o365-oauth-config.html",
      "nodes/icons/o365-mail.svg",
      "nodes/core/oauth/token-provider.js",
      "nodes/email-connector.js",
      "nodes/data-map.js",
      "nodes/data-map.html",
      "nodes/locales/en-US/data-map.html",
      "nodes/icons/data-map.svg",
      "nodes/email-connector.html",
      "nodes/locales/en-US/email-connector.html",
      "examples/01 - Alarm mailbox to alarm events.json",
      "nodes/alarm-media.js",
      "nodes/alarm-media.html",
      "nodes/locales/en-US/alarm-media.json",
      "nodes/locales/en-US/alarm-media.html",
      "nodes/core/media/evidence.js",
      "nodes/gateway-supervision.js",
      "nodes/gateway-supervision.html",
      "nodes/locales/en-US/gateway-supervision.html",
      "nodes/alarm-gateway-panel.js",
      "nodes/alarm-gateway-panel.html",
      "nodes/core/health/trace-log.js",
    ]) {
      assert.ok(files.includes(required), `${required} is shipped`);
    }
    // Our own sources stay out; bundled dependencies (node_modules/) ship as their authors published them.
    const ours = files.filter((f) => !f.startsWith("node_modules/"));
    const unwanted = ours.filter((f) => /^(src|test|bench|scripts|\.ci|\.run)\//.test(f) || f.endsWith(".ts"));
    assert.deepEqual(unwanted, []);
    const bundled = new Set(
      files.filter((f) => f.startsWith("node_modules/")).map((f) => f.split("/").slice(1, 3).join("/")),
    );
    for (const dep of ["imapflow/package.json", "@azure/msal-node", "mailparser/package.json"])
      assert.ok(
        [...bundled].some((b) => b.startsWith(dep.replace("/package.json", ""))),
        `${dep} is bundled`,
      );
    writeFileSync(join(packDir, "tarball"), join(packDir, info.filename));
  });

  it("installs with npm and loads in Node-RED 4", async () => {
    const tarball = join(
      packDir,
      execFileSync("ls", [packDir], { encoding: "utf8" })
        .split("\n")
        .find((f) => f.endsWith(".tgz")) ?? "",
    );
    rmSync(userDir, { recursive: true, force: true });
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(userDir, "package.json"), JSON.stringify({ name: "node-red-project", private: true }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--omit=dev", tarball], { cwd: userDir, stdio: "pipe" });
    red = await startNodeRed({ userDir, linkPack: false, keepUserDir: true, verbose: true, env: { NODE_PATH: "" } });
    const nodes = await red.api("GET", "/nodes");
    // One entry per node set (file) of the module.
    const sets = (nodes.body as { module: string; version: string; types: string[]; err?: string }[]).filter(
      (s) => s.module === "@alarm-gateway/node-red-o365",
    );
    assert.ok(sets.length > 0, "module listed");
    assert.deepEqual(
      sets.filter((s) => s.err),
      [],
      "every node set loads",
    );
    const types = sets.flatMap((s) => s.types);
    for (const t of [
      "o365-oauth-config",
      "email-connector",
      "o365-send-mail",
      "data-map",
      "line-driver",
      "alarm-media",
    ])
      assert.ok(types.includes(t), `${t} registered`);
    // The Node-RED range the pack declares (checked by the palette manager) holds the one tested here.
    const version = (await red.api("GET", "/settings")).body.version as string;
    const range = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"))["node-red"].version;
    const semver = require("semver") as { satisfies(v: string, r: string): boolean };
    // Node-RED's loader compares its version without a pre-release tag (4.1.15-git in a git checkout).
    assert.ok(semver.satisfies(version.replace(/-.*$/, ""), range), `Node-RED ${version} within ${range}`);
    const icon = await fetch(`${red.url}/icons/@alarm-gateway/node-red-o365/o365-mail.svg`);
    assert.equal(icon.status, 200);
    const line = red
      .log()
      .split("\n")
      .find((l) => /node-red-o365/.test(l));
    console.log(
      `# ${sets[0]?.module}@${sets[0]?.version} types=${types.join(",")}${line ? ` log: ${line.trim()}` : ""}`,
    );
  });
});
