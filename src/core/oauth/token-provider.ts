// One MSAL application per config node, shared by every node that uses it: one cached
// token per resource, renewed by MSAL before expiry, concurrent requests coalesced.
import { ConfidentialClientApplication, type Configuration, LogLevel } from "@azure/msal-node";
import { defaultScopeOf, hostOf, type ResourceKind, resourceOf } from "./cloud";
import { readClaims } from "./jwt-claims";
import type { OAuthSettings } from "./settings";
import { explainTokenFailure, missingRoleError, TokenError, timeoutError } from "./token-errors";

export interface AccessToken {
  token: string;
  resource: string;
  expiresOn: Date | null;
  roles: string[];
}

export type TokenRequestResult =
  | { ok: true; fromCache: boolean; expiresOn: Date | null }
  | { ok: false; error: TokenError };
export type TokenState = { ok: true; expiresOn: Date | null } | { ok: false; error: TokenError };

export interface TokenProviderOptions {
  /** Upper bound for one token request; MSAL itself waits as long as the socket does. */
  timeoutMs?: number;
  /** Forced renewals (skipCache) per resource are spaced at least this far apart. */
  minForcedRenewalIntervalMs?: number;
  log?: (level: "warn" | "error", message: string) => void;
}

/** MSAL renews a cached token this long before it expires (its tokenRenewalOffsetSeconds, 300 by default). */
const MSAL_RENEWAL_OFFSET_MS = 300_000;

export class TokenProvider {
  private readonly app: ConfidentialClientApplication;
  private readonly inFlight = new Map<string, Promise<AccessToken>>();
  private readonly lastToken = new Map<ResourceKind, AccessToken>();
  private readonly lastForcedRenewal = new Map<ResourceKind, number>();
  private readonly listeners = new Set<(kind: ResourceKind, state: TokenState) => void>();
  private readonly requestListeners = new Set<(kind: ResourceKind, result: TokenRequestResult) => void>();
  private readonly states = new Map<ResourceKind, TokenState>();
  private readonly timeoutMs: number;
  private readonly minForcedRenewalIntervalMs: number;

  constructor(
    readonly settings: OAuthSettings,
    options: TokenProviderOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.minForcedRenewalIntervalMs = options.minForcedRenewalIntervalMs ?? 10_000;
    this.app = new ConfidentialClientApplication(msalConfiguration(settings, options.log));
  }

  /** Cached token for the resource; `requiredRole` turns a missing admin consent into a clear error. */
  getToken(kind: ResourceKind, requiredRole?: string): Promise<AccessToken> {
    return this.request(kind, false, requiredRole);
  }

  /**
   * The resource server refused `rejected`: fetch a fresh token, bypassing the cache, once.
   * Callers that were refused with an older token, or who ask again within a short interval,
   * get the current token instead of another round trip to Entra ID.
   */
  renewAfterRejection(kind: ResourceKind, rejected: string, requiredRole?: string): Promise<AccessToken> {
    if (this.inFlight.has(`${kind}:true`)) return this.request(kind, true, requiredRole);
    const current = this.lastToken.get(kind);
    const recently = Date.now() - (this.lastForcedRenewal.get(kind) ?? 0) < this.minForcedRenewalIntervalMs;
    if ((current && current.token !== rejected) || recently) return this.request(kind, false, requiredRole);
    this.lastForcedRenewal.set(kind, Date.now());
    return this.request(kind, true, requiredRole);
  }

  state(kind: ResourceKind): TokenState | undefined {
    return this.states.get(kind);
  }

