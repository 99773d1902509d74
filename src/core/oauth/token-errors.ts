// Turns what MSAL throws into an error a monitoring-centre integrator can act on:
// the AADSTS code, one line saying what it means, and the fix (../shared/o365.md).

export interface TokenErrorInit {
  code: string;
  summary: string;
  hint: string;
  /** Worth retrying with backoff (outage, timeout); false = the configuration must change. */
  transient: boolean;
  serverMessage?: string;
  correlationId?: string;
}

export class TokenError extends Error {
  readonly code: string;
  readonly summary: string;
  readonly hint: string;
  readonly transient: boolean;
  readonly serverMessage?: string;
  readonly correlationId?: string;

  constructor(init: TokenErrorInit) {
    super(`${init.summary} (${init.code}). ${init.hint}`);
    this.name = "TokenError";
    this.code = init.code;
    this.summary = init.summary;
    this.hint = init.hint;
    this.transient = init.transient;
    this.serverMessage = init.serverMessage;
    this.correlationId = init.correlationId;
  }

  /** Short text for node.status (the palette shows about 40 characters). */
  get statusText(): string {
    return `${this.summary} (${this.code})`;
  }
}

interface AadstsExplanation {
  summary: string;
  hint: string;
  transient?: boolean;
}

const AADSTS: Record<string, AadstsExplanation> = {
  "7000215": {
    summary: "invalid client secret",
    hint: "The secret's Value is needed, not its Secret ID: copy the Value under Certificates & secrets (shown once, when it is created).",
  },
  "7000222": {
    summary: "client secret expired",
    hint: "Create a new client secret under Certificates & secrets and enter its Value here.",
  },
  "7000218": {
    summary: "no client credential sent",
    hint: "Enter the client secret, or choose certificate and enter the private key.",
  },
  "700016": {
    summary: "application not found in tenant",
    hint: "Check the Application (client) ID and the tenant; the app may also never have been consented in this tenant.",
  },
  "90002": {
    summary: "tenant not found",
    hint: "Check the Directory (tenant) ID on the app's Overview page, and that the right cloud is chosen.",
  },
  "900023": {
    summary: "not a valid tenant id or domain",
    hint: "Check the Directory (tenant) ID on the app's Overview page.",
  },
  "70011": {
    summary: "invalid scope",
    hint: "Client-credentials scopes must end in /.default: check the Outlook/Graph host of a custom cloud.",
  },
  "500011": {
    summary: "resource not found in tenant",
    hint: "The Outlook or Graph host is not a resource this tenant knows: check the cloud choice or the custom hosts.",
  },
  "700027": {
    summary: "certificate does not match",
    hint: "The certificate uploaded to the app does not match this private key (or its thumbprint): upload the right certificate or fix the key.",
  },
  "700023": {
    summary: "client assertion rejected",
    hint: "The certificate assertion names the wrong app or tenant: check the client ID and tenant.",
  },
  // learn.microsoft.com/entra/identity-platform/reference-error-codes: DelegationDoesNotExist.
  "65001": {
    summary: "no admin consent in this tenant",
    hint:
      "No administrator of this tenant has consented to the app: an administrator opens the consent link (or " +
      "Enterprise applications > the app > Permissions > Grant admin consent). Consent is per tenant: a grant in " +
      "another tenant does not count.",
  },
  // UserAccountNotFound: met on the consent page when the person signing in is not in this directory.
  "50034": {
    summary: "account not in this tenant",
    hint:
      "Entra ID knows no such account in this tenant. On the consent page, sign in as an administrator of this " +
      "tenant (not with a personal account or one from another tenant); check that the tenant is the one the app is registered in.",
  },
  "53003": {
    summary: "blocked by Conditional Access",
    hint: "A Conditional Access policy blocks this app: an admin must exclude the workload identity from the policy.",
  },
  "50000": {
    summary: "Entra ID had an internal error",
    hint: "Microsoft's sign-in service failed; the gateway retries by itself.",
    transient: true,
  },
  "50196": {
    summary: "token requests throttled",
    hint: "Too many token requests; the gateway retries by itself, later.",
    transient: true,
  },
};

