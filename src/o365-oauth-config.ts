// Node-RED adapter for the o365-oauth-config node: owns one TokenProvider and shares it
// with the nodes that use it (the MQTT broker node's pattern: a registry of users whose
// status follows the shared resource).
import type { Node, NodeAPI, NodeDef } from "node-red";
import { TokenHealth } from "./core/health/registry";
import type { ResourceKind } from "./core/oauth/cloud";
import { diagnoseOAuth, invalidSettingsDiagnosis, storedCredentialWithheldDiagnosis } from "./core/oauth/diagnosis";
import type { MailTransport } from "./core/oauth/mailbox-checks";
import {
  type CredentialDestination,
  credentialDestinationOf,
  type OAuthConfigFields,
  type OAuthCredentialFields,
  sameDestination,
  validateOAuthSettings,
} from "./core/oauth/settings";
import { TokenError } from "./core/oauth/token-errors";
import { type AccessToken, TokenProvider, type TokenState } from "./core/oauth/token-provider";
import { DEFAULT_COORDINATION_FOLDER } from "./core/shared/transport";
import { gatewayHealth } from "./health";

export interface OAuthConfigDef extends NodeDef, OAuthConfigFields {}

/** A node that uses the config node; `onTokenState` lets it restore its own status after recovery. */
export interface TokenUser extends Node {
  onTokenState?: (kind: ResourceKind, state: TokenState) => void;
}

export interface O365OAuthConfigNode extends Node<OAuthCredentialFields> {
  getToken(kind: ResourceKind, requiredRole?: string): Promise<AccessToken>;
  renewAfterRejection(kind: ResourceKind, rejected: string, requiredRole?: string): Promise<AccessToken>;
  register(user: TokenUser, kind: ResourceKind): void;
  deregister(user: TokenUser): void;
  /** Exchange Online host (host or host:port): IMAP server and resource of IMAP tokens. */
  outlookHost(): string;
  /** Microsoft Graph host (host or host:port): Graph base URL and resource of Graph tokens. */
  graphHost(): string;
  /** Tenant and hosts the stored credentials were deployed with: the only place they are sent. */
  credentialDestination(): CredentialDestination | undefined;
}

/** Node-RED's placeholder for a password credential the user did not change in the editor. */
const UNCHANGED_PASSWORD = "__PWRD__";

