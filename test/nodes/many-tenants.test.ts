// A service provider's gateway (issue #19, the small version for `npm test`): 3 customer tenants, each with 5
// mailboxes over IMAP and 5 over Graph, 30 email-connectors in one Node-RED on one Entra ID, Dovecot and Graph
// stand-in. Every email comes out once, from its own mailbox; each tenant's config node asks Entra ID for one
// token per resource, shared by its 10 connectors; a tenant's token does not open another tenant's mailbox.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { emailConnectorDef } from "../helpers/flows";
import { alarmEmail } from "../helpers/mail-stack";
import { CLIENT_ID, CLIENT_SECRET } from "../helpers/tenant";
import { ensureTestCertificates } from "../standin/certs";
import { type DovecotServer, startDovecot } from "../standin/dovecot";
import { EntraStandin } from "../standin/entra";
import { GraphStandin } from "../standin/graph";
import { CERT_DIR, RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";

const configNode = require("../../nodes/o365-oauth-config.js");
const connectorNode = require("../../nodes/email-connector.js");

const TENANTS = [
  "1a1a1a1a-0000-4000-8000-000000000001",
  "2b2b2b2b-0000-4000-8000-000000000002",
  "3c3c3c3c-0000-4000-8000-000000000003",
];
const PER_TRANSPORT = 5;
const imapBox = (t: number, j: number) => `imap${j}@tenant${t}.test`;
const graphBox = (t: number, j: number) => `graph${j}@tenant${t}.test`;

describe("3 tenants × 10 mailboxes, IMAP and Graph mixed, in one Node-RED", () => {
  let entra: EntraStandin;
  let dovecot: DovecotServer;
  let graph: GraphStandin;
  let outlookHost: string;
  let graphHost: string;

  before(async () => {
    const certs = ensureTestCertificates(CERT_DIR);
    const imapsPort = await freePort();
    outlookHost = `127.0.0.1:${imapsPort}`;
    graphHost = `127.0.0.1:${await freePort()}`;
    // One multi-tenant app (the provider's), consented in each customer's tenant.
    const app = {
      clientId: CLIENT_ID,
      secret: CLIENT_SECRET,
      roles: { [`https://${outlookHost}`]: ["IMAP.AccessAsApp"], [`https://${graphHost}`]: ["Mail.ReadWrite"] },
    };
    entra = new EntraStandin({
      certs,
      resources: [`https://${outlookHost}`, `https://${graphHost}`],
      tenants: TENANTS.map((id, t) => ({ id, domains: [`tenant${t}.test`], apps: [app] })),
    });
    await entra.start();
    const signingKeys = [{ kid: entra.kid, publicKeyPem: entra.publicKeyPem }];
    const [first, ...more] = TENANTS as [string, ...string[]];
    dovecot = await startDovecot({
      runDir: join(RUN_DIR, "dovecot-many-tenants"),
      certs,
      tenantId: first,
      moreTenantIds: more,
      audience: `https://${outlookHost}`,
      signingKeys,
      mailboxes: TENANTS.flatMap((_, t) => Array.from({ length: PER_TRANSPORT }, (_, j) => imapBox(t, j))),
      imapsPort,
    });
    const boxes = (t: number) => Array.from({ length: PER_TRANSPORT }, (_, j) => graphBox(t, j));
    graph = new GraphStandin({
      certs,
      signingKey: signingKeys[0] as { kid: string; publicKeyPem: string },
      tenantId: first,
      mailboxes: boxes(0),
      moreTenants: more.map((id, i) => ({ id, mailboxes: boxes(i + 1) })),
      audienceHost: graphHost,
      port: Number(graphHost.split(":")[1]),
    });
    await graph.start();
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await graph?.stop();
    await dovecot?.stop();
    await entra?.stop();
  });

  it("every email out once from its own mailbox, one token per tenant and resource", async () => {
    useUserDir("many-tenants");
    const config = (t: number) => ({
      id: `cfg${t}`,
      type: "o365-oauth-config",
      tenant: TENANTS[t],
      clientId: CLIENT_ID,
      credentialKind: "secret",
      cloud: "custom",
      authorityHost: entra.host,
      outlookHost,
      graphHost,
    });
    const connectors = TENANTS.flatMap((_, t) =>
      Array.from({ length: PER_TRANSPORT }, (_, j) => [
        { id: `t${t}-imap${j}`, ...emailConnectorDef({ oauth: `cfg${t}`, mailbox: imapBox(t, j) }), wires: [["out"]] },
        {
          id: `t${t}-graph${j}`,
          ...emailConnectorDef({ oauth: `cfg${t}`, transport: "graph", graphPoll: 0.5, mailbox: graphBox(t, j) }),
          wires: [["out"]],
        },
      ]).flat(),
    );
    await helper.load(
      [configNode, connectorNode],
      [...TENANTS.map((_, t) => config(t)), ...connectors, { id: "out", type: "helper" }] as never,
      Object.fromEntries(TENANTS.map((_, t) => [`cfg${t}`, { clientSecret: CLIENT_SECRET }])),
    );
    const out: { connector: string; messageId: string; subject: string }[] = [];
    helper
      .getNode("out")
      .on("input", (msg: any) =>
        out.push({ connector: msg.emailRef.connector, messageId: msg.email.messageId, subject: msg.topic }),
      );
    // Two emails into each mailbox; the subject names the mailbox it was sent to.
    const expected: { connector: string; subject: string }[] = [];
    for (const [t] of TENANTS.entries())
      for (let j = 0; j < PER_TRANSPORT; j++)
        for (let k = 0; k < 2; k++) {
          const imapSubject = `to ${imapBox(t, j)} #${k}`;
          await dovecot.append(imapBox(t, j), alarmEmail(imapSubject));
          expected.push({ connector: `t${t}-imap${j}`, subject: imapSubject });
          const graphSubject = `to ${graphBox(t, j)} #${k}`;
          graph.deliver(graphBox(t, j), alarmEmail(graphSubject));
          expected.push({ connector: `t${t}-graph${j}`, subject: graphSubject });
        }
    const deadline = Date.now() + 60_000;
    while (out.length < expected.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1500)); // anything twice would show by now
    const problems = connectors
      .map((c) => helper.getNode(c.id) as any)
      .flatMap((n) => callsOf(n, "error").map((e) => `${n.id}: ${String(e)}`));
    assert.deepEqual(problems, []);
    assert.equal(out.length, expected.length, `${out.length} of ${expected.length} out`);
    assert.equal(new Set(out.map((o) => o.messageId)).size, expected.length, "each email once");
    assert.deepEqual(
      out.map((o) => `${o.connector} ${o.subject}`).sort(),
      expected.map((e) => `${e.connector} ${e.subject}`).sort(),
      "each from its own mailbox",
    );
    // One token per tenant and resource, shared by its ten connectors (the token lives an hour).
    const issued = entra.requests.filter((r) => r.status === 200);
    for (const tenant of TENANTS)
      for (const host of [outlookHost, graphHost]) {
        const n = issued.filter((r) => r.tenant === tenant && r.scope.includes(host)).length;
        assert.equal(n, 1, `tokens for ${tenant} at ${host}: ${n}`);
      }
  });

  it("a tenant's token does not open another tenant's Graph mailbox", async () => {
    await helper.unload();
    useUserDir("many-tenants-cross");
    await helper.load(
      [configNode, connectorNode],
      [
        {
          id: "cfg0",
          type: "o365-oauth-config",
          tenant: TENANTS[0],
          clientId: CLIENT_ID,
          credentialKind: "secret",
          cloud: "custom",
          authorityHost: entra.host,
          outlookHost,
          graphHost,
        },
        {
          id: "cross",
          ...emailConnectorDef({ oauth: "cfg0", transport: "graph", graphPoll: 0.5, mailbox: graphBox(1, 0) }),
          wires: [[]],
        },
      ] as never,
      { cfg0: { clientSecret: CLIENT_SECRET } },
    );
    const node = helper.getNode("cross") as any;
    const deadline = Date.now() + 10_000;
    let text = "";
    while (Date.now() < deadline && !/ErrorInvalidUser|not found|invalid/i.test(text)) {
      await new Promise((r) => setTimeout(r, 100));
      text = callsOf(node, "status")
        .map((s: any) => s.text)
        .join(" | ");
    }
    assert.match(text, /ErrorInvalidUser|invalid|not found/i);
  });
});
