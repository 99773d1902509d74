// A service provider's world on local stand-ins: one multi-tenant app consented in several customer tenants,
// each with mailboxes on Exchange over IMAP (Dovecot) and over Graph (the Graph stand-in), one Entra ID.
// Used by test/nodes/many-tenants.test.ts and bench/scale.ts.
import { join } from "node:path";
import { ensureTestCertificates } from "../standin/certs";
import { type DovecotServer, startDovecot } from "../standin/dovecot";
import { EntraStandin } from "../standin/entra";
import { GraphStandin } from "../standin/graph";
import { CERT_DIR, RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { emailConnectorDef } from "./flows";
import { CLIENT_ID, CLIENT_SECRET } from "./tenant";

export interface ProviderStack {
  tenants: string[];
  entra: EntraStandin;
  dovecot: DovecotServer;
  graph: GraphStandin;
  outlookHost: string;
  graphHost: string;
  imapBox(tenant: number, j: number): string;
  graphBox(tenant: number, j: number): string;
  /** The o365-oauth-config node of tenant `t` (id cfg<t>), with its secret under `credentials`. */
  configNode(t: number): Record<string, unknown>;
  /** Every tenant's config node and its connectors (ids t<t>-imap<j>, t<t>-graph<j>), wired to `wires`. */
  flow(opts: { graphPoll: number; wires: string[][] }): { configs: object[]; connectors: Record<string, unknown>[] };
  stop(): Promise<void>;
}

/** A tenant id (a GUID) per customer. */
export function tenantId(t: number): string {
  return `${t.toString(16).padStart(8, "0")}-0000-4000-8000-${t.toString(16).padStart(12, "0")}`;
}

export async function startProviderStack(o: {
  name: string;
  tenants: number;
  imapPerTenant: number;
  graphPerTenant: number;
}): Promise<ProviderStack> {
  const certs = ensureTestCertificates(CERT_DIR);
  const imapsPort = await freePort();
  const outlookHost = `127.0.0.1:${imapsPort}`;
  const graphHost = `127.0.0.1:${await freePort()}`;
  const tenants = Array.from({ length: o.tenants }, (_, t) => tenantId(t + 1));
  const imapBox = (t: number, j: number) => `imap${j}@tenant${t}.test`;
  const graphBox = (t: number, j: number) => `graph${j}@tenant${t}.test`;
  // The provider's app, consented in each customer's tenant.
  const app = {
    clientId: CLIENT_ID,
    secret: CLIENT_SECRET,
    roles: { [`https://${outlookHost}`]: ["IMAP.AccessAsApp"], [`https://${graphHost}`]: ["Mail.ReadWrite"] },
  };
  const entra = new EntraStandin({
    certs,
    resources: [`https://${outlookHost}`, `https://${graphHost}`],
    tenants: tenants.map((id, t) => ({ id, domains: [`tenant${t}.test`], apps: [app] })),
  });
  await entra.start();
  const signingKey = { kid: entra.kid, publicKeyPem: entra.publicKeyPem };
  const [first, ...more] = tenants as [string, ...string[]];
  const dovecot = await startDovecot({
    runDir: join(RUN_DIR, `dovecot-${o.name}`),
    certs,
    tenantId: first,
    moreTenantIds: more,
    audience: `https://${outlookHost}`,
    signingKeys: [signingKey],
    mailboxes: tenants.flatMap((_, t) => Array.from({ length: o.imapPerTenant }, (_, j) => imapBox(t, j))),
    imapsPort,
  });
  const boxes = (t: number) => Array.from({ length: o.graphPerTenant }, (_, j) => graphBox(t, j));
  const graph = new GraphStandin({
    certs,
    signingKey,
    tenantId: first,
    mailboxes: boxes(0),
    moreTenants: more.map((id, i) => ({ id, mailboxes: boxes(i + 1) })),
    audienceHost: graphHost,
    port: Number(graphHost.split(":")[1]),
  });
  await graph.start();
  const configNode = (t: number) => ({
    id: `cfg${t}`,
    type: "o365-oauth-config",
    tenant: tenants[t],
    clientId: CLIENT_ID,
    credentialKind: "secret",
    cloud: "custom",
    authorityHost: entra.host,
    outlookHost,
    graphHost,
    credentials: { clientSecret: CLIENT_SECRET },
  });
  return {
    tenants,
    entra,
    dovecot,
    graph,
    outlookHost,
    graphHost,
    imapBox,
    graphBox,
    configNode,
    flow: ({ graphPoll, wires }) => ({
      configs: tenants.map((_, t) => configNode(t)),
      connectors: tenants.flatMap((_, t) => [
        ...Array.from({ length: o.imapPerTenant }, (_, j) => ({
          id: `t${t}-imap${j}`,
          ...emailConnectorDef({ oauth: `cfg${t}`, mailbox: imapBox(t, j) }),
          wires,
        })),
        ...Array.from({ length: o.graphPerTenant }, (_, j) => ({
          id: `t${t}-graph${j}`,
          ...emailConnectorDef({ oauth: `cfg${t}`, transport: "graph", graphPoll, mailbox: graphBox(t, j) }),
          wires,
        })),
      ]),
    }),
    async stop() {
      await graph.stop();
      await dovecot.stop();
      await entra.stop();
    },
  };
}
