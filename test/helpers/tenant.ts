// The standard test tenant: one app with a secret and a certificate, served by the Entra ID stand-in.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { OAuthConfigFields, OAuthCredentialFields } from "../../src/core/oauth/settings";
import { ensureTestCertificates, type TestCertificates } from "../standin/certs";
import { type AppRegistration, EntraStandin } from "../standin/entra";
import { CERT_DIR, RUN_DIR } from "../standin/paths";

export const TENANT_ID = "7b1c2e0a-52f4-4a8e-9c1d-3f5e8a9b0c11";
export const TENANT_DOMAIN = "contoso.test";
export const CLIENT_ID = "0f3e9d4c-8b7a-4c6d-9e1f-2a3b4c5d6e7f";
export const CLIENT_SECRET = "Xq8~secret.value-ShouldNeverLeak_2026";
export const MAILBOX = "alarms@contoso.test";
export const OUTLOOK_HOST = "outlook.standin.test";
export const GRAPH_HOST = "graph.standin.test";

export interface AppCertificate {
  certificatePem: string;
  privateKeyPem: string;
}

/** A self-signed app certificate, like one uploaded under Certificates & secrets. */
export function appCertificate(name: string): AppCertificate {
  const dir = join(RUN_DIR, "app-certs");
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}.key.pem`);
  const cert = join(dir, `${name}.cert.pem`);
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"].concat([
      "-subj",
      `/CN=${name}`,
      "-keyout",
      key,
      "-out",
      cert,
    ]),
    { stdio: "pipe" },
  );
  return { certificatePem: readFileSync(cert, "utf8"), privateKeyPem: readFileSync(key, "utf8") };
}

export interface TestTenant {
  entra: EntraStandin;
  certs: TestCertificates;
  app: AppRegistration;
  fields: OAuthConfigFields;
  credentials: OAuthCredentialFields;
  stop(): Promise<void>;
}

export async function startTestTenant(
  opts: {
    lifetimeSeconds?: number;
    outlookHost?: string;
    /** Graph host of the custom cloud (base URL and token resource), e.g. a local Graph stand-in's host:port. */
    graphHost?: string;
    port?: number;
    app?: Partial<AppRegistration>;
    extraApps?: AppRegistration[];
  } = {},
): Promise<TestTenant> {
  const certs = ensureTestCertificates(CERT_DIR);
  const outlookHost = opts.outlookHost ?? OUTLOOK_HOST;
  const graphHost = opts.graphHost ?? GRAPH_HOST;
  const app: AppRegistration = {
    clientId: CLIENT_ID,
    secret: CLIENT_SECRET,
    roles: {
      [`https://${outlookHost}`]: ["IMAP.AccessAsApp"],
      [`https://${graphHost}`]: ["Mail.ReadWrite", "Mail.Send"],
    },
    ...opts.app,
  };
  const entra = new EntraStandin({
    certs,
    tokenLifetimeSeconds: opts.lifetimeSeconds ?? 3599,
    port: opts.port,
    resources: [`https://${outlookHost}`, `https://${graphHost}`],
    tenants: [{ id: TENANT_ID, domains: [TENANT_DOMAIN], apps: [app, ...(opts.extraApps ?? [])] }],
  });
  await entra.start();
  return {
    entra,
    certs,
    app,
    fields: {
      tenant: TENANT_ID,
      clientId: CLIENT_ID,
      credentialKind: "secret",
      cloud: "custom",
      authorityHost: entra.host,
      outlookHost,
      graphHost,
    },
    credentials: { clientSecret: CLIENT_SECRET },
    stop: () => entra.stop(),
  };
}
