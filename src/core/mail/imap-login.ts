// One authenticated IMAP connection with an app-only token (SASL XOAUTH2). A refused token
// is renewed once (the token may have been revoked or rotated); a second refusal is an error
// that names the usual cause in Exchange.
import { ImapFlow, type ImapFlowOptions } from "imapflow";

export interface ImapEndpoint {
  host: string;
  port: number;
  mailbox: string;
  /** Extra CA certificates (PEM) trusted besides the system's; verification stays on. */
  ca?: string;
}

export interface TokenSource {
  get(): Promise<string>;
  renewAfterRejection(rejected: string): Promise<string>;
}

export class ImapLoginError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = "ImapLoginError";
  }
}

/** imapflow's extra error fields. */
interface ImapFlowError {
  authenticationFailed?: boolean;
  serverResponseCode?: string;
  responseText?: string;
  code?: string;
  message?: string;
}

export function imapOptions(endpoint: ImapEndpoint, accessToken: string): ImapFlowOptions {
  return {
    host: endpoint.host,
    port: endpoint.port,
    secure: true,
    servername: /^[\d.]+$/.test(endpoint.host) ? undefined : endpoint.host,
    auth: { user: endpoint.mailbox, accessToken },
    tls: endpoint.ca ? { ca: endpoint.ca, rejectUnauthorized: true } : { rejectUnauthorized: true },
    logger: false,
    // Office 365 may stop notifying a long IDLE: restart it well within its 30-minute limit.
    maxIdleTime: 25 * 60_000,
    // Enter IDLE almost at once after each command: pickup latency is Dovecot's/Exchange's delay only.
    autoIdleDelay: 100,
    connectionTimeout: 15_000,
    greetingTimeout: 10_000,
    // ENABLE nothing: the connector uses IMAP4rev1 alone (no CONDSTORE, UTF8=ACCEPT, QRESYNC), and
    // Exchange tenants that advertise `ENABLE IMAP4rev2` answer SEARCH wrongly once it is enabled
    // (MailKit #2016), which would hide unread emails. ENABLE cannot be undone (RFC 5161).
    disableAutoEnable: true,
    // Also keeps imapflow's own rev2 behaviour off where IMAP4rev2 is merely advertised (LIST RETURN).
    disableIMAP4rev2: true,
  };
}

export async function openImap(endpoint: ImapEndpoint, tokens: TokenSource): Promise<ImapFlow> {
  let token = await tokens.get();
  for (let attempt = 0; ; attempt++) {
    const client = new ImapFlow(imapOptions(endpoint, token));
    client.on("error", () => {
      // surfaced through 'close' and rejected commands; an unhandled 'error' would crash Node-RED
    });
    try {
      await client.connect();
      return client;
    } catch (err) {
      client.close();
      const e = err as ImapFlowError;
      if (!e.authenticationFailed) throw new ImapLoginError(describeConnectError(e, endpoint), false);
      if (attempt === 0) {
        token = await tokens.renewAfterRejection(token);
        continue;
      }
      throw new ImapLoginError(
        `IMAP login refused for ${endpoint.mailbox} (${e.serverResponseCode ?? "AUTHENTICATE failed"}). ` +
          "If the token has IMAP.AccessAsApp, Exchange does not know the app or its mailbox permission: " +
          "run New-ServicePrincipal and Add-MailboxPermission (see the config node's help).",
        true,
      );
    }
  }
}

function describeConnectError(e: ImapFlowError, endpoint: ImapEndpoint): string {
  const where = `${endpoint.host}:${endpoint.port}`;
  const text = `${e.code ?? ""} ${e.message ?? ""}`;
  if (/CERT|certificate|self.signed|unable to verify/i.test(text)) {
    return `TLS certificate of ${where} not trusted (${e.code ?? e.message}): name your proxy's CA in "Extra CA", verification stays on`;
  }
  if (/ECONNREFUSED/.test(text)) return `connection to ${where} refused`;
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return `host ${endpoint.host} not found`;
  if (/timeout|ETIMEDOUT/i.test(text)) return `no answer from ${where}`;
  return `cannot connect to ${where}: ${e.message ?? String(e)}`;
}
