// The Test button's mailbox checks: with the app's own token, open the mailbox the way the
// email-connector will (IMAP XOAUTH2, or Microsoft Graph) and, when Exchange refuses, say
// exactly what an Exchange administrator must run, with this app's ids filled in (../shared/o365.md).
import { randomBytes } from "node:crypto";
import { explain as explainGraphError } from "../graph/graph-api";
import { ImapLoginError, openImap } from "../mail/imap-login";
import { REQUIRED_ROLES } from "./cloud";
import type { DiagnosisCheck, MailTransport } from "./diagnosis-check";
import type { OAuthSettings } from "./settings";
import type { AccessToken, TokenProvider } from "./token-provider";

export type { MailTransport } from "./diagnosis-check";

export const MAILBOX_PATTERN = /^[^@\s/\\?#]+@[^@\s/\\?#]+\.[^@\s/\\?#]+$/;

/** Check id of the mailbox login over a transport. */
export const mailboxCheckId = (transport: MailTransport) => `mailbox-${transport}`;

/**
 * App-only tokens carry the object id of the app's service principal (its Enterprise application)
 * in `oid`: the very id New-ServicePrincipal and Add-MailboxPermission ask for.
 */
export function servicePrincipalIdOf(token: string): string | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const oid = (JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as { oid?: unknown }).oid;
    return typeof oid === "string" && /^[0-9a-f-]{36}$/i.test(oid) ? oid : undefined;
  } catch {
    return undefined;
  }
}

/** The two Exchange Online PowerShell commands that let an app into a mailbox over IMAP. */
export function exchangeServicePrincipalCommands(clientId: string, mailbox: string, objectId?: string): string[] {
  const sp = objectId ?? "<object id of the Enterprise application>";
  return [
    `New-ServicePrincipal -AppId ${clientId} -ObjectId ${sp}`,
    `Add-MailboxPermission -Identity ${mailbox} -User ${sp} -AccessRights FullAccess`,
  ];
}

export interface MailboxCheckOptions {
  timeoutMs: number;
}

/** Logs in over IMAP (SASL XOAUTH2) as the mailbox and opens INBOX read-only. */
export async function checkImapMailbox(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  opts: MailboxCheckOptions,
): Promise<DiagnosisCheck> {
  const id = mailboxCheckId("imap");
  const label = `Exchange service principal / mailbox permission (IMAP, ${mailbox})`;
  const [host = "", portText] = settings.cloud.outlookHost.split(":");
  const port = Number(portText ?? 993) || 993;
  let objectId: string | undefined;
  const remember = (t: AccessToken) => {
    objectId = servicePrincipalIdOf(t.token) ?? objectId;
    return t.token;
  };
  const tokens = {
    get: () => provider.getToken("outlook").then(remember),
    renewAfterRejection: (rejected: string) => provider.renewAfterRejection("outlook", rejected).then(remember),
  };
  const opening = openImap({ host, port, mailbox }, tokens);
  let client: Awaited<typeof opening> | undefined;
  try {
    client = await withTimeout(opening, opts.timeoutMs, `no answer from ${host}:${port}`);
    const inbox = await withTimeout(
      client.mailboxOpen("INBOX", { readOnly: true }),
      opts.timeoutMs,
      "INBOX not opened",
    );
    return {
      id,
      label,
      state: "pass",
      transport: "imap",
      detail: `signed in to ${mailbox} over IMAP (XOAUTH2) and opened INBOX read-only: ${inbox.exists} messages`,
    };
  } catch (err) {
    if (err instanceof ImapLoginError && err.permanent) {
      return {
        id,
        label,
        state: "fail",
        transport: "imap",
        detail: `Exchange refused the IMAP login for ${mailbox} although the token carries IMAP.AccessAsApp`,
        fix:
          "Exchange Online does not know this app, or the app has no permission on this mailbox. An Exchange " +
          "administrator runs these commands in Exchange Online PowerShell (Connect-ExchangeOnline), using the " +
          "Object ID of the Enterprise application, not of the App registration" +
          (objectId ? ` (${objectId}, read from the app's token)` : "") +
          `. Also check that ${mailbox} is the mailbox's primary address.`,
        commands: exchangeServicePrincipalCommands(settings.clientId, mailbox, objectId),
      };
    }
    const message = err instanceof Error ? err.message : String(err);
    return {
      id,
      label: `IMAP connection to ${settings.cloud.outlookHost}`,
      state: "fail",
      transport: "imap",
      detail: message,
      fix: /certificate|TLS/i.test(message)
        ? "A proxy inspects TLS: trust its CA (NODE_EXTRA_CA_CERTS, or the connector's Extra CA); verification stays on."
        : `Check DNS, firewall and proxy for ${host} port ${port} (IMAP over TLS), and the Outlook/IMAP host of the cloud.`,
    };
  } finally {
    if (client) await client.logout().catch(() => client?.close());
    // A login that outlived the timeout must not leave a connection behind.
    else opening.then((late) => late.close()).catch(() => undefined);
  }
}

