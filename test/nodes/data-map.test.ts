// The data-map node: outputs, settlement of rejected emails through a real email-connector on
// Dovecot, rules refused on deploy, and hostile input that must never escape the node.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DATA_MAP_PRESETS } from "../../src/core/datamap";
import { parseEmail } from "../../src/core/mail/parse-email";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { emailConnectorDef } from "../helpers/flows";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX } from "../helpers/tenant";
import { until } from "../helpers/until";

const dataMapNode = require("../../nodes/data-map.js");
const configNode = require("../../nodes/o365-oauth-config.js");
const connectorNode = require("../../nodes/email-connector.js");
const FIXTURES = join(__dirname, "..", "fixtures", "emails");

function preset(id: string) {
  const p = DATA_MAP_PRESETS.find((x) => x.id === id);
  assert.ok(p);
  return p.config();
}

interface Outputs {
  alarms: any[];
  rejected: any[];
}

async function loadDataMap(map: object | undefined): Promise<{ node: any; out: Outputs }> {
  await helper.load(
    [dataMapNode],
    [
      { id: "dm", type: "data-map", map, wires: [["ok"], ["bad"]] } as never,
      { id: "ok", type: "helper" },
      { id: "bad", type: "helper" },
    ],
  );
  const out: Outputs = { alarms: [], rejected: [] };
  helper.getNode("ok").on("input", (m: any) => out.alarms.push(m));
  helper.getNode("bad").on("input", (m: any) => out.rejected.push(m));
  return { node: helper.getNode("dm"), out };
}

describe("data-map node", () => {
  before(() => new Promise<void>((r) => helper.startServer(() => r())));
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(() => helper.unload());

  it("maps the classic email to msg.alarm on output 1, keeping the email's identity", async () => {
    const { node, out } = await loadDataMap(undefined); // dropped in without editing: the classic preset
    const email = await parseEmail(readFileSync(join(FIXTURES, "plain-4-line.eml")));
    const emailRef = { connector: "c1", uidValidity: "1", uid: 7, messageId: email.messageId };
    node.receive({ email, emailRef, topic: email.subject });
    await until(() => out.alarms.length === 1);
    const [msg] = out.alarms;
    assert.deepEqual(
      { account: msg.alarm.account, eventCode: msg.alarm.eventCode, zone: msg.alarm.zone, area: msg.alarm.area },
      { account: "123588", eventCode: "BA", zone: 1, area: 1 },
    );
    assert.deepEqual(msg.emailRef, emailRef);
    assert.equal(out.rejected.length, 0);
  });

  it("a new node requires Authentication-Results; a flow saved before keeps accepting emails without", async () => {
    // the map a new node starts with, as the editor defines it
    const html = readFileSync(join(__dirname, "..", "..", "nodes", "data-map.html"), "utf8");
    const literal = /\bmap: \{ value: (\{.*\}) \},/.exec(html)?.[1];
    assert.ok(literal, "the editor's default map");
    const newNodeMap = new Function(`return ${literal}`)();
    const raw = readFileSync(join(FIXTURES, "plain-4-line.eml"), "latin1");
    // the fixture without its Authentication-Results header (the line and its folded continuations)
    const bare = raw.replace(/^Authentication-Results:.*\r?\n(?:[ \t].*\r?\n)*/m, "");
    assert.ok(!/^Authentication-Results:/im.test(bare));
    const email = await parseEmail(Buffer.from(bare, "latin1"));

    const fresh = await loadDataMap(newNodeMap);
    fresh.node.receive({ email });
    await until(() => fresh.out.rejected.length === 1);
    assert.equal(
      fresh.out.rejected[0].error,
      "spoof check: no Authentication-Results header: the sender cannot be checked",
    );
    await helper.unload();

    const saved = await loadDataMap({ rules: [] });
    saved.node.receive({ email });
    await until(() => saved.out.alarms.length === 1);
    assert.equal(saved.out.alarms[0].alarm.account, "123588");
  });

  it("sends an email that does not map to output 2 with the rule and the reason", async () => {
    const { out, node } = await loadDataMap(preset("classic"));
    const email = await parseEmail(readFileSync(join(FIXTURES, "missing-zone.eml")));
    node.receive({ email });
    await until(() => out.rejected.length === 1);
    assert.match(out.rejected[0].error, /^rule \d+ \(zone\): /);
    assert.equal(out.rejected[0].dataMap.field, "zone");
    assert.ok(Array.isArray(out.rejected[0].dataMap.trace));
    const status = callsOf(node, "status").at(-1) as { text: string };
    assert.match(status.text, /rejected 1/);
  });

  it("refuses bad rules on deploy, naming the rule, and leaves emails unsettled", async () => {
    const map = preset("classic");
    map.rules[2] = { field: "zone", source: { kind: "body" }, extractor: { kind: "regex", pattern: "(?<zone>\\d+" } };
    const { node, out } = await loadDataMap(map);
    const status = callsOf(node, "status")[0] as { fill: string; text: string };
    assert.equal(status.fill, "red");
    assert.match(status.text, /rule 3 \(zone\): regular expression/);
    node.receive({ email: { subject: "Alarm", text: "123588\nBA\n1\n1" } });
    await sleep(100);
    assert.deepEqual(out, { alarms: [], rejected: [] });
    const errors = callsOf(node, "error").map(String).join("\n");
    assert.match(errors, /rules invalid/);
  });

  it("never lets hostile input escape: every message ends on an output or as a node error", async () => {
    const { node, out } = await loadDataMap(preset("classic"));
    const hostile: unknown[] = [
      { email: {} },
      { email: { subject: 42, text: { nested: true } } },
      { email: { text: "\u0000".repeat(10_000), headers: "not an object" } },
      { email: { text: "a\n".repeat(50_000) } },
      { email: { from: [{ address: null }], attachments: "x" } },
      { email: { text: `${"(".repeat(5000)}123588\nBA\n1\n1` } },
      { email: null },
      {},
    ];
    for (const m of hostile) node.receive(m);
    await until(
      () => out.alarms.length + out.rejected.length + callsOf(node, "error").length >= hostile.length,
      10_000,
    );
    assert.equal(out.alarms.length + out.rejected.length + callsOf(node, "error").length, hostile.length);
  });
});

