// `npm start`: Node-RED with this pack and a demo flow, wired to local stand-ins of
// Microsoft's side (Entra ID token endpoint, Exchange IMAP as a private Dovecot), so that
// nothing but this clone is needed. Dev-only: never shipped.
import { existsSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { alarmEmail } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { MAILBOX, startTestTenant, TENANT_ID } from "../test/helpers/tenant";
import { startDc09Receiver } from "../test/standin/dc09-receiver";
import { dovecotAvailable, startDovecot } from "../test/standin/dovecot";
import { REPO_ROOT, RUN_DIR } from "../test/standin/paths";
import { demoFlow } from "./demo-flow";

const PORT = Number(process.env.PORT ?? 1880);
const ENTRA_PORT = 18443;
const IMAPS_PORT = 18993;
const DEMO_PORT = 18080;
const RECEIVER_PORT = 18090;

async function main(): Promise<void> {
  if (!dovecotAvailable()) {
    console.error("The demo's mailbox stand-in is Debian's Dovecot: apt-get install -y dovecot-imapd (as root).");
    process.exit(1);
  }
  const userDir = join(REPO_ROOT, ".node-red");
  const outlookHost = `127.0.0.1:${IMAPS_PORT}`;
  const tenant = await startTestTenant({ port: ENTRA_PORT, outlookHost });
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
    dovecot
      .append(MAILBOX, alarmEmail(`Alarm ${sent}`, `123588\r\nBA\r\n${sent}\r\n1\r\n`))
      .then((uid) => res.end(`appended as uid ${uid}`))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => page.listen(DEMO_PORT, "127.0.0.1", resolve));

  const firstRun = !existsSync(join(userDir, "flows.json"));
  const red = await startNodeRed({ userDir, port: PORT, keepUserDir: true });
  if (firstRun) {
    await red.deploy(
      demoFlow({
        tenant,
        mailbox: MAILBOX,
        receiverPort: RECEIVER_PORT,
        sendAlarmUrl: `http://127.0.0.1:${DEMO_PORT}/send-alarm`,
      }),
    );
  }
  console.log(`Entra ID stand-in https://${tenant.entra.host}, IMAP stand-in ${outlookHost} (${MAILBOX})`);
  console.log(`Node-RED with @alarm-gateway/node-red-o365: ${red.url}`);
  console.log("Click 'Drop a sample alarm email' and watch the debug sidebar. Ctrl-C stops everything.");
  red.child.stdout?.pipe(process.stdout);
  red.child.stderr?.pipe(process.stderr);
  const stop = async () => {
    await red.stop();
    page.close();
    clearInterval(showReceived);
    await receiver.close();
    await dovecot.stop();
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
