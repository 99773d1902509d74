// A camera's alarm email with its snapshot, on real parts: Dovecot → email-connector → data-map (device
// preset) → line-driver with alarm media → DC-09 receiver. The frame carries `[V<link>]`, the link
// downloads the very picture, the store survives a redeploy, and a disk that refuses the picture leaves
// the alarm not accepted and its email unread until there is room again. Each preset's near miss goes out
// the data-map node's second output with its reason.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DEVICE_PRESETS } from "../../src/core/datamap";
import { parseEmail } from "../../src/core/mail/parse-email";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { dc09LineDriverDef, emailConnectorDef } from "../helpers/flows";
import { type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX } from "../helpers/tenant";
import { until } from "../helpers/until";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { freePort } from "../standin/ports";

const nodes = ["o365-oauth-config", "email-connector", "data-map", "line-driver", "alarm-media"].map((n) =>
  require(`../../nodes/${n}.js`),
);

const PRESETS = join(__dirname, "..", "fixtures", "presets");
const SIGNING_KEY = "c2lnbmluZy1rZXktb2YtdGhlLWNlbnRyZS0xMjM0NTY3OA==";

function get(url: string): Promise<{ status: number; type?: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"], body: Buffer.concat(chunks) }),
      );
    })
      .on("error", reject)
      .end();
  });
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail("timed out");
    await sleep(50);
  }
}

/** The Reolink preset as an integrator sets it up: this camera's sender is alarm account 1234. */
function reolinkMap() {
  const config = DEVICE_PRESETS.find((p) => p.id === "reolink")?.config();
  assert.ok(config);
  config.tables = {
    ...config.tables,
    accounts: { kind: "values", entries: [{ match: ["camera@example.com"], value: "1234" }], phrases: false },
  };
  // The fixture comes without the receiving server's Authentication-Results.
  config.spoofCheck = { enabled: false };
  return config;
}

/** A camera email of the fixture's text with a picture of `jpegBytes` bytes (unique Message-ID). */
function cameraEmail(n: number, jpegBytes = 0): { eml: string; jpeg: Buffer } {
  const fixture = readFileSync(join(PRESETS, "reolink", "person.eml"), "latin1").replace(
    "<reolink-person-0002@example.com>",
    `<reolink-${process.pid}-${n}@example.com>`,
  );
  if (jpegBytes === 0) {
    const parsed = /Content-Disposition: attachment[^\n]*\n\n?\r?\n?([A-Za-z0-9+/=\r\n]+)\n--/.exec(fixture);
    return { eml: fixture, jpeg: Buffer.from(parsed?.[1] ?? "", "base64") };
  }
  // A bigger picture: the same JPEG markers around filler, in the fixture's MIME structure.
  const jpeg = Buffer.concat([
    Buffer.from("ffd8ffe0", "hex"),
    Buffer.alloc(jpegBytes - 6, 0x41),
    Buffer.from("ffd9", "hex"),
  ]);
  const body = jpeg.toString("base64").replace(/.{76}/g, "$&\r\n");
  const eml = fixture.replace(
    /(filename="placeholder-snapshot.jpg"\r?\n\r?\n)[A-Za-z0-9+/=\r\n]+(\r?\n--)/,
    `$1${body}$2`,
  );
  return { eml, jpeg };
}

