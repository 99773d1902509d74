// What the gateway writes under the Node-RED user directory (the line-driver's outbox with alarm texts,
// senders and subjects; the connector's progress file and journal; spooled attachments) is readable by
// the Node-RED user only: files 0600, directories 0700. Run with umask 0, so the modes must come from
// the pack itself, not from a careful umask; and over directories an earlier version left 0755.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DATA_MAP_PRESETS } from "../../src/core/datamap";
import { helper, useUserDir } from "../helpers/connector-flow";
import { emailConnectorDef } from "../helpers/flows";
import { type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX, TENANT_ID } from "../helpers/tenant";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { GraphStandin } from "../standin/graph";
import { freePort } from "../standin/ports";

const nodes = ["o365-oauth-config", "email-connector", "data-map", "line-driver"].map((n) =>
  require(`../../nodes/${n}.js`),
);

/** Every file and directory under `dir` (itself included) with its permission bits. */
function modesUnder(dir: string): { path: string; dir: boolean; mode: number }[] {
  const st = statSync(dir);
  const out = [{ path: dir, dir: true, mode: st.mode & 0o777 }];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...modesUnder(p));
    else out.push({ path: p, dir: false, mode: statSync(p).mode & 0o777 });
  }
  return out;
}

let sent = 0;

/** An alarm email with a 300 KB camera picture: past the connector's in-memory limit, so it is spooled. */
function alarmWithPicture(): string {
  const picture = Buffer.alloc(300 * 1024, 7)
    .toString("base64")
    .replace(/.{76}/g, "$&\r\n");
  return [
    "From: Camera <camera@site.example>",
    `To: ${MAILBOX}`,
    "Subject: Intrusion at the back door",
    `Message-ID: <modes-${Date.now()}-${++sent}@site.example>`,
    `Date: ${new Date().toUTCString()}`,
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "123588\r\nBA\r\n3\r\n1",
    "--b1",
    "Content-Type: image/jpeg",
    "Content-Disposition: attachment; filename=door.jpg",
    "Content-Transfer-Encoding: base64",
    "",
    picture,
    "--b1--",
    "",
  ].join("\r\n");
}

