// The data-map editor's endpoints in a real Node-RED with adminAuth: presets, Try it, recent emails.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { RUN_DIR } from "../standin/paths";

const FIXTURES = join(__dirname, "..", "fixtures", "emails");

describe("data-map admin endpoints", () => {
  let red: NodeRedProcess;
  before(async () => {
    red = await startNodeRed({
      userDir: join(RUN_DIR, "nr-datamap-admin"),
      adminAuth: { username: "a", password: "pw-123456" },
      env: { SITE_ACCOUNT: "4471" },
    });
  });
  after(() => red.stop());

  it("lists the presets with their rules", async () => {
    const res = await red.api("GET", "/data-map/presets");
    assert.equal(res.status, 200);
    const ids = (res.body as { id: string; map: { rules: unknown[] } }[]).map((p) => p.id);
    assert.ok(ids.includes("classic") && ids.includes("temperature-logger"), ids.join(","));
  });

  it("tries rules that are not deployed on a pasted email and shows what each rule extracted", async () => {
    const presets = (await red.api("GET", "/data-map/presets")).body as { id: string; map: object }[];
    const classic = presets.find((p) => p.id === "classic")?.map;
    const raw = readFileSync(join(FIXTURES, "plain-4-line.eml"), "utf8");
    const res = await red.api("POST", "/data-map/try", { map: classic, raw });
    assert.equal(res.status, 200);
    assert.equal(res.body.result.ok, true);
    assert.equal(res.body.result.alarm.account, "123588");
    const zone = res.body.result.trace.find((t: { field: string }) => t.field === "zone");
    assert.equal(zone.value, "1", "the zone line as extracted; validation makes it the number in the alarm");
    assert.equal(res.body.result.alarm.zone, 1);
  });

  it("reads a $-{NAME} constant from the environment, as a deploy does", async () => {
    const fromEnv = ["$", "{SITE_ACCOUNT}"].join(""); // Node-RED's own syntax, stored as text
    const map = {
      rules: [{ field: "account", source: { kind: "constant", value: fromEnv }, extractor: { kind: "whole" } }],
    };
    const res = await red.api("POST", "/data-map/try", { map, raw: "Subject: x\r\n\r\nBA\r\n" });
    const account = res.body.result.trace.find((t: { field: string }) => t.field === "account");
    assert.equal(account.value, "4471");
  });

  it("names the broken rule instead of trying", async () => {
    const map = { rules: [{ field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "([" } }] };
    const res = await red.api("POST", "/data-map/try", { map, raw: "Subject: x\r\n\r\n1\r\n" });
    assert.equal(res.body.config, "invalid");
    assert.match(res.body.problems.join("\n"), /rule 1 \(zone\)/);
  });

  it("refuses every endpoint without admin rights", async () => {
    for (const [method, path] of [
      ["GET", "/data-map/presets"],
      ["POST", "/data-map/try"],
      ["GET", "/data-map/x/recent"],
    ] as const) {
      const res = await red.api(method, path, method === "POST" ? { map: { rules: [] } } : undefined, {
        anonymous: true,
      });
      assert.equal(res.status, 401, `${method} ${path}`);
    }
  });
});
