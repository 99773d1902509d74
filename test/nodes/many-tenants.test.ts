// A service provider's gateway (issue #19, the small version for `npm test`): 3 customer tenants, each with 5
// mailboxes over IMAP and 5 over Graph, 30 email-connectors in one Node-RED on one Entra ID, Dovecot and Graph
// stand-in. Every email comes out once, from its own mailbox; each tenant's config node asks Entra ID for one
// token per resource, shared by its 10 connectors; a tenant's token does not open another tenant's mailbox.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { emailConnectorDef } from "../helpers/flows";
import { alarmEmail } from "../helpers/mail-stack";
import { type ProviderStack, startProviderStack } from "../helpers/provider-stack";

const configNode = require("../../nodes/o365-oauth-config.js");
const connectorNode = require("../../nodes/email-connector.js");

const TENANTS = 3;
const PER_TRANSPORT = 5;

/** Node-RED's test helper takes credentials beside the flow, not in it. */
function load(flow: Record<string, unknown>[]) {
  const credentials = Object.fromEntries(flow.filter((n) => n.credentials).map((n) => [n.id, n.credentials]));
  return helper.load(
    [configNode, connectorNode],
    flow.map(({ credentials: _c, ...n }) => n) as never,
    credentials as never,
  );
}

describe("3 tenants × 10 mailboxes, IMAP and Graph mixed, in one Node-RED", () => {
  let p: ProviderStack;

  before(async () => {
    p = await startProviderStack({
      name: "many-tenants",
      tenants: TENANTS,
      imapPerTenant: PER_TRANSPORT,
      graphPerTenant: PER_TRANSPORT,
    });
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await p?.stop();
  });

  it("every email out once from its own mailbox, one token per tenant and resource", async () => {
    useUserDir("many-tenants");
    const { configs, connectors } = p.flow({ graphPoll: 0.5, wires: [["out"]] });
    await load([...configs, ...connectors, { id: "out", type: "helper" }] as Record<string, unknown>[]);
    const out: { connector: string; messageId: string; subject: string }[] = [];
    helper
      .getNode("out")
      .on("input", (msg: any) =>
        out.push({ connector: msg.emailRef.connector, messageId: msg.email.messageId, subject: msg.topic }),
      );
    // Two emails into each mailbox; the subject names the mailbox it was sent to.
    const expected: { connector: string; subject: string }[] = [];
    for (let t = 0; t < TENANTS; t++)
      for (let j = 0; j < PER_TRANSPORT; j++)
        for (let k = 0; k < 2; k++) {
          const imapSubject = `to ${p.imapBox(t, j)} #${k}`;
          await p.dovecot.append(p.imapBox(t, j), alarmEmail(imapSubject));
          expected.push({ connector: `t${t}-imap${j}`, subject: imapSubject });
          const graphSubject = `to ${p.graphBox(t, j)} #${k}`;
          p.graph.deliver(p.graphBox(t, j), alarmEmail(graphSubject));
          expected.push({ connector: `t${t}-graph${j}`, subject: graphSubject });
        }
    const deadline = Date.now() + 60_000;
    while (out.length < expected.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1500)); // anything twice would show by now
    const problems = connectors
      .map((c) => helper.getNode(String(c.id)) as any)
      .flatMap((n) => callsOf(n, "error").map((e) => `${n.id}: ${String(e)}`));
    assert.deepEqual(problems, []);
    assert.equal(out.length, expected.length, `${out.length} of ${expected.length} out`);
    assert.equal(new Set(out.map((o) => o.messageId)).size, expected.length, "each email once");
    assert.deepEqual(
      out.map((o) => `${o.connector} ${o.subject}`).sort(),
      expected.map((e) => `${e.connector} ${e.subject}`).sort(),
      "each from its own mailbox",
    );
    // The tenant's Graph mailboxes poll on the same beat: their delta queries travel in JSON batches.
    assert.ok(p.graph.batches > 0 && p.graph.batchedRequests > p.graph.batches, "polls batched");
    // One token per tenant and resource, shared by its ten connectors (the token lives an hour).
    const issued = p.entra.requests.filter((r) => r.status === 200);
    for (const tenant of p.tenants)
      for (const host of [p.outlookHost, p.graphHost]) {
        const n = issued.filter((r) => r.tenant === tenant && r.scope.includes(host)).length;
        assert.equal(n, 1, `tokens for ${tenant} at ${host}: ${n}`);
      }
  });

  it("a tenant's token does not open another tenant's Graph mailbox", async () => {
    await helper.unload();
    useUserDir("many-tenants-cross");
    await load([
      p.configNode(0),
      {
        id: "cross",
        ...emailConnectorDef({ oauth: "cfg0", transport: "graph", graphPoll: 0.5, mailbox: p.graphBox(1, 0) }),
        wires: [[]],
      },
    ]);
    const node = helper.getNode("cross") as any;
    const deadline = Date.now() + 10_000;
    let text = "";
    while (Date.now() < deadline && !/ErrorInvalidUser|invalid|not found/i.test(text)) {
      await new Promise((r) => setTimeout(r, 100));
      text = callsOf(node, "status")
        .map((s: any) => s.text)
        .join(" | ");
    }
    assert.match(text, /ErrorInvalidUser|invalid|not found/i);
  });
});
