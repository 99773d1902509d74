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
import { CLIENT_SECRET, MAILBOX } from "../helpers/tenant";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";

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

/** An alarm email with a 300 KB camera picture: past the connector's in-memory limit, so it is spooled. */
function alarmWithPicture(): string {
  const picture = Buffer.alloc(300 * 1024, 7)
    .toString("base64")
    .replace(/.{76}/g, "$&\r\n");
  return [
    "From: Camera <camera@site.example>",
    `To: ${MAILBOX}`,
    "Subject: Intrusion at the back door",
    `Message-ID: <modes-${Date.now()}@site.example>`,
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
  let umask: number;
  before(async () => {
    stack = await startMailStack("file-modes");
    receiver = await startDc09Receiver();
    await new Promise<void>((r) => helper.startServer(() => r()));
    umask = process.umask(0);
  });
  after(async () => {
    process.umask(umask);
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await receiver.close();
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
    for (let i = 0; i < 200 && caught.length === 0; i++) await sleep(50);
    const msg = caught[0];
    assert.ok(msg, "the email came out of the connector");
    const spooled = msg.email.attachments.find((a: any) => a.filename === "door.jpg");
    assert.ok(spooled?.path, "the picture waits on disk");
    // While the email is in flight: the spooled picture is there to be checked.
    const whileInFlight = modesUnder(ours);
    assert.ok(
      whileInFlight.some((e) => e.path === spooled.path),
      `${relative(userDir, spooled.path)} listed`,
    );

    // The rest of the chain, as if wired: the alarm goes into the outbox, the email is settled and read.
    helper.getNode("dm").receive(msg);
    await receiver.waitFor((r) => r.some((e) => e.frame.data === "#123588|Nri1/BA03"), 15_000);
    for (let i = 0; i < 200 && outcomes.length === 0; i++) await sleep(25);
    assert.equal(outcomes[0]?.payload.status, "delivered");
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
    assert.ok(
      names.some((n) => /^alarm-gateway\/email-connector-conn-/.test(n)),
      `the progress was written: ${names.join(", ")}`,
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