describe("camera alarm with its picture → DC-09 [V] → the operator's browser", () => {
  let stack: MailStack;
  let receiver: Dc09Receiver;
  let mediaPort: number;
  let userDir: string;
  const outcomes: any[] = [];

  async function load(): Promise<void> {
    outcomes.length = 0;
    await helper.load(
      nodes,
      [
        { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
        { id: "conn", ...emailConnectorDef({ oauth: "cfg", redeliverAfter: 2 }), wires: [["dm"]] },
        { id: "dm", type: "data-map", map: reolinkMap(), wires: [["ld"], ["rejected"]] } as never,
        {
          id: "media",
          type: "alarm-media",
          host: "127.0.0.1",
          port: mediaPort,
          baseUrl: `http://127.0.0.1:${mediaPort}/`,
          tls: false,
          types: "image/jpeg, video/mp4",
          maxFileMb: 5,
          maxFiles: 10,
          retentionDays: 30,
          maxTotalMb: 100,
          linkValidHours: 24,
        } as never,
        {
          id: "ld",
          ...dc09LineDriverDef(receiver.tcpPort, { sendTime: true, sendLink: true, media: "media" }),
          wires: [["out"]],
        } as never,
        { id: "out", type: "helper" },
        { id: "rejected", type: "helper" },
      ],
      { cfg: { clientSecret: CLIENT_SECRET }, media: { signingKey: SIGNING_KEY } },
    );
    helper.getNode("out").on("input", (m: any) => outcomes.push(m));
  }

  before(async () => {
    stack = await startMailStack("alarm-media");
    receiver = await startDc09Receiver({ behaviour: "ack" });
    mediaPort = await freePort();
    await new Promise<void>((r) => helper.startServer(() => r()));
    userDir = useUserDir("alarm-media");
    await load();
  });
  after(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await receiver.close();
    await stack.stop();
  });

  it("sends the link in [V], and the link downloads the picture the camera sent, also after a redeploy", async () => {
    const { eml, jpeg } = cameraEmail(1);
    assert.ok(jpeg.length > 100 && jpeg[0] === 0xff && jpeg[1] === 0xd8, "the fixture's JPEG");
    const uid = await stack.dovecot.append(MAILBOX, eml);
    await receiver.waitFor((r) => r.some((e) => e.frame.account === "1234"), 15_000);
    const frame = receiver.acked.find((e) => e.frame.account === "1234")?.frame;
    const link = frame?.extended?.find((x) => x.kind === "V")?.value;
    assert.ok(link, `a [V] block in ${JSON.stringify(frame)}`);
    assert.match(link, new RegExp(`^http://127\\.0\\.0\\.1:${mediaPort}/m/[0-9a-f]{16}/[0-9a-z]+/[A-Za-z0-9_-]{22}$`));
    assert.ok(link.length <= 256);

    const got = await get(link);
    assert.equal(got.status, 200);
    assert.equal(got.type, "image/jpeg");
    assert.ok(got.body.equals(jpeg), "the operator sees the camera's own picture");

    await until(() => outcomes.length > 0, 5000);
    const media = outcomes[0].alarm.media;
    assert.equal(outcomes[0].payload.status, "delivered");
    assert.equal(media.length, 1);
    assert.deepEqual(
      { url: media[0].url, contentType: media[0].contentType, size: media[0].size },
      { url: link, contentType: "image/jpeg", size: jpeg.length },
    );
    assert.ok(Date.parse(media[0].expiresAt) > Date.now() + 23 * 3_600_000);
    // Settled (marked read) once accepted: the store of the flag may come just after the ACK.
    await eventually(
      async () => ((await stack.dovecot.list(MAILBOX)).find((m) => m.uid === uid)?.flags ?? []).includes("\\Seen"),
      5000,
    );

    // Files are the Node-RED user's only.
    const dir = join(userDir, "alarm-gateway", "media-media");
    const mode = execFileSync("stat", ["-c", "%a", dir, ...readdirSync(dir).map((f) => join(dir, f))], {
      encoding: "utf8",
    });
    assert.deepEqual([...new Set(mode.trim().split("\n"))].sort(), ["600", "700"]);

    // A redeploy (or a restart) keeps the store and the key: the link sent before still works.
    await helper.unload();
    await load();
    await eventually(async () => (await get(link).catch(() => ({ status: 0 }))).status === 200, 5000);
    // A link with another signature is refused.
    const forged = `${link.slice(0, -1)}${link.endsWith("A") ? "B" : "A"}`;
    assert.equal((await get(forged)).status, 403);
  });

  it("does not accept the alarm while its picture cannot be written, and raises it once there is room", async (t) => {
    const dir = join(userDir, "alarm-gateway", "media-media");
    // A small file system under the store, filled: the picture gets ENOSPC (the outbox beside it has room).
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", dir], { stdio: "pipe" });
    } catch {
      t.skip("mounting a tmpfs needs root (CI runs as root)");
      return;
    }
    try {
      const filler = join(dir, "filler");
      try {
        writeFileSync(filler, Buffer.alloc(1024 * 1024));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
      }
      const before = receiver.received.length;
      const { eml, jpeg } = cameraEmail(2, 64 * 1024);
      const uid = await stack.dovecot.append(MAILBOX, eml);
      const ld = helper.getNode("ld") as any;
      await until(() => callsOf(ld, "status").some((s: any) => /media not kept \(ENOSPC\)/.test(s.text)), 10_000);
      await sleep(1000);
      assert.equal(receiver.received.length, before, "nothing sent: the alarm was not accepted");
      const flags = (await stack.dovecot.list(MAILBOX)).find((m) => m.uid === uid)?.flags ?? [];
      assert.ok(!flags.includes("\\Seen"), "its email stays unread");
      assert.ok(callsOf(ld, "error").some((e) => /not accepted, its media not kept/.test(String(e))));

      rmSync(filler);
      // The connector offers the unsettled email again (redeliverAfter 2 s): now it goes through, with its link.
      await receiver.waitFor(
        (r) => r.length > before && r.some((e) => e.frame.extended?.some((x) => x.kind === "V")),
        20_000,
      );
      const link = receiver.received.at(-1)?.frame.extended?.find((x) => x.kind === "V")?.value ?? "";
      const got = await get(link);
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(jpeg));
      await eventually(
        async () => ((await stack.dovecot.list(MAILBOX)).find((m) => m.uid === uid)?.flags ?? []).includes("\\Seen"),
        5000,
      );
      await until(() => !/media not kept/.test(String((callsOf(ld, "status").at(-1) as any)?.text)), 5000);
    } finally {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    }
  });
});