describe("email-connector → data-map on Dovecot", () => {
  let stack: MailStack;
  before(async () => {
    stack = await startMailStack("datamap");
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await stack.stop();
  });

  it("settles a rejected email into the review folder and keeps a mapped one in flight for the line-driver", async () => {
    useUserDir("datamap-pipeline");
    await helper.load(
      [configNode, connectorNode, dataMapNode],
      [
        { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
        { id: "conn", ...emailConnectorDef({ oauth: "cfg", reviewFolder: "Review" }), wires: [["dm"]] },
        { id: "dm", type: "data-map", map: preset("classic"), wires: [["ok"], ["bad"]] } as never,
        { id: "ok", type: "helper" },
        { id: "bad", type: "helper" },
      ],
      { cfg: { clientSecret: CLIENT_SECRET } },
    );
    const out: Outputs = { alarms: [], rejected: [] };
    helper.getNode("ok").on("input", (m: any) => out.alarms.push(m));
    helper.getNode("bad").on("input", (m: any) => out.rejected.push(m));
    await stack.dovecot.append(MAILBOX, alarmEmail("Alarm", "123588\r\nBA\r\n7\r\n1\r\n"));
    await stack.dovecot.append(MAILBOX, alarmEmail("Hello", "Please call me back about the invoice.\r\n"));
    await until(() => out.alarms.length === 1 && out.rejected.length === 1, 10_000);
    assert.equal(out.alarms[0].alarm.zone, 7);
    for (let i = 0; i < 100; i++) {
      const review = await stack.dovecot.list(MAILBOX, "Review");
      if (review.some((m) => m.subject === "Hello")) break;
      await sleep(50);
    }
    assert.ok(
      (await stack.dovecot.list(MAILBOX, "Review")).some((m) => m.subject === "Hello"),
      "rejected → Review",
    );
    const inbox = await stack.dovecot.list(MAILBOX, "INBOX");
    assert.deepEqual(
      inbox.map((m) => [m.subject, m.flags]),
      [["Alarm", []]],
      "the mapped email waits, unread, for the line-driver to settle it",
    );
    await helper.unload();
  });
});
