// The line-driver dialog in headless Chromium: its Test button against a real DC-09 receiver
// (ACK, DUH, silence, a NAK on the clock, the stored AES key) and a real Sur-Gard automation peer
// (gateway connects; automation connects, before and after deploy); addresses from env variables.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { RUN_DIR } from "../standin/paths";
import { freePort } from "../standin/ports";
import { type SurgardAutomation, startAutomationClient, startAutomationServer } from "../standin/surgard-automation";
import { chromiumMissing, type EditorPage, openEditor, textOf } from "./browser";

const AES_KEY = "000102030405060708090A0B0C0D0E0F";
const REFUSED_ALARM = {
  account: "1234",
  eventCode: "BA",
  eventFormat: "SIA",
  qualifier: "new",
  zone: 1,
  area: 1,
  text: "Back door",
  source: { messageId: "refused-once@test" },
};

describe("line-driver dialog in Chromium", { skip: chromiumMissing }, () => {
  let primary: Dc09Receiver;
  let backup: Dc09Receiver;
  let encrypted: Dc09Receiver;
  let refusing: Dc09Receiver;
  let automationServer: SurgardAutomation & { port: number };
  let automationClient: SurgardAutomation | undefined;
  let dialIn: SurgardAutomation | undefined;
  let serverPort: number;
  let mediaPort: number;
  let red: NodeRedProcess;
  let editor: EditorPage;
  let page: Page;
  const responses: string[] = [];

  const dc09 = (props: Record<string, unknown>) => ({
    type: "line-driver",
    z: "tab",
    protocol: "dc09",
    transport: "tcp",
    receiver: "1",
    prefix: "1",
    format: "auto",
    ackTimeout: 2,
    attempts: 3,
    supervision: 0,
    supervisionAccount: "0000",
    sendText: true,
    sendTime: true,
    sendLink: false,
    backupHost: "",
    backupPort: "",
    wires: [[]],
    ...props,
  });
  const surgard = (props: Record<string, unknown>) => ({
    type: "line-driver",
    z: "tab",
    protocol: "surgard",
    format: "auto",
    sgHost: "",
    sgReceiver: 1,
    sgLine: 1,
    sgLineDigits: "3",
    sgAccountDigits: "auto",
    sgHeartbeat: 30,
    sgAckTimeout: 2,
    sgAttempts: 3,
    wires: [[]],
    ...props,
  });

  before(async () => {
    primary = await startDc09Receiver();
    backup = await startDc09Receiver();
    encrypted = await startDc09Receiver({ key: Buffer.from(AES_KEY, "hex") });
    refusing = await startDc09Receiver({ behaviour: "duh" });
    automationServer = (await startAutomationServer({ lineDigits: 3 })) as SurgardAutomation & { port: number };
    serverPort = await freePort();
    mediaPort = await freePort();
    red = await startNodeRed({
      userDir: join(RUN_DIR, "nr-editor-line-driver"),
      env: { RECEIVER_HOST: "127.0.0.1", RECEIVER_PORT: String(primary.tcpPort) },
    });
    await red.deploy([
      { id: "tab", type: "tab", label: "line-driver" },
      {
        id: "ld",
        x: 200,
        y: 80,
        ...dc09({ host: "127.0.0.1", port: primary.tcpPort, backupHost: "127.0.0.1", backupPort: backup.tcpPort }),
      },
      {
        id: "ld-aes",
        x: 200,
        y: 160,
        ...dc09({ host: "127.0.0.1", port: encrypted.tcpPort }),
        credentials: { key: AES_KEY },
      },
      {
        id: "sg-client",
        x: 200,
        y: 240,
        ...surgard({ sgRole: "client", sgHost: "127.0.0.1", sgPort: automationServer.port }),
      },
      { id: "sg-server", x: 200, y: 320, ...surgard({ sgRole: "server", sgPort: serverPort }) },
      { id: "ld-refused", x: 400, y: 400, ...dc09({ host: "127.0.0.1", port: refusing.tcpPort, sendText: false }) },
      {
        id: "media",
        type: "alarm-media",
        host: "127.0.0.1",
        port: mediaPort,
        baseUrl: `http://127.0.0.1:${mediaPort}`,
        tls: false,
        types: "image/jpeg",
        maxFileMb: 5,
        maxFiles: 10,
        retentionDays: 30,
        maxTotalMb: 100,
        linkValidHours: 24,
        credentials: { signingKey: "c2lnbmluZy1rZXktb2YtdGhlLWNlbnRyZS0xMjM0NTY3OA==" },
      },
      {
        id: "ld-media",
        x: 400,
        y: 480,
        ...dc09({ host: "127.0.0.1", port: primary.tcpPort, sendLink: true, media: "media" }),
      },
      {
        // A camera alarm with its snapshot at deploy: the alarm-media node keeps it ("Open the last picture").
        id: "picture-once",
        type: "inject",
        z: "tab",
        x: 150,
        y: 480,
        once: true,
        onceDelay: 0.1,
        props: [],
        wires: [["add-picture"]],
      },
      {
        id: "add-picture",
        type: "function",
        z: "tab",
        x: 280,
        y: 480,
        func: `msg.email = { attachments: [{ filename: "snap.jpg", contentType: "image/jpeg", size: 4, content: Buffer.from("ffd8ffd9", "hex") }] };
msg.alarm = ${JSON.stringify({ ...REFUSED_ALARM, source: { messageId: "picture@test" } })};
msg.alarm.attachments = [{ index: 0, filename: "snap.jpg", contentType: "image/jpeg", size: 4, inline: false }];
return msg;`,
        wires: [["ld-media"]],
      },
      {
        // One alarm at deploy, which the receiver refuses (DUH): it is then listed in ld-refused's dialog.
        id: "alarm-once",
        type: "inject",
        z: "tab",
        x: 150,
        y: 400,
        once: true,
        onceDelay: 0.1,
        props: [{ p: "alarm", v: JSON.stringify(REFUSED_ALARM), vt: "json" }],
        wires: [["ld-refused"]],
      },
    ]);
    editor = await openEditor(red.url, { waitForNode: "sg-server" });
    page = editor.page;
    page.on("response", async (res) => {
      if (res.url().endsWith("/line-driver/test")) responses.push(await res.text().catch(() => ""));
    });
  });
  afterEach(async () => {
    primary.behaviour = "ack";
    primary.clockOffsetMs = 0;
    await editor?.cancelAll();
  });
  after(async () => {
    await editor?.close();
    await red?.stop();
    await automationClient?.close();
    await dialIn?.close();
    await automationServer?.close();
    await Promise.all([primary?.close(), backup?.close(), encrypted?.close(), refusing?.close()]);
  });

  /** Host and port fields are TypedInputs: set them as the user would, through the widget. */
  async function setTyped(name: string, value: string, type = "str") {
    await page.evaluate(
      ({ n, v, t }) => {
        const input = (window as any).$(`#node-input-${n}`);
        input.typedInput("type", t);
        input.typedInput("value", v);
      },
      { n: name, v: value, t: type },
    );
  }

  async function runTest() {
    await page.evaluate(() => document.querySelector("#line-driver-test-result")?.replaceChildren());
    await page.click("#line-driver-test");
    await page.waitForSelector(
      "#line-driver-test-result .line-driver-verdict, #line-driver-test-result .line-driver-note",
      {
        timeout: 20_000,
      },
    );
    const lines = await page.$$eval("#line-driver-test-result li[data-receiver]", (lis) =>
      lis.map((li) => ({
        receiver: li.getAttribute("data-receiver"),
        answer: li.getAttribute("data-answer"),
        rtt: li.getAttribute("data-rtt"),
        text: li.textContent ?? "",
      })),
    );
    return { lines, text: await textOf(page.locator("#line-driver-test-result")) };
  }

  it("DC-09: a NULL link test to the primary and the backup, each answered ACK with its round trip", async () => {
    await editor.edit("ld");
    const before = { p: primary.received.length, b: backup.received.length };
    const { lines, text } = await runTest();
    assert.deepEqual(
      lines.map((l) => [l.receiver, l.answer]),
      [
        ["primary", "ACK"],
        ["backup", "ACK"],
      ],
      text,
    );
    for (const l of lines) assert.match(l.rtt ?? "", /^\d+$/);
    assert.match(lines[0]!.text, /ACK in \d+ ms/);
    assert.equal(primary.received.length, before.p + 1);
    assert.equal(primary.received.at(-1)?.frame.id, "NULL");
    assert.equal(primary.received.at(-1)?.frame.account, "0000");
    assert.equal(backup.received.at(-1)?.frame.id, "NULL");
    await editor.screenshot("line-driver-test-dc09-ack", "#line-driver-test-result .line-driver-verdict");
  });

  it("DC-09: DUH, silence and a NAK on the clock are shown as the receiver answered", async () => {
    await editor.edit("ld");
    await setTyped("backupHost", "");
    await page.fill("#node-input-ackTimeout", "1");
    primary.behaviour = "duh";
    let { lines } = await runTest();
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.answer, "DUH");
    assert.match(lines[0]!.text, /does not accept this message[\s\S]*receiver number \(R1\), line prefix \(L1\)/);
    await editor.screenshot("line-driver-test-dc09-duh", "#line-driver-test-result .line-driver-verdict");

    primary.behaviour = "silent";
    ({ lines } = await runTest());
    assert.equal(lines[0]?.answer, "none");
    assert.match(lines[0]!.text, /no answer within 1000 ms/);

    // The receiver's clock is 2 minutes ahead: NAK with its time, then ACK on that time.
    primary.behaviour = "nak";
    primary.clockOffsetMs = 120_000;
    ({ lines } = await runTest());
    assert.equal(lines[0]?.answer, "ACK");
    assert.match(lines[0]!.text, /after a NAK: the receiver's clock differs from ours by 1(19|20) s/);

    await setTyped("port", "0");
    await runTest();
    assert.match(await textOf(page.locator("#line-driver-test-result")), /is not a port number/);
  });

  it("DC-09 with AES: the stored key is used when not retyped, a wrong one is explained", async () => {
    await editor.edit("ld-aes");
    assert.equal(await page.inputValue("#node-input-key"), "__PWRD__");
    let { lines, text } = await runTest();
    assert.equal(lines[0]?.answer, "ACK", text);
    assert.equal(encrypted.received.at(-1)?.frame.encrypted, true);
    await page.fill("#node-input-key", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    ({ lines } = await runTest());
    assert.equal(lines[0]?.answer, "none");
    assert.match(lines[0]!.text, /check the AES key/);
    await page.fill("#node-input-key", "not a key");
    await runTest();
    assert.match(await textOf(page.locator("#line-driver-test-result")), /AES key: /);
  });

  it("addresses from environment variables: tested with Node-RED's values, stored as $-{NAME} for Node-RED", async () => {
    await editor.edit("ld");
    await setTyped("host", "RECEIVER_HOST", "env");
    await setTyped("port", "RECEIVER_PORT", "env");
    await setTyped("backupHost", "");
    const before = primary.received.length;
    const { lines, text } = await runTest();
    assert.equal(lines[0]?.answer, "ACK", text);
    assert.equal(primary.received.length, before + 1, JSON.stringify(primary.received.slice(before)));
    await editor.screenshot("line-driver-env-address", "#line-driver-test-result .line-driver-verdict");
    await page.click("#node-dialog-ok");
    await page.waitForFunction(() => (window as any).RED.editor.getEditStack().length === 0);
    const stored = await page.evaluate(() => {
      const n = (window as any).RED.nodes.node("ld");
      return { host: n.host, port: n.port, valid: n.valid };
    });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Node-RED's own ${NAME} syntax, stored as text
    assert.deepEqual(stored, { host: "${RECEIVER_HOST}", port: "${RECEIVER_PORT}", valid: true });
    await editor.edit("ld");
    assert.equal(await page.evaluate(() => (window as any).$("#node-input-host").typedInput("type")), "env");
    assert.equal(await page.evaluate(() => (window as any).$("#node-input-host").typedInput("value")), "RECEIVER_HOST");
  });

  it("Sur-Gard, gateway connects: one heartbeat, ACK or NAK from the automation software", async () => {
    await editor.edit("sg-client");
    let { lines, text } = await runTest();
    assert.equal(lines[0]?.receiver, "automation");
    assert.equal(lines[0]?.answer, "ACK", text);
    assert.match(lines[0]!.text, /heartbeat ACK in \d+ ms/);
    assert.equal(automationServer.received.at(-1)?.packet.kind, "heartbeat");
    await editor.screenshot("line-driver-test-surgard-client", "#line-driver-test-result .line-driver-verdict");
    automationServer.behaviour = "nak";
    try {
      ({ lines } = await runTest());
      assert.equal(lines[0]?.answer, "NAK");
      assert.match(lines[0]!.text, /refuses our heartbeat/);
    } finally {
      automationServer.behaviour = "ack";
    }
  });

  it("Sur-Gard, automation connects to the deployed node: test from its side, with the node's live status", async () => {
    automationClient = await startAutomationClient({ lineDigits: 3, port: serverPort });
    await automationClient.waitFor((r) => r.some((p) => p.packet.kind === "heartbeat"));
    await page.waitForFunction(() =>
      /automation: last ACK/.test((window as any).RED.nodes.node("sg-server").status?.text ?? ""),
    );
    await editor.edit("sg-server");
    const { lines } = await runTest();
    assert.equal(lines.length, 0);
    assert.match(
      await textOf(page.locator(".line-driver-note >> nth=0")),
      /Port \d+ is in use.*test the line from its side/,
    );
    assert.match(
      await textOf(page.locator(".line-driver-deployed-status")),
      /Deployed line-driver: automation: last ACK \d+ s ago/,
    );
    await editor.screenshot("line-driver-test-surgard-server-deployed", "#line-driver-test-result");
  });

  it("Sur-Gard, automation connects, before deploy: waits for it on the new port, then a heartbeat ACK", async () => {
    const newPort = await freePort();
    await editor.edit("sg-server");
    await setTyped("sgPort", String(newPort));
    const clicked = runTest();
    await page.waitForSelector(".line-driver-running");
    assert.match(await textOf(page.locator(".line-driver-running")), new RegExp(`connect to port ${newPort}`));
    dialIn = await startAutomationClient({ lineDigits: 3, port: newPort });
    const { lines, text } = await clicked;
    assert.equal(lines[0]?.answer, "ACK", text);
    assert.match(lines[0]!.text, /connected to 127\.0\.0\.1 port \d+.*heartbeat ACK/);
    await dialIn.close();
    dialIn = undefined;
  });

  it("Sur-Gard, automation connects: allowed addresses shown for that role only, checked, and used by the Test", async () => {
    const newPort = await freePort();
    await editor.edit("sg-server");
    assert.ok(await page.isVisible("#node-input-sgAllow"));
    await page.fill("#node-input-sgAllow", "10.0.0.5, automation.example");
    await page.locator("#node-input-sgAllow").dispatchEvent("keyup");
    assert.match((await page.getAttribute("#node-input-sgAllow", "class")) ?? "", /input-error/);
    await page.fill("#node-input-sgAllow", "127.0.0.1");
    await page.locator("#node-input-sgAllow").dispatchEvent("keyup");
    assert.doesNotMatch((await page.getAttribute("#node-input-sgAllow", "class")) ?? "", /input-error/);
    await page.selectOption("#node-input-sgRole", "client");
    assert.equal(await page.isVisible("#node-input-sgAllow"), false);
    await page.selectOption("#node-input-sgRole", "server");
    await setTyped("sgPort", String(newPort));
    // Only a host that is not allowed dials in: the Test gives it nothing and says so.
    const clicked = runTest();
    await page.waitForSelector(".line-driver-running");
    dialIn = await startAutomationClient({ lineDigits: 3, port: newPort, localAddress: "127.0.0.2" });
    const { lines } = await clicked;
    assert.equal(lines[0]?.answer, "none");
    assert.match(
      lines[0]!.text,
      /Refused meanwhile: 127\.0\.0\.2 \(\d+×\): not an allowed automation address \(allowed: 127\.0\.0\.1\)/,
    );
    assert.ok(dialIn.received.length === 0 && dialIn.rejected.length === 0, "the refused host heard nothing");
    await dialIn.close();
    dialIn = undefined;
  });

  it("alarm media: choosing it ticks V, a new node gets a key, the base URL is checked, the last picture opens", async () => {
    await editor.edit("ld");
    assert.equal(await page.isChecked("#node-input-sendLink"), false);
    await page.selectOption("#node-input-media", "media");
    assert.equal(await page.isChecked("#node-input-sendLink"), true, "choosing alarm media turns the [V] link on");
    await editor.cancel();

    // A new alarm-media node: a signing key is made in the browser; the base URL is checked as typed.
    await page.evaluate(() => (window as any).RED.editor.editConfig("", "alarm-media", "_ADD_"));
    await page.waitForSelector("#node-config-input-baseUrl", { state: "visible" });
    await page.waitForTimeout(400);
    const key = await page.inputValue("#node-config-input-signingKey");
    assert.equal(Buffer.from(key, "base64").length, 32, `a 256-bit key, got ${JSON.stringify(key)}`);
    assert.match(await textOf(page.locator("#alarm-media-key-state")), /new key/);
    await editor.type("#node-config-input-baseUrl", "gateway.centre.example:1882");
    assert.match((await page.getAttribute("#node-config-input-baseUrl", "class")) ?? "", /input-error/);
    await editor.type("#node-config-input-baseUrl", "https://gateway.centre.example:1882");
    assert.doesNotMatch((await page.getAttribute("#node-config-input-baseUrl", "class")) ?? "", /input-error/);
    assert.equal(await page.isVisible("#node-config-input-tlsCert"), false, "certificate fields only with HTTPS");
    await page.check("#node-config-input-tls");
    assert.equal(await page.isVisible("#node-config-input-tlsCert"), true);
    assert.equal(await page.inputValue("#node-config-input-retentionDays"), "30");
    await editor.cancel();

    // The deployed node: its key stays in credentials; the last picture opens at the base URL.
    await editor.edit("media", true);
    assert.match(await textOf(page.locator("#alarm-media-key-state")), /kept/);
    assert.equal(await page.inputValue("#node-config-input-signingKey"), "__PWRD__", "the key never comes back");
    const popup = page.waitForEvent("popup");
    await page.click("#alarm-media-last");
    const opened = await popup;
    await opened.waitForLoadState();
    assert.match(opened.url(), new RegExp(`^http://127\\.0\\.0\\.1:${mediaPort}/m/[0-9a-f]{16}/`));
    const picture = await fetch(opened.url());
    assert.equal(picture.status, 200);
    assert.deepEqual(Buffer.from(await picture.arrayBuffer()), Buffer.from("ffd8ffd9", "hex"));
    assert.match(await textOf(page.locator("#alarm-media-last-result")), /snap\.jpg.*image\/jpeg, 4 bytes/);
    await opened.close();
    await editor.cancel();
  });

  it("DC-09: a refused alarm is listed with the receiver's answer and resent from the dialog", async () => {
    await editor.edit("ld-refused");
    const entry = page.locator("#line-driver-refused li[data-entry]");
    await entry.waitFor({ timeout: 10_000 });
    const text = await textOf(page.locator("#line-driver-refused"));
    assert.match(text, /Refused alarms \(1\)/);
    assert.match(text, /1234 BA zone 1 – Back door/);
    assert.match(text, /DUH[\s\S]*answer: "DUH"0001R1L1#1234\[\]/);
    await editor.screenshot("line-driver-refused", "#line-driver-refused");
    refusing.behaviour = "ack";
    await page.click("#line-driver-refused .line-driver-resend");
    await page.waitForSelector('#line-driver-refused li[data-resent="true"]', { timeout: 5000 });
    await refusing.waitFor(() => refusing.acked.length === 1);
    assert.equal(refusing.acked[0]!.frame.data, "#1234|Nri1/BA01");
  });

  it("DC-09: shows how a 32-hex-digit key is read, from the deployed node, and follows the form chosen", async () => {
    await editor.edit("ld-aes");
    const hint = page.locator("#line-driver-key-hint");
    await page.waitForFunction(() => document.querySelector("#line-driver-key-hint")?.textContent !== "");
    assert.match(await textOf(hint), /Read as hex digits: AES-128\. 32 hex digits can also be 32 ASCII characters/);
    await page.selectOption("#node-input-keyForm", "ascii");
    await page.fill("#node-input-key", AES_KEY);
    assert.match(await textOf(hint), /Read as ASCII characters: AES-256\./);
    await page.selectOption("#node-input-receiverProfile", "iobroker");
    assert.equal(await page.inputValue("#node-input-supervision"), "0");
  });

  it("never sends the AES key back, and adds no script errors", () => {
    assert.ok(responses.length >= 10, `${responses.length} responses`);
    for (const body of responses) assert.ok(!body.includes(AES_KEY));
    assert.deepEqual(editor.pageErrors, []);
  });
});

describe("line-driver and alarm-media endpoint permissions", () => {
  let red: NodeRedProcess;
  const admin = { username: "admin", password: "admin-password-1" };
  before(async () => {
    red = await startNodeRed({
      userDir: join(RUN_DIR, "nr-line-driver-auth"),
      adminAuth: admin,
      settings: { alarmGateway: { metricsOnHttpNode: true } },
    });
  });
  after(() => red?.stop());

  it("needs line-driver.write: refused without a login, answered with one", async () => {
    const body = { protocol: "dc09", host: "127.0.0.1", port: 1, ackTimeout: 1 };
    assert.equal((await red.api("POST", "/line-driver/test", body, { anonymous: true })).status, 401);
    const res = await red.api("POST", "/line-driver/test", body);
    assert.equal(res.status, 200);
    assert.equal(res.body.ok, false);
    assert.match(res.body.lines[0].detail, /refused/);
  });

  it("refused alarms: listing needs line-driver.read, resending needs line-driver.write", async () => {
    assert.equal((await red.api("GET", "/line-driver/ld/state", undefined, { anonymous: true })).status, 401);
    assert.equal((await red.api("POST", "/line-driver/ld/refused/1/resend", {}, { anonymous: true })).status, 401);
    // With a login: answered, and no such deployed node here.
    assert.equal((await red.api("GET", "/line-driver/ld/state")).status, 404);
    assert.equal((await red.api("POST", "/line-driver/ld/refused/1/resend", {})).status, 404);
  });

  it("the gateway panel, its trace and its metrics need alarm-gateway.read", async () => {
    for (const path of ["/alarm-gateway/health", "/alarm-gateway/trace?q=x", "/alarm-gateway/metrics"]) {
      assert.equal((await red.api("GET", path, undefined, { anonymous: true })).status, 401, path);
      assert.equal((await red.api("GET", path)).status, 200, path);
    }
    // settings.js asked for the metrics on Node-RED's HTTP server too: there httpNodeAuth (here none) decides.
    const open = await fetch(`${red.url}/metrics`);
    assert.equal(open.status, 200);
    assert.match(await open.text(), /^# HELP alarm_gateway_emails_received_total /m);
  });

  it("the last picture of alarm media needs alarm-media.read", async () => {
    assert.equal((await red.api("GET", "/alarm-media/media/last", undefined, { anonymous: true })).status, 401);
    assert.equal((await red.api("GET", "/alarm-media/media/last")).status, 404);
  });
});