describe("each device preset's near miss through the data-map node", () => {
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
  });

  const families: Record<string, [string, RegExp]> = {
    hikvision: ["hikvision", /eventCode is required but empty/],
    dahua: ["dahua", /eventCode is required but empty/],
    reolink: ["reolink", /eventCode is required but empty/],
    hanwha: ["wisenet-viewer", /eventCode is required but empty/],
    risco: ["risco-lightsys", /eventCode is required but empty/],
    lupusec: ["lupusec-xt", /account is required but empty/],
  };
  for (const [family, [preset, reason]] of Object.entries(families)) {
    it(`${family}: the near miss goes out the second output with its reason`, async () => {
      useUserDir(`alarm-media-near-${family}`);
      const email = await parseEmail(readFileSync(join(PRESETS, family, "near-miss.eml")));
      const config = DEVICE_PRESETS.find((p) => p.id === preset)?.config();
      assert.ok(config, preset);
      // Set up as for the family's real emails: the device's sender is an account (its near miss fails on the event).
      config.tables = {
        ...config.tables,
        accounts: {
          kind: "values",
          entries: [{ match: [email.from[0]?.address ?? ""], value: "1234" }],
          phrases: false,
        },
      };
      config.spoofCheck = { enabled: false };
      await helper.load(nodes[2], [
        { id: "dm", type: "data-map", map: config, wires: [["ok"], ["bad"]] } as never,
        { id: "ok", type: "helper" },
        { id: "bad", type: "helper" },
      ]);
      try {
        const ok: any[] = [];
        const bad: any[] = [];
        helper.getNode("ok").on("input", (m: any) => ok.push(m));
        helper.getNode("bad").on("input", (m: any) => bad.push(m));
        helper.getNode("dm").receive({ email } as never);
        await until(() => ok.length + bad.length > 0, 5000);
        assert.equal(ok.length, 0, `mapped: ${JSON.stringify(ok[0]?.alarm)}`);
        assert.match(String(bad[0].error?.message ?? bad[0].error), reason);
      } finally {
        await helper.unload();
      }
    });
  }
});