  onStateChange(listener: (kind: ResourceKind, state: TokenState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every token request's result, cache hits included (metrics: refreshes are the ones not from the cache). */
  onRequest(listener: (kind: ResourceKind, result: TokenRequestResult) => void): () => void {
    this.requestListeners.add(listener);
    return () => this.requestListeners.delete(listener);
  }

  /** Admin-consent link an app creator sends to the tenant administrator (../shared/o365.md). */
  consentUrl(): string {
    const { authorityHost } = this.settings.cloud;
    return adminConsentUrl(authorityHost, this.settings.tenant, this.settings.clientId);
  }

  private request(kind: ResourceKind, skipCache: boolean, requiredRole?: string): Promise<AccessToken> {
    // The token this provider holds, while MSAL would hand out the same from its cache (it renews 5 minutes
    // before expiry): MSAL's cache lookup and the token's claims cost more than the request they serve when
    // hundreds of mailboxes ask every second.
    const held = skipCache ? undefined : this.lastToken.get(kind);
    if (
      held?.expiresOn &&
      held.expiresOn.getTime() - Date.now() > MSAL_RENEWAL_OFFSET_MS &&
      this.states.get(kind)?.ok
    ) {
      try {
        return Promise.resolve(requiredRole ? this.checkRole(held, requiredRole) : held);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const key = `${kind}:${skipCache}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.acquire(kind, skipCache).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return requiredRole ? pending.then((t) => this.checkRole(t, requiredRole)) : pending;
  }

  private async acquire(kind: ResourceKind, skipCache: boolean): Promise<AccessToken> {
    const host = hostOf(this.settings.cloud, kind);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError(this.settings.cloud.authorityHost, this.timeoutMs)), this.timeoutMs);
    });
    try {
      const result = await Promise.race([
        this.app.acquireTokenByClientCredential({ scopes: [defaultScopeOf(host)], skipCache }),
        timeout,
      ]);
      if (!result?.accessToken) throw new Error("Entra ID answered without an access token");
      const token: AccessToken = {
        token: result.accessToken,
        resource: resourceOf(host),
        expiresOn: result.expiresOn,
        roles: readClaims(result.accessToken).roles ?? [],
      };
      this.lastToken.set(kind, token);
      this.setState(kind, { ok: true, expiresOn: token.expiresOn });
      for (const l of this.requestListeners)
        l(kind, { ok: true, fromCache: result.fromCache, expiresOn: token.expiresOn });
      return token;
    } catch (err) {
      const error = await this.explain(err);
      this.setState(kind, { ok: false, error });
      for (const l of this.requestListeners) l(kind, { ok: false, error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * MSAL reports a refused OpenID metadata request (unknown tenant, AADSTS90002) only as
   * endpoints_resolution_error; asking the same URL ourselves recovers Entra ID's own reason.
   */
  private async explain(err: unknown): Promise<TokenError> {
    const { authorityHost } = this.settings.cloud;
    const first = explainTokenFailure(err, authorityHost);
    if (first.code === "AADSTS65001" || first.code === "AADSTS50034") {
      // Both are fixed on the consent page: give the link with the hint.
      return new TokenError({ ...first, hint: `${first.hint} Consent link: ${this.consentUrl()}` });
    }
    if (first.code !== "endpoints_resolution_error") return first;
    const url = `https://${authorityHost}/${encodeURIComponent(this.settings.tenant)}/v2.0/.well-known/openid-configuration`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
      const body = (await res.json().catch(() => ({}))) as { error_description?: string; error_codes?: number[] };
      if (!res.ok && body.error_description) {
        return explainTokenFailure({ errorMessage: body.error_description, status: res.status }, authorityHost);
      }
      return first;
    } catch (probeErr) {
      return explainTokenFailure({ errorCode: "network_error", message: describeCause(probeErr) }, authorityHost);
    }
  }

  private checkRole(token: AccessToken, role: string): AccessToken {
    if (token.roles.includes(role)) return token;
    throw missingRoleError(role, token.resource, this.consentUrl());
  }

  private setState(kind: ResourceKind, state: TokenState): void {
    const before = this.states.get(kind);
    this.states.set(kind, state);
    const changed =
      !before || before.ok !== state.ok || (!before.ok && !state.ok && before.error.code !== state.error.code);
    if (changed) for (const l of this.listeners) l(kind, state);
  }
}

function describeCause(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  return [e.message, e.cause?.code, e.cause?.message].filter(Boolean).join(": ");
}

export function adminConsentUrl(authorityHost: string, tenant: string, clientId: string): string {
  const q = new URLSearchParams({ client_id: clientId, state: "alarm-gateway" });
  return `https://${authorityHost}/${encodeURIComponent(tenant)}/adminconsent?${q.toString()}`;
}

function msalConfiguration(settings: OAuthSettings, log: TokenProviderOptions["log"]): Configuration {
  const { cloud, credential } = settings;
  const auth: Configuration["auth"] = {
    clientId: settings.clientId,
    authority: `https://${cloud.authorityHost}/${settings.tenant}`,
  };
  // A custom authority is not in MSAL's list of Microsoft hosts: naming it as known skips the
  // instance-discovery call to login.microsoftonline.com that would otherwise fail.
  if (settings.cloudName === "custom") auth.knownAuthorities = [cloud.authorityHost];
  if (credential.kind === "secret") auth.clientSecret = credential.secret;
  else {
    auth.clientCertificate =
      credential.thumbprint.length === 64
        ? { thumbprintSha256: credential.thumbprint, privateKey: credential.privateKey }
        : { thumbprint: credential.thumbprint, privateKey: credential.privateKey };
  }
  return {
    auth,
    system: {
      loggerOptions: {
        piiLoggingEnabled: false,
        // Warnings are noise for client credentials (e.g. "No client info in response"); failures are explained by us.
        logLevel: LogLevel.Error,
        loggerCallback: (level, message) => {
          if (level === LogLevel.Error) log?.("error", message);
          else if (level === LogLevel.Warning) log?.("warn", message);
        },
      },
    },
  };
}