/** What MSAL's AuthError and ServerError expose; read defensively since MSAL's shapes vary by version. */
interface MsalLikeError {
  errorCode?: string;
  errorMessage?: string;
  errorNo?: string;
  subError?: string;
  correlationId?: string;
  status?: number;
  message?: string;
}

export function explainTokenFailure(err: unknown, authorityHost: string): TokenError {
  if (err instanceof TokenError) return err;
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as MsalLikeError;
  const text = [e.errorMessage, e.message].filter(Boolean).join(" ");
  const aadsts = e.errorNo && /^\d+$/.test(e.errorNo) ? e.errorNo : /AADSTS(\d+)/.exec(text)?.[1];
  const serverMessage = firstLine(e.errorMessage || e.message || "");
  if (aadsts) {
    const known = AADSTS[aadsts];
    return new TokenError({
      code: `AADSTS${aadsts}`,
      summary: known?.summary ?? `Entra ID refused the token request`,
      hint: known?.hint ?? `Look up AADSTS${aadsts} at https://login.microsoftonline.com/error?code=${aadsts}.`,
      transient: known?.transient ?? (e.status !== undefined && e.status >= 500),
      serverMessage,
      correlationId: e.correlationId,
    });
  }
  const code = e.errorCode ?? "";
  if (code === "network_error" || /fetch failed|ECONNREFUSED|ENOTFOUND|ETIMEDOUT|certificate|self.signed/i.test(text)) {
    const tls = /certificate|self.signed|unable to verify/i.test(text);
    return new TokenError({
      code: tls ? "tls" : "network",
      summary: tls ? `certificate of ${authorityHost} not trusted` : `cannot reach ${authorityHost}`,
      hint: tls
        ? "The authority's TLS certificate is not trusted: add your proxy's CA with NODE_EXTRA_CA_CERTS."
        : `Check DNS, firewall and proxy for https://${authorityHost} (or, if a proxy inspects TLS, that its CA is trusted through NODE_EXTRA_CA_CERTS).`,
      transient: true,
      serverMessage,
    });
  }
  if (code === "authority_uri_insecure" || code === "url_parse_error" || code === "endpoints_resolution_error") {
    return new TokenError({
      code,
      summary: `authority ${authorityHost} unusable`,
      hint: "The authority host must be an https host that serves Entra ID's OpenID metadata: check the cloud choice or custom authority host.",
      transient: code === "endpoints_resolution_error",
      serverMessage,
    });
  }
  return new TokenError({
    code: code || "unknown",
    summary: "token request failed",
    hint: serverMessage || "See the Node-RED log for details.",
    transient: true,
    serverMessage,
  });
}

export function timeoutError(authorityHost: string, ms: number): TokenError {
  return new TokenError({
    code: "timeout",
    summary: `no answer from ${authorityHost}`,
    hint: `The token request got no answer within ${Math.round(ms / 1000)} s; the gateway retries by itself.`,
    transient: true,
  });
}

export function missingRoleError(role: string, resource: string, consentUrl: string): TokenError {
  return new TokenError({
    code: "missing-role",
    summary: `admin consent missing for ${role}`,
    hint: `The token for ${resource} carries no ${role} role: add the application permission ${role} and have an administrator grant consent: ${consentUrl}`,
    transient: false,
  });
}

function firstLine(s: string): string {
  return s.split(/\r?\n| Trace ID:/)[0]?.trim() ?? "";
}

/** A token failure that retrying will not cure (wrong secret, no consent...): shown in red. */
export function isPermanentTokenError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { transient?: boolean }).transient === false;
}

/** A token failure that may pass by itself (Entra ID down, a timeout). */
export function isTransientTokenError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { transient?: boolean }).transient === true;
}
