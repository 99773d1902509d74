// Entra ID stand-in + real Dovecot wired together as Office 365 would be: the Outlook host of
// the custom cloud is the Dovecot (or a cuttable proxy in front of it), and Dovecot trusts the
// stand-in's signing key for that audience.
import { join } from "node:path";
import { type DovecotOptions, type DovecotServer, startDovecot } from "../standin/dovecot";
import { RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { startTcpProxy, type TcpProxy } from "../standin/tcp-proxy";
import { MAILBOX, startTestTenant, TENANT_ID, type TestTenant } from "./tenant";

export interface MailStack {
  tenant: TestTenant;
  dovecot: DovecotServer;
  proxy?: TcpProxy;
  /** host:port the connector uses (the Outlook host of the custom cloud). */
  outlookHost: string;
  stop(): Promise<void>;
}

export async function startMailStack(
  name: string,
  opts: {
    viaProxy?: boolean;
    lifetimeSeconds?: number;
    extraFolders?: string[];
    /** Graph host of the custom cloud (e.g. a Graph stand-in's host:port) besides Dovecot for IMAP. */
    graphHost?: string;
    certs?: Parameters<typeof startDovecot>[0]["certs"];
    /** What Dovecot advertises (default: Exchange Online's capabilities). */
    capabilities?: DovecotOptions["capabilities"];
    protocolLog?: boolean;
  } = {},
): Promise<MailStack> {
  const imapsPort = await freePort();
  const proxyPort = opts.viaProxy ? await freePort() : undefined;
  const outlookHost = `127.0.0.1:${proxyPort ?? imapsPort}`;
  const tenant = await startTestTenant({
    outlookHost,
    graphHost: opts.graphHost,
    lifetimeSeconds: opts.lifetimeSeconds,
  });
  const dovecot = await startDovecot({
    runDir: join(RUN_DIR, `dovecot-${name}`),
    certs: opts.certs ?? tenant.certs,
    tenantId: TENANT_ID,
    audience: `https://${outlookHost}`,
    signingKeys: [{ kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem }],
    mailboxes: [MAILBOX],
    passwordUsers: [{ user: MAILBOX, password: "password-for-the-anchor" }],
    imapsPort,
    extraFolders: ["Processed", "Review", "Processing", ...(opts.extraFolders ?? [])],
    capabilities: opts.capabilities,
    protocolLog: opts.protocolLog,
  });
  const proxy = proxyPort ? await startTcpProxy(imapsPort, proxyPort) : undefined;
  return {
    tenant,
    dovecot,
    proxy,
    outlookHost,
    async stop() {
      await proxy?.close();
      await dovecot.stop();
      await tenant.stop();
    },
  };
}

let counter = 0;

/** A small alarm email with a unique Message-ID. */
export function alarmEmail(subject: string, body = "123588\r\nBA\r\n1\r\n1\r\n", extraHeaders = ""): string {
  counter++;
  const id = `<alarm-${process.pid}-${Date.now()}-${counter}@camera.contoso.test>`;
  return (
    `From: Camera 7 <camera7@site.contoso.test>\r\nTo: ${MAILBOX}\r\nSubject: ${subject}\r\n` +
    `Message-ID: ${id}\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n${extraHeaders}\r\n${body}`
  );
}