describe("file modes of everything the gateway writes", () => {
  let stack: MailStack;
  let receiver: Dc09Receiver;
  let graph: GraphStandin;
  let umask: number;
  before(async () => {
    const graphHost = `127.0.0.1:${await freePort()}`;
    stack = await startMailStack("file-modes", { graphHost });
    graph = new GraphStandin({
      certs: stack.tenant.certs,
      signingKey: { kid: stack.tenant.entra.kid, publicKeyPem: stack.tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: graphHost,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review"],
      port: Number(graphHost.split(":")[1]),
    });
    await graph.start();
    receiver = await startDc09Receiver();
    await new Promise<void>((r) => helper.startServer(() => r()));
    umask = process.umask(0);
  });
  after(async () => {
    process.umask(umask);
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await receiver.close();
    await graph.stop();
    await stack.stop();
  });

  it("outbox, progress, journal and spooled attachments: files 0600 in directories 0700", async () => {
    const userDir = useUserDir("file-modes");
    const ours = join(userDir, "alarm-gateway");
    // As an earlier version of the pack left it: directories 0755, an (empty) outbox log 0644.
    mkdirSync(join(ours, "line-driver-ld"), { recursive: true });
    writeFileSync(join(ours, "line-driver-ld", "outbox.log"), "");
    chmodSync(join(ours, "line-driver-ld", "outbox.log"), 0o644);
    chmodSync(join(ours, "line-driver-ld"), 0o755);
    chmodSync(ours, 0o755);
    const classic = DATA_MAP_PRESETS.find((p) => p.id === "classic")?.config();
    await helper.load(
      nodes,
      [
        { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
        // Attachments past 0.1 MB wait on disk while the email is in flight.
        { id: "conn", ...emailConnectorDef({ oauth: "cfg", maxInMemoryMB: 0.1 }), wires: [["caught"]] },
        { id: "caught", type: "helper" },
        // The same over Graph: its progress file is a different store.
        {
          id: "gconn",
          ...emailConnectorDef({ oauth: "cfg", transport: "graph", graphPoll: 0.2, maxInMemoryMB: 0.1 }),
          wires: [["caught"]],
        },
        { id: "dm", type: "data-map", map: classic, wires: [["ld"], []] } as never,
        {
          id: "ld",
          type: "line-driver",
          host: "127.0.0.1",
          port: receiver.tcpPort,
          transport: "tcp",
          receiver: "1",
          prefix: "1",
          format: "auto",
          ackTimeout: 2,
          attempts: 3,
          supervision: 0,
          wires: [["out"]],
        } as never,
        { id: "out", type: "helper" },
      ],
      { cfg: { clientSecret: CLIENT_SECRET } },
    );
    const caught: any[] = [];
    const outcomes: any[] = [];
    helper.getNode("caught").on("input", (m: any) => caught.push(m));
    helper.getNode("out").on("input", (m: any) => outcomes.push(m));
    const uid = await stack.dovecot.append(MAILBOX, alarmWithPicture());
    const graphEmail = graph.deliver(MAILBOX, alarmWithPicture());
    for (let i = 0; i < 200 && caught.length < 2; i++) await sleep(50);
    assert.equal(caught.length, 2, "the email came out of both connectors");
    const spooled = caught.map((m) => m.email.attachments.find((a: any) => a.filename === "door.jpg"));
    assert.ok(
      spooled.every((a) => a?.path),
      "the picture waits on disk",
    );
    // While the emails are in flight: the spooled pictures are there to be checked.
    const whileInFlight = modesUnder(ours);
    for (const a of spooled)
      assert.ok(
        whileInFlight.some((e) => e.path === a.path),
        `${relative(userDir, a.path)} listed`,
      );

    // The rest of the chain, as if wired: the alarms go into the outbox, the emails are settled and read.
    for (const m of caught) helper.getNode("dm").receive(m);
    await receiver.waitFor((r) => r.filter((e) => e.frame.data === "#123588|Nri1/BA03").length >= 1, 15_000);
    for (let i = 0; i < 200 && outcomes.length < 2; i++) await sleep(25);
    assert.equal(outcomes[0]?.payload.status, "delivered");
    for (let i = 0; i < 200 && !graph.messages(MAILBOX).find((m) => m.id === graphEmail.id)?.isRead; i++)
      await sleep(25);
    assert.ok(graph.messages(MAILBOX).find((m) => m.id === graphEmail.id)?.isRead, "settled over Graph: marked read");
    let flags: string[] = [];
    for (let i = 0; i < 200 && !flags.includes("\\Seen"); i++) {
      await sleep(25);
      flags = (await stack.dovecot.list(MAILBOX)).find((m) => m.uid === uid)?.flags ?? [];
    }
    assert.ok(flags.includes("\\Seen"), "settled: marked read");
    await helper.unload(); // everything flushed and closed

    const afterwards = modesUnder(ours);
    const all = [...whileInFlight, ...afterwards];
    const names = afterwards.map((e) => relative(userDir, e.path));
    assert.ok(
      names.some((n) => /^alarm-gateway\/line-driver-ld\/./.test(n)),
      `the outbox was written: ${names.join(", ")}`,
    );
    for (const conn of ["conn", "gconn"])
      assert.ok(
        names.some((n) => n.startsWith(`alarm-gateway/email-connector-${conn}-`)),
        `${conn}'s progress was written: ${names.join(", ")}`,
      );
    const wrong = all
      .filter((e) => e.mode !== (e.dir ? 0o700 : 0o600))
      .map((e) => `${relative(userDir, e.path)}${e.dir ? "/" : ""} ${e.mode.toString(8)}`);
    assert.deepEqual(wrong, []);
    console.log(
      `# ${all.length} entries checked: ${[...new Set(all.map((e) => relative(userDir, e.path)))].join(", ")}`,
    );
  });
});
