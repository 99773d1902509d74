// A local stand-in for Entra ID's v2.0 token endpoint, client-credentials grant only.
// It follows Microsoft's documented wire behaviour (URLs, JSON shapes, AADSTS codes) so
// that production code reaches it only through the "custom cloud" authority setting.
// Test and demo use only: never imported by runtime code.
import { randomUUID, X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { decodeProtectedHeader, exportJWK, exportSPKI, generateKeyPair, importX509, jwtVerify, SignJWT } from "jose";
import type { TestCertificates } from "./certs";

export interface AppRegistration {
  clientId: string;
  /** Secret value; `secretExpired` makes it answer AADSTS7000222 like an expired secret. */
  secret?: string;
  secretExpired?: boolean;
  /** PEM certificate uploaded to the app (for client assertions). */
  certificatePem?: string;
  /** Application permissions granted by admin consent, per resource (audience), e.g. outlook → IMAP.AccessAsApp. */
  roles: Record<string, string[]>;
  /** Object id of the enterprise application (service principal). */
  servicePrincipalId?: string;
}

export interface TenantRegistration {
  id: string;
  domains: string[];
  apps: AppRegistration[];
}

/** Failures the stand-in can be told to produce for every token request until cleared. */
export type InjectedFailure =
  | { kind: "server-error" } // HTTP 500 with an AADSTS-shaped body
  | { kind: "timeout" } // accept the request and never answer
  | { kind: "conditional-access" } // AADSTS53003
  | { kind: "consent-required" } // AADSTS65001: no admin consent for the app in this tenant
  | { kind: "account-not-found" } // AADSTS50034: the account is not in this tenant's directory
  | { kind: "throttled"; retryAfterSeconds: number } // HTTP 429 with Retry-After
  | { kind: "expired-token" } // a token whose exp has passed (a skewed clock), expires_in as usual
  | { kind: "foreign-key" }; // a token signed with a key the resource server does not trust (forged)

export interface EntraStandinOptions {
  certs: TestCertificates;
  tenants: TenantRegistration[];
  /** Token lifetime (expires_in). MSAL renews 300 s before expiry, so > 300 to see caching. */
  tokenLifetimeSeconds?: number;
  port?: number;
  /** Resources (audiences) this cloud knows, e.g. https://outlook.office365.com; others answer AADSTS500011. */
  resources: string[];
}

export interface TokenRequestRecord {
  tenant: string;
  clientId: string;
  scope: string;
  status: number;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class EntraStandin {
  readonly kid = "standin-key-1";
  publicKeyPem = "";
  host = "";
  tokenLifetimeSeconds: number;
  readonly requests: TokenRequestRecord[] = [];
  private failure: InjectedFailure | undefined;
  private server: Server | undefined;
  private privateKey: CryptoKey | undefined;
  private jwks: object = { keys: [] };
  private readonly sockets = new Set<Socket>();

  constructor(private readonly options: EntraStandinOptions) {
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3599;
  }

  /** Issuer of access tokens, as Entra ID v1 access tokens carry it (what Exchange validates). */
  issuer(tenantId: string): string {
    return `https://sts.windows.net/${tenantId}/`;
  }

  get tokenRequestCount(): number {
    return this.requests.length;
  }

  failWith(failure: InjectedFailure | undefined): void {
    this.failure = failure;
  }

  async start(): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    this.privateKey = privateKey;
    this.publicKeyPem = await exportSPKI(publicKey);
    this.jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: this.kid, use: "sig", alg: "RS256" }] };
    const server = createServer({ cert: this.options.certs.cert, key: this.options.certs.key }, (req, res) => {
      this.route(req, res).catch((err: unknown) => {
        sendJson(res, 500, { error: "server_error", error_description: String(err) });
      });
    });
    server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.options.port ?? 0, "127.0.0.1", resolve));
    this.server = server;
    this.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Signs a token like the endpoint would; tests use it to forge expired or foreign tokens. */
  async mintToken(claims: Record<string, unknown>, lifetimeSeconds = this.tokenLifetimeSeconds): Promise<string> {
    if (!this.privateKey) throw new Error("stand-in not started");
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ver: "1.0", iat: now, nbf: now - 5, exp: now + lifetimeSeconds, ...claims })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.kid })
      .sign(this.privateKey);
  }

  private async mintForged(claims: Record<string, unknown>): Promise<string> {
    const { privateKey } = await generateKeyPair("RS256");
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ver: "1.0", iat: now, nbf: now - 5, exp: now + this.tokenLifetimeSeconds, ...claims })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.kid })
      .sign(privateKey);
  }

  private findTenant(segment: string): TenantRegistration | undefined {
    const s = segment.toLowerCase();
    return this.options.tenants.find((t) => t.id.toLowerCase() === s || t.domains.includes(s));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `https://${this.host}`);
    const parts = url.pathname.split("/").filter(Boolean);
    if (req.method === "GET" && url.pathname === "/common/discovery/instance") {
      return sendJson(res, 200, this.instanceDiscovery());
    }
    const tenantSegment = parts[0] ?? "";
    const rest = parts.slice(1).join("/");
    if (req.method === "GET" && rest === "v2.0/.well-known/openid-configuration") {
      const tenant = this.findTenant(tenantSegment);
      if (!tenant) return this.sendTenantError(res, tenantSegment);
      return sendJson(res, 200, this.openIdConfiguration(tenant.id));
    }
    if (req.method === "GET" && rest === "discovery/v2.0/keys") return sendJson(res, 200, this.jwks);
    if (req.method === "POST" && rest === "oauth2/v2.0/token") return this.token(req, res, tenantSegment);
    sendJson(res, 404, { error: "not_found", error_description: `no route ${req.method} ${url.pathname}` });
  }

  private instanceDiscovery(): object {
    return {
      tenant_discovery_endpoint: `https://${this.host}/{tenant}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: this.host, preferred_cache: this.host, aliases: [this.host] }],
    };
  }

  private openIdConfiguration(tenantId: string): object {
    const base = `https://${this.host}/${tenantId}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `https://${this.host}/${tenantId}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `https://${this.host}/${tenantId}/v2.0`,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      tenant_region_scope: "EU",
      cloud_instance_name: "standin.local",
    };
  }

  private sendTenantError(res: ServerResponse, segment: string): void {
    if (!GUID.test(segment) && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(segment)) {
      sendAadError(
        res,
        400,
        "invalid_request",
        900023,
        `Specified tenant identifier '${segment}' is neither a valid DNS name, nor a valid external domain.`,
      );
      return;
    }
    sendAadError(
      res,
      400,
      "invalid_tenant",
      90002,
      `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    );
  }

  private async token(req: IncomingMessage, res: ServerResponse, tenantSegment: string): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const clientId = form.get("client_id") ?? "";
    const scope = form.get("scope") ?? "";
    const record: TokenRequestRecord = { tenant: tenantSegment, clientId, scope, status: 0 };
    this.requests.push(record);
    const answer = (status: number) => {
      record.status = status;
    };
    const failure = this.failure;
    if (failure?.kind === "timeout") return answer(0); // never respond
    if (failure?.kind === "server-error") {
      answer(500);
      return sendAadError(
        res,
        500,
        "temporarily_unavailable",
        50000,
        "There was an error issuing a token or an issue with our sign-in service.",
      );
    }
    if (failure?.kind === "throttled") {
      answer(429);
      res.setHeader("Retry-After", String(failure.retryAfterSeconds));
      return sendAadError(
        res,
        429,
        "temporarily_unavailable",
        50196,
        "The server terminated an operation because it encountered a client request loop.",
      );
    }
    const tenant = this.findTenant(tenantSegment);
    if (!tenant) {
      answer(400);
      return this.sendTenantError(res, tenantSegment);
    }
    if (form.get("grant_type") !== "client_credentials") {
      answer(400);
      return sendAadError(res, 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    }
    const app = tenant.apps.find((a) => a.clientId.toLowerCase() === clientId.toLowerCase());
    if (!app) {
      answer(400);
      return sendAadError(
        res,
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant.domains[0] ?? tenant.id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    const credentialProblem = await this.checkClientCredential(app, form, tenant.id);
    if (credentialProblem) {
      answer(401);
      return sendAadError(res, 401, "invalid_client", credentialProblem.code, credentialProblem.text);
    }
    if (failure?.kind === "consent-required") {
      answer(400);
      return sendAadError(
        res,
        400,
        "invalid_grant",
        65001,
        `The user or administrator has not consented to use the application with ID '${app.clientId}' named 'Alarm gateway'. Send an interactive authorization request for this user and resource.`,
      );
    }
    if (failure?.kind === "account-not-found") {
      answer(400);
      return sendAadError(
        res,
        400,
        "invalid_grant",
        50034,
        `The user account {EUII Hidden} does not exist in the ${tenant.domains[0] ?? tenant.id} directory. To sign into this application, the account must be added to the directory.`,
      );
    }
    if (failure?.kind === "conditional-access") {
      answer(400);
      return sendAadError(
        res,
        400,
        "invalid_grant",
        53003,
        "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
      );
    }
    const resource = scope.endsWith("/.default") ? scope.slice(0, -"/.default".length) : undefined;
    if (!resource || scope.includes(" ")) {
      answer(400);
      return sendAadError(
        res,
        400,
        "invalid_scope",
        70011,
        `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
      );
    }
    if (!this.options.resources.includes(resource)) {
      answer(400);
      return sendAadError(
        res,
        400,
        "invalid_resource",
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${tenant.domains[0] ?? tenant.id}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      );
    }
    const oid = app.servicePrincipalId ?? randomUUID();
    const roles = app.roles[resource];
    const claims: Record<string, unknown> = {
      aud: resource,
      iss: this.issuer(tenant.id),
      aio: randomUUID(),
      app_displayname: "Alarm gateway",
      appid: app.clientId,
      appidacr: form.has("client_assertion") ? "2" : "1",
      idp: this.issuer(tenant.id),
      idtyp: "app",
      oid,
      sub: oid,
      tid: tenant.id,
      uti: randomUUID().replace(/-/g, ""),
    };
    if (roles && roles.length > 0) claims.roles = roles;
    const accessToken =
      failure?.kind === "expired-token"
        ? await this.mintToken(
            { ...claims, iat: Math.floor(Date.now() / 1000) - 7200, nbf: Math.floor(Date.now() / 1000) - 7200 },
            -3600,
          )
        : failure?.kind === "foreign-key"
          ? await this.mintForged(claims)
          : await this.mintToken(claims);
    answer(200);
    sendJson(res, 200, {
      token_type: "Bearer",
      expires_in: this.tokenLifetimeSeconds,
      ext_expires_in: this.tokenLifetimeSeconds,
      access_token: accessToken,
    });
  }

  private async checkClientCredential(
    app: AppRegistration,
    form: URLSearchParams,
    tenantId: string,
  ): Promise<{ code: number; text: string } | undefined> {
    const assertion = form.get("client_assertion");
    if (assertion) {
      if (!app.certificatePem) {
        return {
          code: 700027,
          text: "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: 'unknown']",
        };
      }
      try {
        // MSAL signs with PS256 when given a SHA-256 thumbprint, RS256 with a SHA-1 one.
        const { alg } = decodeProtectedHeader(assertion);
        if (alg !== "RS256" && alg !== "PS256") throw new Error(`unsupported alg ${alg}`);
        const key = await importX509(app.certificatePem, alg);
        // Entra ID tolerates 5 minutes of clock skew; MSAL rounds iat/nbf to the nearest second.
        const { payload } = await jwtVerify(assertion, key, { algorithms: [alg], clockTolerance: 300 });
        if (payload.iss !== app.clientId || payload.sub !== app.clientId) {
          return { code: 700023, text: "Client assertion audience claim does not match Realm issuer." };
        }
        const aud = String(payload.aud ?? "");
        if (!aud.includes(tenantId) && !aud.includes(this.host)) {
          return { code: 700021, text: `Client assertion application identifier doesn't match 'client_id' parameter.` };
        }
        return undefined;
      } catch (err) {
        if (process.env.STANDIN_DEBUG) console.error("client assertion refused:", err);
        const thumb = new X509Certificate(app.certificatePem).fingerprint256.replace(/:/g, "");
        return {
          code: 700027,
          text: `Client assertion contains an invalid signature. [Reason - The key used is expired or does not match the certificate uploaded to the application (expected SHA-256 thumbprint ${thumb}).]`,
        };
      }
    }
    const secret = form.get("client_secret");
    if (!secret) {
      return {
        code: 7000218,
        text: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      };
    }
    if (secret !== app.secret) {
      return {
        code: 7000215,
        text: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
      };
    }
    if (app.secretExpired) {
      return {
        code: 7000222,
        text: `The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app.`,
      };
    }
    return undefined;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Entra ID's error body: AADSTS code in the description, plus error_codes, trace and correlation ids. */
function sendAadError(res: ServerResponse, status: number, error: string, code: number, text: string): void {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
  sendJson(res, status, {
    error,
    error_description: `AADSTS${code}: ${text} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  });
}
