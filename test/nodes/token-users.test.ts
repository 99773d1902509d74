// Many nodes on one o365-oauth-config: one token request, status that follows the token.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import helper from "node-red-node-test-helper";
import { CLIENT_SECRET, startTestTenant, type TestTenant } from "../helpers/tenant";

const configNode = require("../../nodes/o365-oauth-config.js");
const probeNode = require("../helpers/token-probe.js");

helper.init(require.resolve("node-red"));

type Probe = { receive(msg: object): void; on(ev: string, cb: (...a: any[]) => void): void; status: any };

function flow(tenant: TestTenant, probes: number, fields: object = {}) {
  return [
    { id: "cfg", type: "o365-oauth-config", ...tenant.fields, ...fields },
    ...Array.from({ length: probes }, (_, i) => ({
      id: `p${i}`,
      type: "token-probe",
      config: "cfg",
      wires: [[`h${i}`]],
    })),
    ...Array.from({ length: probes }, (_, i) => ({ id: `h${i}`, type: "helper" })),
  ];
}

function ask(i: number, msg: object = {}): Promise<string> {
  const probe = helper.getNode(`p${i}`) as Probe;
  const out = helper.getNode(`h${i}`) as Probe;
  return new Promise((resolve, reject) => {
    out.on("input", (m: { payload: string }) => resolve(m.payload));
    probe.on("call:error", (call: { firstArg: unknown }) => reject(call.firstArg));
    probe.receive(msg);
  });
}

function nextStatus(i: number): Promise<{ fill: string; text: string }> {
  const probe = helper.getNode(`p${i}`) as Probe;
  return new Promise((resolve) =>
    probe.on("call:status", (call: { firstArg: { fill: string; text: string } }) => resolve(call.firstArg)),
  );
}

describe("nodes sharing one o365-oauth-config", () => {
  let tenant: TestTenant;
  before(async () => {
    tenant = await startTestTenant();
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await tenant.stop();
  });

  it("ten nodes make one token request, and one more over a forced renewal", async () => {
    await helper.load([configNode, probeNode], flow(tenant, 10), { cfg: { clientSecret: CLIENT_SECRET } });
    const start = tenant.entra.tokenRequestCount;
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(i)));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(tenant.entra.tokenRequestCount - start, 1, "one request for ten nodes");
    // Every node is told the token was refused by the server (e.g. IMAP AUTHENTICATE failed).
    const renewed = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(i, { rejected: tokens[0] })));
    assert.equal(new Set(renewed).size, 1);
    assert.notEqual(renewed[0], tokens[0]);
    const total = tenant.entra.tokenRequestCount - start;
    assert.equal(total, 2, "one more request for the forced renewal");
    console.log(`# token requests for 10 nodes over a forced renewal: ${total}`);
  });

  it("shows a token failure on every user node, with the AADSTS code", async () => {
    await helper.load([configNode, probeNode], flow(tenant, 2), { cfg: { clientSecret: "wrong-secret-value" } });
    const statuses = [nextStatus(0), nextStatus(1)];
    await assert.rejects(ask(0), /AADSTS7000215/);
    for (const s of await Promise.all(statuses)) {
      assert.equal(s.fill, "red");
      assert.match(s.text, /invalid client secret \(AADSTS7000215\)/);
    }
  });

  it("shows an invalid configuration on the user node as soon as it starts", async () => {
    const loaded = helper.load([configNode, probeNode], flow(tenant, 1, { clientId: "not-a-guid" }), {
      cfg: { clientSecret: CLIENT_SECRET },
    });
    await loaded;
    const probe = helper.getNode("p0") as Probe;
    const call = probe.status.getCalls().map((c: { firstArg: { text: string } }) => c.firstArg.text);
    assert.ok(
      call.some((t: string) => /configuration incomplete/.test(t)),
      JSON.stringify(call),
    );
    await assert.rejects(ask(0), /Client ID "not-a-guid" is not a GUID/);
  });
});