interface GraphErrorBody {
  error?: { code?: string; message?: string };
}

/** Reads the mailbox's Inbox folder over Microsoft Graph with the app's Graph token. */
export async function checkGraphMailbox(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  opts: MailboxCheckOptions,
): Promise<DiagnosisCheck> {
  const id = mailboxCheckId("graph");
  const label = `Mailbox access over Graph (${mailbox})`;
  const host = settings.cloud.graphHost;
  const url = `https://${host}/v1.0/users/${encodeURIComponent(mailbox)}/mailFolders/inbox?$select=displayName,totalItemCount,unreadItemCount`;
  let status: number;
  let body: unknown;
  try {
    const token = await provider.getToken("graph");
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${token.token}`, Accept: "application/json" },
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    status = res.status;
    body = await res.json().catch(() => ({}));
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const message = [err instanceof Error ? err.message : String(err), cause?.code, cause?.message]
      .filter(Boolean)
      .join(": ");
    return {
      id,
      label: `Connection to https://${host}`,
      state: "fail",
      transport: "graph",
      detail: message,
      fix: /certificate|self.signed|unable to verify/i.test(message)
        ? "A proxy inspects TLS: trust its CA with NODE_EXTRA_CA_CERTS; verification stays on."
        : `Check DNS, firewall and proxy for https://${host}, and the Graph host of the cloud.`,
    };
  }
  const error = (body as GraphErrorBody).error ?? {};
  const said = error.code ? `${status} ${error.code}: ${error.message ?? ""}`.trim() : `HTTP ${status}`;
  if (status === 200) {
    const folder = body as { totalItemCount?: number; unreadItemCount?: number };
    return {
      id,
      label,
      state: "pass",
      transport: "graph",
      detail: `read the Inbox of ${mailbox}: ${folder.totalItemCount ?? "?"} messages, ${folder.unreadItemCount ?? "?"} unread`,
    };
  }
  const fail = (detail: string, fix: string, commands?: string[]): DiagnosisCheck => ({
    id,
    label,
    state: "fail",
    transport: "graph",
    detail,
    fix,
    commands,
  });
  if (status === 403 && error.code === "ErrorAccessDenied") {
    // Two Exchange features limit app-only access to some mailboxes, and either may exclude this one:
    // Application Access Policies (Test-ApplicationAccessPolicy) and their successor, RBAC for
    // Applications (Test-ServicePrincipalAuthorization; learn.microsoft.com/exchange/permissions-exo/application-rbac).
    return fail(
      `Graph denied access to ${mailbox} (${said})`,
      `The app holds ${REQUIRED_ROLES.graphRead.role}, but Exchange limits which mailboxes it may read, and ` +
        `${mailbox} is outside that scope. Two features do this: an Application Access Policy (the first command ` +
        "says AccessCheckResult Denied: add the mailbox to the policy's security group) and RBAC for Applications " +
        "(the second command lists the app's role assignments; InScope False for Mail.ReadWrite: widen the " +
        "management scope). An Exchange administrator runs them in Exchange Online PowerShell.",
      [
        `Test-ApplicationAccessPolicy -Identity ${mailbox} -AppId ${settings.clientId}`,
        `Test-ServicePrincipalAuthorization -Identity ${settings.clientId} -Resource ${mailbox}`,
      ],
    );
  }
  if (status === 403) {
    return fail(
      `Graph refused the request (${said})`,
      `Grant the application permission ${REQUIRED_ROLES.graphRead.role} (Microsoft Graph) and admin consent.`,
    );
  }
  if (status === 404 && error.code === "MailboxNotEnabledForRESTAPI") {
    return fail(
      `${mailbox} has no Exchange Online mailbox (${said})`,
      "The user exists but its mailbox is inactive, unlicensed or on-premises: use a cloud mailbox.",
    );
  }
  if (status === 404) {
    return fail(
      `Graph knows no mailbox ${mailbox} (${said})`,
      "Check the address: the mailbox's user principal name or primary SMTP address, in this tenant.",
    );
  }
  if (status === 401) {
    return fail(
      `Graph refused the token (${said})`,
      "The token's audience or tenant does not match this Graph host: check the cloud choice (or the custom Graph host).",
    );
  }
  // Throttling, outages and the rest: said the way the Graph transport says it at run time.
  const explained = explainGraphError(status, error.code ?? String(status), error.message ?? "", url);
  return {
    id,
    label,
    state: status === 429 || status >= 500 ? "warn" : "fail",
    transport: "graph",
    detail: explained.message,
    fix: explained.hint || undefined,
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Shared mode: the gateways create the coordination folder and a claim folder in it. Creates (when
 * missing) the coordination folder and a test child folder in it, then deletes what it created.
 */
export async function checkSharedFolder(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  transport: MailTransport,
  baseFolder: string,
  opts: MailboxCheckOptions,
): Promise<DiagnosisCheck> {
  const id = `shared-folder-${transport}`;
  const label = `Coordination folder "${baseFolder}" (${transport === "imap" ? "IMAP" : "Graph"}, shared mailbox)`;
  const child = `gateway-test-${randomBytes(4).toString("hex")}`;
  try {
    const made = await withTimeout(
      transport === "imap"
        ? tryImapFolders(settings, provider, mailbox, baseFolder, child)
        : tryGraphFolders(settings, provider, mailbox, baseFolder, child, opts.timeoutMs),
      opts.timeoutMs,
      "no answer",
    );
    return { id, label, state: "pass", transport, detail: `${made}, created and deleted a test folder in it` };
  } catch (err) {
    return {
      id,
      label,
      state: "fail",
      transport,
      detail: `could not create folders in ${mailbox}: ${err instanceof Error ? err.message : String(err)}`,
      fix:
        `Gateways that share ${mailbox} keep their claims and leases in "${baseFolder}" at the top of the mailbox. ` +
        "Give the app full access to the mailbox (FullAccess for IMAP, Mail.ReadWrite for Graph), check that no " +
        "folder of another kind has that name, or choose another coordination folder in the email-connector.",
    };
  }
}

async function tryImapFolders(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  base: string,
  child: string,
): Promise<string> {
  const [host = "", portText] = settings.cloud.outlookHost.split(":");
  const tokens = {
    get: () => provider.getToken("outlook").then((t) => t.token),
    renewAfterRejection: (rejected: string) => provider.renewAfterRejection("outlook", rejected).then((t) => t.token),
  };
  const client = await openImap({ host, port: Number(portText ?? 993) || 993, mailbox }, tokens);
  try {
    const existing = (await client.list()).find((f) => f.path === base);
    const delimiter = existing?.delimiter ?? (await client.list()).find((f) => f.delimiter)?.delimiter ?? "/";
    if (!existing) await client.mailboxCreate(base);
    const path = `${base}${delimiter}${child}`;
    await client.mailboxCreate(path);
    await client.mailboxDelete(path);
    if (!existing) await client.mailboxDelete(base);
    return existing ? "exists" : "can be created";
  } finally {
    await client.logout().catch(() => client.close());
  }
}

async function tryGraphFolders(
  settings: OAuthSettings,
  provider: TokenProvider,
  mailbox: string,
  base: string,
  child: string,
  timeoutMs: number,
): Promise<string> {
  const root = `https://${settings.cloud.graphHost}/v1.0/users/${encodeURIComponent(mailbox)}/mailFolders`;
  const call = async (method: string, url: string, body?: object) => {
    const token = await provider.getToken("graph");
    const res = await fetch(url, {
      method,
      headers: {
        Authorization: `Bearer ${token.token}`,
        Accept: "application/json",
        "Content-Type": "application/json",
      },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const json = (await res.json().catch(() => ({}))) as { id?: string; value?: { id: string }[] } & GraphErrorBody;
    if (!res.ok)
      throw new Error(`${method} answered ${res.status} ${json.error?.code ?? ""} ${json.error?.message ?? ""}`.trim());
    return json;
  };
  const filter = `?$filter=${encodeURIComponent(`displayName eq '${base.replace(/'/g, "''")}'`)}`;
  const found = (await call("GET", `${root}${filter}`)).value?.[0]?.id;
  const baseId = found ?? (await call("POST", root, { displayName: base })).id;
  if (!baseId) throw new Error("Graph returned no folder id");
  const testId = (await call("POST", `${root}/${baseId}/childFolders`, { displayName: child })).id;
  if (testId) await call("DELETE", `${root}/${testId}`);
  if (!found) await call("DELETE", `${root}/${baseId}`);
  return found ? "exists" : "can be created";
}
