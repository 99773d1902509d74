// What a config node holds, checked once with messages a user can act on. The editor
// runs the same format checks as the user types (see o365-oauth-config.html).
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { CLOUD_NAMES, type CloudHosts, type CloudName, KNOWN_CLOUDS } from "./cloud";

export type ClientCredential =
  | { kind: "secret"; secret: string }
  | {
      kind: "certificate";
      privateKey: string;
      /** Hex thumbprint: SHA-256 (64 hex) preferred, SHA-1 (40 hex, the portal's "Thumbprint") accepted. */
      thumbprint: string;
    };

export interface OAuthSettings {
  tenant: string;
  clientId: string;
  credential: ClientCredential;
  cloudName: CloudName;
  cloud: CloudHosts;
}

/** The config node's fields as Node-RED stores them (strings, possibly empty). */
export interface OAuthConfigFields {
  tenant?: string;
  clientId?: string;
  credentialKind?: string;
  cloud?: string;
  authorityHost?: string;
  outlookHost?: string;
  graphHost?: string;
  thumbprint?: string;
}

export interface OAuthCredentialFields {
  clientSecret?: string;
  privateKey?: string;
  certificate?: string;
}

export const GUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const DOMAIN_PATTERN = /^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
// host or host:port; no scheme, no path.
export const HOST_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?)+(?::\d{1,5})?$/i;
const THUMBPRINT_PATTERN = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;

export type ValidationResult = { ok: true; settings: OAuthSettings } | { ok: false; problems: string[] };

export function validateOAuthSettings(fields: OAuthConfigFields, creds: OAuthCredentialFields): ValidationResult {
  const problems: string[] = [];
  const tenant = (fields.tenant ?? "").trim();
  const clientId = (fields.clientId ?? "").trim();
  if (!tenant) problems.push("Tenant is empty: enter the Directory (tenant) ID or a verified domain.");
  else if (["common", "organizations", "consumers"].includes(tenant.toLowerCase())) {
    problems.push(`Tenant "${tenant}" cannot be used for app-only access: enter your own tenant ID or domain.`);
  } else if (!GUID_PATTERN.test(tenant) && !DOMAIN_PATTERN.test(tenant)) {
    problems.push(
      `Tenant "${tenant}" is neither a GUID nor a domain name: copy the Directory (tenant) ID from the app's Overview page.`,
    );
  }
  if (!clientId) problems.push("Client ID is empty: enter the Application (client) ID.");
  else if (!GUID_PATTERN.test(clientId)) {
    problems.push(
      `Client ID "${clientId}" is not a GUID: copy the Application (client) ID from the app's Overview page.`,
    );
  }

  const cloudName = (fields.cloud || "global") as CloudName;
  let cloud: CloudHosts | undefined;
  if (!CLOUD_NAMES.includes(cloudName)) problems.push(`Unknown cloud "${fields.cloud}".`);
  else if (cloudName === "custom") {
    cloud = {
      authorityHost: (fields.authorityHost ?? "").trim(),
      outlookHost: (fields.outlookHost ?? "").trim(),
      graphHost: (fields.graphHost ?? "").trim(),
    };
    for (const [label, value] of [
      ["Authority host", cloud.authorityHost],
      ["Outlook/IMAP host", cloud.outlookHost],
      ["Graph host", cloud.graphHost],
    ] as const) {
      if (!HOST_PATTERN.test(value)) {
        problems.push(`${label} "${value}" is not a host name (host or host:port, without https:// or a path).`);
      }
    }
  } else cloud = KNOWN_CLOUDS[cloudName];

  const credential = readCredential(fields, creds, problems);
  if (problems.length > 0 || !cloud || !credential) return { ok: false, problems };
  return { ok: true, settings: { tenant, clientId, credential, cloudName, cloud } };
}

/**
 * MSAL signs the client assertion with RS256 (SHA-1 thumbprint) or PS256 (SHA-256) through
 * jsonwebtoken, which takes only RSA keys of 2048 bits or more; Entra ID asks for the same
 * (learn.microsoft.com/entra/identity-platform/certificate-credentials). Any other key would pass
 * here and fail only at the first token request.
 */
