// What the editor's Test button reports: a checklist, each line with the exact fix. Token and
// roles first; then, given a mailbox, the login the email-connector will make (IMAP and/or Graph).
import { hostOf, REQUIRED_ROLES, type ResourceKind, resourceOf } from "./cloud";
import type { DiagnosisCheck, MailTransport } from "./diagnosis-check";
import {
  checkGraphMailbox,
  checkImapMailbox,
  checkSharedFolder,
  MAILBOX_PATTERN,
  mailboxCheckId,
} from "./mailbox-checks";
import type { CredentialDestination, OAuthSettings } from "./settings";
import { TokenError } from "./token-errors";
import { adminConsentUrl, TokenProvider } from "./token-provider";

export type { CheckState, DiagnosisCheck } from "./diagnosis-check";

export interface Diagnosis {
  ok: boolean;
  checks: DiagnosisCheck[];
  consentUrl?: string;
}

export interface DiagnosisOptions {
  timeoutMs?: number;
  /** Mailbox to log in to; without it only tokens and roles are checked. */
  mailbox?: string;
  /** Transports the gateway uses (default: both): the other one's problems are warnings. */
  transports?: MailTransport[];
  /** A connector shares the mailbox: its coordination folder must be creatable (checked after a good login). */
  sharedFolder?: string;
}

export function invalidSettingsDiagnosis(problems: string[]): Diagnosis {
  return {
    ok: false,
    checks: problems.map((p, i) => ({ id: `settings-${i}`, label: "Settings", state: "fail", detail: p })),
  };
}

/**
 * The Test asked for other hosts or another tenant than the deployed node's, without a secret of its
 * own: the stored one is only ever sent where it was saved for (issue #20), so nothing is sent.
 */
export function storedCredentialWithheldDiagnosis(
  savedFor: CredentialDestination,
  asked: CredentialDestination,
): Diagnosis {
  const changed = [
    savedFor.tenant !== asked.tenant ? `tenant ${savedFor.tenant} → ${asked.tenant || "(empty)"}` : "",
    ...(["authorityHost", "outlookHost", "graphHost"] as const).map((k) =>
      savedFor[k] !== asked[k] ? `${HOST_LABEL[k]} ${savedFor[k]} → ${asked[k] || "(empty)"}` : "",
    ),
  ].filter(Boolean);
  return {
    ok: false,
    checks: [
      {
        id: "stored-credential",
        label: "Stored secret",
        state: "fail",
        detail: `not sent: these settings differ from the deployed node's (${changed.join("; ")})`,
        fix:
          "The stored client secret or private key is only sent to the tenant and hosts it was saved with. " +
          "Enter it again to test these settings, or deploy them first.",
      },
    ],
  };
}

const HOST_LABEL = { authorityHost: "authority", outlookHost: "Outlook host", graphHost: "Graph host" } as const;

const TRANSPORT_OF: Record<ResourceKind, MailTransport> = { outlook: "imap", graph: "graph" };
const ROLE_TRANSPORT: Record<keyof typeof REQUIRED_ROLES, MailTransport> = {
  imap: "imap",
  graphRead: "graph",
  graphSend: "graph",
};

/** Acquires a token per resource with a throw-away MSAL application, checks the roles, then the mailbox. */
export async function diagnoseOAuth(settings: OAuthSettings, options: DiagnosisOptions = {}): Promise<Diagnosis> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const transports = options.transports?.length ? options.transports : (["imap", "graph"] as MailTransport[]);
  const provider = new TokenProvider(settings, { timeoutMs });
  const consentUrl = adminConsentUrl(settings.cloud.authorityHost, settings.tenant, settings.clientId);
  const checks: DiagnosisCheck[] = [];
  const roles = new Map<ResourceKind, string[] | TokenError>();
  for (const kind of ["outlook", "graph"] as const) {
    const resource = resourceOf(hostOf(settings.cloud, kind));
    const transport = TRANSPORT_OF[kind];
    try {
      const token = await provider.getToken(kind);
      roles.set(kind, token.roles);
      checks.push({ id: `token-${kind}`, label: `Token for ${resource}`, state: "pass", detail: "issued", transport });
    } catch (err) {
      const e =
        err instanceof TokenError
          ? err
          : new TokenError({ code: "unknown", summary: String(err), hint: "", transient: true });
      roles.set(kind, e);
      checks.push({
        id: `token-${kind}`,
        label: `Token for ${resource}`,
        state: "fail",
        detail: e.statusText,
        fix: e.hint,
        transport,
      });
      // The same credential problem fails every resource alike: one line says it.
      if (!e.transient && e.code !== "AADSTS500011") break;
    }
  }
  for (const [use, { resource, role }] of Object.entries(REQUIRED_ROLES) as [
    keyof typeof REQUIRED_ROLES,
    (typeof REQUIRED_ROLES)[keyof typeof REQUIRED_ROLES],
  ][]) {
    const granted = roles.get(resource);
    if (!Array.isArray(granted)) continue;
    const ok = granted.includes(role);
    checks.push({
      id: `role-${use}`,
      label: `Permission ${role}`,
      state: ok ? "pass" : use === "graphSend" ? "warn" : "fail",
      detail: ok ? "admin consent granted" : "not granted (admin consent missing)",
      fix: ok
        ? undefined
        : `Add the application permission ${role} to the app registration and have an administrator grant consent with the consent link.`,
      transport: ROLE_TRANSPORT[use],
    });
  }

  const mailbox = options.mailbox?.trim();
  if (mailbox) {
    for (const transport of transports) {
      const login = await mailboxCheck(settings, provider, mailbox, transport, checks, timeoutMs);
      checks.push(login);
      if (options.sharedFolder && login.state === "pass")
        checks.push(
          await checkSharedFolder(settings, provider, mailbox, transport, options.sharedFolder, { timeoutMs }),
        );
    }
  }

  // What only the unused transport needs is worth knowing, not a reason to say "not ready".
  for (const c of checks) {
    if (c.transport && !transports.includes(c.transport) && c.state === "fail") {
      c.state = "warn";
      c.detail += ` (needed only for ${c.transport === "imap" ? "IMAP" : "Graph"})`;
    }
  }
  const ok = checks.every((c) => c.state !== "fail") && checks.some((c) => c.state === "pass");
  return { ok, checks, consentUrl };
}

async function mailboxCheck(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  transport: MailTransport,
  earlier: DiagnosisCheck[],
  timeoutMs: number,
): Promise<DiagnosisCheck> {
  const id = mailboxCheckId(transport);
  const name = transport === "imap" ? "IMAP" : "Graph";
  const label = `Mailbox login over ${name} (${mailbox})`;
  if (!MAILBOX_PATTERN.test(mailbox)) {
    return { id, label, state: "fail", transport, detail: `"${mailbox}" is not an email address` };
  }
  // Exchange refuses a token without the role exactly as it refuses an unknown app: the role line says which.
  const role = transport === "imap" ? REQUIRED_ROLES.imap : REQUIRED_ROLES.graphRead;
  const prerequisite = earlier.find((c) => c.id === `role-${transport === "imap" ? "imap" : "graphRead"}`);
  if (prerequisite?.state !== "pass") {
    return {
      id,
      label,
      state: "skip",
      transport,
      detail: prerequisite
        ? `not tried until ${role.role} is granted`
        : `not tried: no token for ${resourceOf(hostOf(settings.cloud, role.resource))}`,
    };
  }
  return transport === "imap"
    ? checkImapMailbox(settings, provider, mailbox, { timeoutMs })
    : checkGraphMailbox(settings, provider, mailbox, { timeoutMs });
}