module.exports = (RED: NodeAPI) => {
  function O365OAuthConfig(this: O365OAuthConfigNode, def: OAuthConfigDef) {
    RED.nodes.createNode(this, def);
    const users = new Map<TokenUser, ResourceKind>();
    const validation = validateOAuthSettings(def, this.credentials ?? {});
    let provider: TokenProvider | undefined;
    let configError: TokenError | undefined;
    if (validation.ok) {
      provider = new TokenProvider(validation.settings, {
        log: (level, message) => (level === "error" ? this.error(message) : this.warn(message)),
      });
      const health = new TokenHealth(this.id, def.name ?? "", def.tenant ?? "");
      gatewayHealth.tokens.set(this.id, health);
      this.on("close", () => {
        if (gatewayHealth.tokens.get(this.id) === health) gatewayHealth.tokens.delete(this.id);
      });
      provider.onRequest((kind, result) => {
        if (!result.ok) {
          health.failures++;
          health.lastFailure = { at: Date.now(), text: result.error.message };
          return;
        }
        if (!result.fromCache) health.refreshes++;
        if (result.expiresOn) health.expiresAt.set(kind, result.expiresOn.getTime());
      });
      provider.onStateChange((kind, state) => {
        if (!state.ok) this.error(`Token for ${kind}: ${state.error.message}`);
        for (const [user, userKind] of users) if (userKind === kind) showTokenState(user, kind, state);
      });
    } else {
      configError = new TokenError({
        code: "config",
        summary: "configuration incomplete",
        hint: validation.problems.join(" "),
        transient: false,
      });
      this.error(`Invalid configuration: ${validation.problems.join(" ")}`);
    }

    this.getToken = (kind, requiredRole) =>
      provider ? provider.getToken(kind, requiredRole) : Promise.reject(configError);
    this.renewAfterRejection = (kind, rejected, requiredRole) =>
      provider ? provider.renewAfterRejection(kind, rejected, requiredRole) : Promise.reject(configError);
    this.register = (user, kind) => {
      users.set(user, kind);
      const state: TokenState | undefined = configError ? { ok: false, error: configError } : provider?.state(kind);
      if (state && !state.ok) showTokenState(user, kind, state);
    };
    this.outlookHost = () => (validation.ok ? validation.settings.cloud.outlookHost : "");
    this.graphHost = () => (validation.ok ? validation.settings.cloud.graphHost : "");
    const destination = credentialDestinationOf(def);
    this.credentialDestination = () => destination;
    this.deregister = (user) => {
      users.delete(user);
    };
    this.on("close", (done: () => void) => {
      users.clear();
      done();
    });
  }

  function showTokenState(user: TokenUser, kind: ResourceKind, state: TokenState): void {
    if (!state.ok) user.status({ fill: "red", shape: "ring", text: `token: ${state.error.statusText}` });
    user.onTokenState?.(kind, state);
  }

  RED.nodes.registerType<O365OAuthConfigNode, OAuthConfigDef, object, OAuthCredentialFields>(
    "o365-oauth-config",
    O365OAuthConfig,
    {
      credentials: {
        clientSecret: { type: "password" },
        privateKey: { type: "password" },
        certificate: { type: "text" },
      },
    },
  );

  // The editor's Test button, before or after deploy: the values in the dialog; secrets the user
  // did not retype come from the stored credentials of the deployed node, but only for the tenant and
  // hosts that node was deployed with (otherwise whoever may call this route could have the stored
  // secret sent to a host of their choosing); none is ever sent back.
  RED.httpAdmin.post(
    "/o365-oauth-config/test",
    RED.auth.needsPermission("o365-oauth-config.write"),
    async (req, res) => {
      try {
        const body = (req.body ?? {}) as OAuthConfigFields & {
          id?: string;
          credentials?: OAuthCredentialFields;
          /** Optional: the mailbox to log in to, as the email-connector will. Never stored. */
          mailbox?: string;
          /** "imap", "graph" or "both": what the connectors use. */
          via?: string;
        };
        const given = body.credentials ?? {};
        const retyped = (k: keyof OAuthCredentialFields) => given[k] !== undefined && given[k] !== UNCHANGED_PASSWORD;
        const deployed =
          typeof body.id === "string" ? (RED.nodes.getNode(body.id) as O365OAuthConfigNode | null) : null;
        const savedFor = deployed?.credentialDestination?.();
        const asked = credentialDestinationOf(body);
        const stored = (body.id ? RED.nodes.getCredentials(body.id) : undefined) as OAuthCredentialFields | undefined;
        const storedHere = savedFor !== undefined && asked !== undefined && sameDestination(savedFor, asked);
        const needsStored =
          (body.credentialKind || "secret") === "secret"
            ? !retyped("clientSecret") && !!stored?.clientSecret
            : !retyped("privateKey") && !!stored?.privateKey;
        if (needsStored && !storedHere) {
          res.json(
            savedFor && asked
              ? storedCredentialWithheldDiagnosis(savedFor, asked)
              : invalidSettingsDiagnosis([
                  asked
                    ? "The stored secret belongs to a configuration that is not running: type the secret to test, or deploy first."
                    : `Unknown cloud "${String(body.cloud)}": the stored secret is not sent. Choose a cloud.`,
                ]),
          );
          return;
        }
        const pick = (k: keyof OAuthCredentialFields) => (retyped(k) ? given[k] : storedHere ? stored?.[k] : undefined);
        const creds: OAuthCredentialFields = {
          clientSecret: pick("clientSecret"),
          privateKey: pick("privateKey"),
          certificate: pick("certificate"),
        };
        const validation = validateOAuthSettings(body, creds);
        const diagnosis = validation.ok
          ? await diagnoseOAuth(validation.settings, {
              mailbox: typeof body.mailbox === "string" ? body.mailbox : undefined,
              transports: transportsOf(body.via),
              sharedFolder: typeof body.id === "string" ? sharedFolderOf(RED, body.id) : undefined,
            })
          : invalidSettingsDiagnosis(validation.problems);
        res.json(diagnosis);
      } catch (err) {
        RED.log.error(`o365-oauth-config test failed: ${String(err)}`);
        res.status(500).json({ ok: false, checks: [], error: "The test could not run; see the Node-RED log." });
      }
    },
  );
};

/** The coordination folder of a deployed email-connector that shares its mailbox through this config, if any. */
function sharedFolderOf(RED: NodeAPI, configId: string): string | undefined {
  let folder: string | undefined;
  RED.nodes.eachNode((n) => {
    const c = n as { type: string; oauth?: string; shared?: boolean; sharedFolder?: string };
    if (!folder && c.type === "email-connector" && c.oauth === configId && c.shared)
      folder = c.sharedFolder?.trim() || DEFAULT_COORDINATION_FOLDER;
  });
  return folder;
}

function transportsOf(via: unknown): MailTransport[] | undefined {
  if (via === "imap" || via === "graph") return [via];
  if (via === "both") return ["imap", "graph"];
  return undefined;
}