function keyProblem(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  if (type === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= 2048
      ? undefined
      : `The private key is RSA with ${bits} bits: MSAL signs only with RSA keys of 2048 bits or more. Create a new certificate with a 2048-bit (or larger) RSA key and upload it to the app.`;
  }
  const what =
    type === "ec"
      ? `an EC key (${key.asymmetricKeyDetails?.namedCurve ?? "unknown curve"})`
      : type === "rsa-pss"
        ? "an RSA-PSS key"
        : `a key of type ${type ?? "secret"}`;
  return (
    `The private key is ${what}: MSAL signs client assertions with RSA only (RS256/PS256). Create the ` +
    "certificate with an RSA key of 2048 bits or more (e.g. openssl req -x509 -newkey rsa:2048 ...) and upload it to the app."
  );
}

/** Where a config node's credentials go: its tenant at its authority, for tokens of its two hosts. */
export interface CredentialDestination {
  tenant: string;
  authorityHost: string;
  outlookHost: string;
  graphHost: string;
}

/** The destination the fields name (hosts of a known cloud, or the custom ones); undefined if unknown. */
export function credentialDestinationOf(fields: OAuthConfigFields): CredentialDestination | undefined {
  const cloudName = (fields.cloud || "global") as CloudName;
  if (!CLOUD_NAMES.includes(cloudName)) return undefined;
  const hosts =
    cloudName === "custom"
      ? { authorityHost: fields.authorityHost, outlookHost: fields.outlookHost, graphHost: fields.graphHost }
      : KNOWN_CLOUDS[cloudName];
  // Host names and tenant domains are case-insensitive; a GUID's case means nothing either.
  const norm = (v: string | undefined) => (v ?? "").trim().toLowerCase();
  return {
    tenant: norm(fields.tenant),
    authorityHost: norm(hosts.authorityHost),
    outlookHost: norm(hosts.outlookHost),
    graphHost: norm(hosts.graphHost),
  };
}

export function sameDestination(a: CredentialDestination, b: CredentialDestination): boolean {
  return (
    a.tenant === b.tenant &&
    a.authorityHost === b.authorityHost &&
    a.outlookHost === b.outlookHost &&
    a.graphHost === b.graphHost
  );
}

function readCredential(
  fields: OAuthConfigFields,
  creds: OAuthCredentialFields,
  problems: string[],
): ClientCredential | undefined {
  const kind = fields.credentialKind || "secret";
  if (kind === "secret") {
    const secret = creds.clientSecret ?? "";
    if (!secret) {
      problems.push(
        "Client secret is empty: paste the secret's Value (not its Secret ID) from Certificates & secrets.",
      );
      return undefined;
    }
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(secret)) {
      problems.push("The client secret looks like a GUID, which is the Secret ID: paste the secret's Value instead.");
      return undefined;
    }
    return { kind: "secret", secret };
  }
  if (kind !== "certificate") {
    problems.push(`Unknown credential kind "${kind}".`);
    return undefined;
  }
  const privateKey = (creds.privateKey ?? "").trim();
  if (!privateKey) {
    problems.push("Private key is empty: paste the PEM private key of the certificate uploaded to the app.");
    return undefined;
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(privateKey);
  } catch {
    problems.push("Private key is not a readable PEM key (unencrypted PKCS#8 or PKCS#1, starting with -----BEGIN).");
    return undefined;
  }
  const unusable = keyProblem(key);
  if (unusable) {
    problems.push(unusable);
    return undefined;
  }
  const certificatePem = (creds.certificate ?? "").trim();
  if (certificatePem) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certificatePem);
    } catch {
      problems.push("Certificate is not a readable PEM certificate.");
      return undefined;
    }
    if (!cert.checkPrivateKey(key)) {
      problems.push("The private key does not belong to the certificate: paste the key the certificate was made from.");
      return undefined;
    }
    return { kind: "certificate", privateKey, thumbprint: cert.fingerprint256.replace(/:/g, "") };
  }
  const thumbprint = (fields.thumbprint ?? "").replace(/[\s:]/g, "");
  if (!THUMBPRINT_PATTERN.test(thumbprint)) {
    problems.push(
      "Enter the certificate (PEM) or its thumbprint (40 or 64 hex characters, as shown under Certificates & secrets).",
    );
    return undefined;
  }
  return { kind: "certificate", privateKey, thumbprint };
}
