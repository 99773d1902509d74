// `npm start`: Node-RED with this pack and a demo flow, wired to local stand-ins of
// Microsoft's side (Entra ID token endpoint; the mailbox as Exchange IMAP on a private Dovecot
// when Dovecot is installed and we are root, else as Microsoft Graph), so that nothing but
// this clone and Node is needed. DEMO_MAILBOX=imap|graph chooses. Dev-only: never shipped.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { alarmEmail } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { MAILBOX, startTestTenant, TENANT_ID } from "../test/helpers/tenant";
import { startDc09Receiver } from "../test/standin/dc09-receiver";
import { dovecotAvailable, startDovecot } from "../test/standin/dovecot";
import { GraphStandin } from "../test/standin/graph";
import { REPO_ROOT, RUN_DIR } from "../test/standin/paths";
import { demoFlow } from "./demo-flow";

const PORT = Number(process.env.PORT ?? 1880);
const ENTRA_PORT = 18443;
const IMAPS_PORT = 18993;
const GRAPH_PORT = 18444;
const DEMO_PORT = 18080;
const RECEIVER_PORT = 18090;

/** The mailbox stand-in: where a sample email is dropped, and how to stop it. */
interface Mailbox {
  describe: string;
  drop(raw: string): Promise<string>;
  stop(): Promise<void>;
}

function chooseTransport(): "imap" | "graph" {
  const asked = process.env.DEMO_MAILBOX;
  if (asked === "imap" || asked === "graph") return asked;
  return dovecotAvailable() ? "imap" : "graph";
}

async function main(): Promise<void> {
  const transport = chooseTransport();
  if (transport === "imap" && !dovecotAvailable()) {
    console.error("DEMO_MAILBOX=imap needs Debian's Dovecot: apt-get install -y dovecot-imapd (as root).");
    process.exit(1);
  }
  const userDir = process.env.DEMO_USER_DIR ?? join(REPO_ROOT, ".node-red");
  const outlookHost = `127.0.0.1:${IMAPS_PORT}`;
  const graphHost = `127.0.0.1:${GRAPH_PORT}`;
  const tenant = await startTestTenant({ port: ENTRA_PORT, outlookHost, graphHost });
  let mailbox: Mailbox;
  if (transport === "imap") {
    const dovecot = await startDovecot({
      runDir: join(RUN_DIR, "demo-dovecot"),
      certs: tenant.certs,
      tenantId: TENANT_ID,
      audience: `https://${outlookHost}`,
      signingKeys: [{ kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem }],
      mailboxes: [MAILBOX],
      imapsPort: IMAPS_PORT,
      extraFolders: ["Processed", "Review"],
    });
    mailbox = {
      describe: `IMAP stand-in (Dovecot) ${outlookHost}`,
      drop: (raw) => dovecot.append(MAILBOX, raw).then((uid) => `appended as uid ${uid}`),
      stop: () => dovecot.stop(),
    };
  } else {
    const graph = new GraphStandin({
      certs: tenant.certs,
      signingKey: { kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: graphHost,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review"],
      port: GRAPH_PORT,
    });
    await graph.start();
    mailbox = {
      describe: `Microsoft Graph stand-in https://${graphHost}`,
      drop: async (raw) => `delivered as ${graph.deliver(MAILBOX, raw).id}`,
      stop: () => graph.stop(),
    };
  }
  const receiver = await startDc09Receiver({ behaviour: "ack", tcpPort: RECEIVER_PORT });
  let shown = 0;
  const showReceived = setInterval(() => {
    for (const e of receiver.acked.slice(shown)) {
      console.log(`DC-09 receiver: ${e.frame.id} #${e.frame.account} [${e.frame.data ?? ""}] → ACK`);
    }
    shown = receiver.acked.length;
  }, 500);
  // The stand-in mailbox starts empty each time: so does the connector's memory of it.
  rmSync(join(userDir, "alarm-gateway"), { recursive: true, force: true });
  let sent = 0;
  const page = createServer((req, res) => {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    sent++;
    mailbox
      .drop(alarmEmail(`Alarm ${sent}`, `123588\r\nBA\r\n${sent}\r\n1\r\n`))
      .then((text) => res.end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => page.listen(DEMO_PORT, "127.0.0.1", resolve));

  // The demo flow is deployed on the first run, and again when the mailbox stand-in changed.
  const modeFile = join(userDir, "demo-mailbox");
  const lastMode = existsSync(modeFile) ? readFileSync(modeFile, "utf8").trim() : "";
  const deploy = !existsSync(join(userDir, "flows.json")) || lastMode !== transport;
  const red = await startNodeRed({ userDir, port: PORT, keepUserDir: true });
  writeFileSync(modeFile, transport);
  if (deploy) {
    await red.deploy(
      demoFlow({
        tenant,
        mailbox: MAILBOX,
        receiverPort: RECEIVER_PORT,
        sendAlarmUrl: `http://127.0.0.1:${DEMO_PORT}/send-alarm`,
        transport,
      }),
    );
  }
  console.log(`Entra ID stand-in https://${tenant.entra.host}, ${mailbox.describe} (${MAILBOX})`);
  console.log(`Node-RED with @alarm-gateway/node-red-o365: ${red.url}`);
  console.log("Click 'Drop a sample alarm email' and watch the debug sidebar. Ctrl-C stops everything.");
  red.child.stdout?.pipe(process.stdout);
  red.child.stderr?.pipe(process.stderr);
  const stop = async () => {
    await red.stop();
    page.close();
    clearInterval(showReceived);
    await receiver.close();
    await mailbox.stop();
    await tenant.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
