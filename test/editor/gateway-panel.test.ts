// The gateway at a glance (issue #18), in one real Node-RED with the pack, Dovecot and a DC-09 receiver:
// the gateway's own trouble and restore events reach the receiver (mailbox unseen while Dovecot is down
// and the token endpoint refuses; a site late to test), the sidebar panel shows live figures that move
// as emails flow, the trace finds an email's every stage by Message-ID and a rejected one with its
// reason, and the Prometheus metrics parse and agree with what the receiver saw.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Page } from "playwright-core";
import { DATA_MAP_PRESETS } from "../../src/core/datamap";
import { dc09LineDriverDef, emailConnectorDef } from "../helpers/flows";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { MAILBOX } from "../helpers/tenant";
import { type Dc09Receiver, type ReceivedEvent, startDc09Receiver } from "../standin/dc09-receiver";
import { RUN_DIR } from "../standin/paths";
import { chromiumMissing, type EditorPage, openEditor, textOf } from "./browser";

const parsePrometheus = require("parse-prometheus-text-format") as (text: string) => {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string }[];
}[];

const GATEWAY = "9999";
const LATE_SITE = "4321";
/** The late site tests every 0.002 h = 7.2 s. */
const LATE_HOURS = 0.002;

const isEvent = (account: string, code: string) => (e: ReceivedEvent) =>
  e.frame.account === account && new RegExp(`[|/N]${code}`).test(e.frame.data ?? "");

describe("the gateway at a glance", () => {
  let stack: MailStack;
  let receiver: Dc09Receiver;
  let red: NodeRedProcess;
  let editor: EditorPage | undefined;
  let page: Page | undefined;

  before(async () => {
    // Tokens live 5 s, so every login asks the token endpoint (MSAL renews 5 minutes before expiry): its
    // refusals during the outage are real.
    stack = await startMailStack("gateway-panel", { lifetimeSeconds: 5 });
    receiver = await startDc09Receiver({ behaviour: "ack" });
    red = await startNodeRed({ userDir: join(RUN_DIR, "nr-gateway-panel") });
    const classic = DATA_MAP_PRESETS.find((p) => p.id === "classic")?.config();
    await red.deploy([
      { id: "tab", type: "tab", label: "gateway" },
      { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields, credentials: { ...stack.tenant.credentials } },
      { id: "conn", z: "tab", x: 120, y: 80, ...emailConnectorDef({ oauth: "cfg", name: "alarms" }), wires: [["dm"]] },
      {
        id: "dm",
        type: "data-map",
        z: "tab",
        x: 300,
        y: 80,
        name: "classic",
        map: classic,
        wires: [["ld", "sup"], []],
      },
      { id: "ld", z: "tab", x: 500, y: 80, name: "receiver", ...dc09LineDriverDef(receiver.tcpPort), wires: [[]] },
      {
        id: "sup",
        type: "gateway-supervision",
        z: "tab",
        x: 300,
        y: 160,
        account: GATEWAY,
        format: "SIA",
        mailboxMinutes: 0.05,
        backlogMinutes: 0,
        sites: `${LATE_SITE} ${LATE_HOURS}`,
        wires: [["ld"]],
      },
    ]);
  });
  after(async () => {
    await editor?.close();
    await red?.stop();
    await receiver?.close();
    await stack?.stop();
  });

  it("a site whose test email is late gets late-to-test on its account, then a restore with its next email", async () => {
    await receiver.waitFor((r) => r.some(isEvent(LATE_SITE, "YS")), 20_000);
    await stack.dovecot.append(MAILBOX, alarmEmail("Test", `${LATE_SITE}\r\nRP\r\n0\r\n1\r\n`));
    await receiver.waitFor((r) => r.some(isEvent(LATE_SITE, "YK")), 10_000);
    const order = receiver.acked.filter((e) => e.frame.account === LATE_SITE).map((e) => e.frame.data ?? "");
    const test = order.findIndex((d) => /RP/.test(d));
    assert.deepEqual(
      order.slice(0, test + 1).map((d) => /YS|RP/.exec(d)?.[0]),
      ["YS", "RP"],
      `raised once while late, then the test: ${order.join(" ")}`,
    );
    assert.ok(
      order.slice(test).some((d) => /YK/.test(d)),
      "restored after the test",
    );
  });

  it("Dovecot down and the token endpoint refusing: trouble after the threshold, restore after; no email lost", async () => {
    const before = receiver.acked.length;
    await stack.dovecot.append(MAILBOX, alarmEmail("before the outage", "123588\r\nBA\r\n11\r\n1\r\n"));
    await receiver.waitFor((r) => r.slice(before).some(isEvent("123588", "BA11")), 10_000);
    // The token refused: a rotated client secret (invalid_client). (A 500 would make MSAL hold every request
    // back for 60 s after it heals: its throttling cache, as against Entra ID.)
    const secret = stack.tenant.app.secret;
    stack.tenant.app.secret = `${secret}-rotated`;
    await stack.dovecot.stop();
    const downAt = Date.now();
    await receiver.waitFor((r) => r.slice(before).some(isEvent(GATEWAY, "YC")), 30_000);
    const trouble = receiver.acked.slice(before).find(isEvent(GATEWAY, "YC"));
    assert.ok((trouble?.at ?? 0) - downAt >= 3000, "not before the 3 s threshold");
    assert.match(
      trouble?.frame.extended?.find((x) => x.kind === "I")?.value ?? "",
      /cannot see mailbox .*alarms@contoso\.test/,
    );
    stack.tenant.app.secret = secret;
    await stack.dovecot.start();
    await stack.dovecot.append(MAILBOX, alarmEmail("after the outage", "123588\r\nBA\r\n12\r\n1\r\n"));
    await receiver
      .waitFor(
        (r) => r.slice(before).some(isEvent(GATEWAY, "YK")) && r.slice(before).some(isEvent("123588", "BA12")),
        60_000,
      )
      .catch((err) => {
        throw new Error(`${String(err)}\n${red.log().slice(-2000)}`);
      });
  });

  it("the panel shows live figures that change as emails flow", { skip: chromiumMissing }, async () => {
    editor = await openEditor(red.url, { waitForNode: "ld" });
    page = editor.page;
    await page.evaluate(() => (window as any).RED.sidebar.show("alarm-gateway"));
    // Widen the sidebar as a user would (drag its separator): the panel's tables want the room.
    const separator = await page.locator("#red-ui-sidebar-separator").boundingBox();
    if (separator) {
      await page.mouse.move(separator.x + separator.width / 2, separator.y + 200);
      await page.mouse.down();
      await page.mouse.move(separator.x - 350, separator.y + 200, { steps: 5 });
      await page.mouse.up();
    }
    const row = page.locator('.alarm-gateway-connectors tr[data-id="conn"]');
    await row.waitFor({ timeout: 10_000 });
    await page.waitForFunction(
      () =>
        /watching/.test(
          document.querySelector('.alarm-gateway-connectors tr[data-id="conn"] .alarm-gateway-state')?.textContent ??
            "",
        ),
      undefined,
      { timeout: 20_000 },
    );
    const received = Number(await textOf(row.locator(".alarm-gateway-received")));
    const mapped = Number(await textOf(page.locator('.alarm-gateway-maps tr[data-id="dm"] .alarm-gateway-mapped')));
    await stack.dovecot.append(MAILBOX, alarmEmail("panel 1", "123588\r\nBA\r\n21\r\n1\r\n"));
    await stack.dovecot.append(MAILBOX, alarmEmail("panel 2", "123588\r\nBA\r\n22\r\n1\r\n"));
    await page.waitForFunction(
      (n) =>
        Number(
          document.querySelector('.alarm-gateway-connectors tr[data-id="conn"] .alarm-gateway-received')?.textContent,
        ) >= n,
      received + 2,
      { timeout: 15_000 },
    );
    await page.waitForFunction(
      (n) =>
        Number(document.querySelector('.alarm-gateway-maps tr[data-id="dm"] .alarm-gateway-mapped')?.textContent) >= n,
      mapped + 2,
      { timeout: 15_000 },
    );
    await page.waitForFunction(
      () =>
        /\d+ \/ \d+ ms/.test(
          document.querySelector('.alarm-gateway-lines tr[data-id="ld"] .alarm-gateway-ack')?.textContent ?? "",
        ),
      undefined,
      { timeout: 15_000 },
    );
    assert.match(await textOf(row), /alarms@contoso\.test \(imap\)/);
    await editor.screenshot("gateway-panel", ".alarm-gateway-panel");
  });

  it("the trace finds an email by Message-ID with every stage's time, and a rejected one with its reason", {
    skip: chromiumMissing,
  }, async () => {
    assert.ok(page);
    const raw = alarmEmail("trace me", "123588\r\nBA\r\n31\r\n1\r\n");
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw)?.[1] ?? "";
    await stack.dovecot.append(MAILBOX, raw);
    const bad = alarmEmail("not an alarm", "hello\r\n");
    const badId = /Message-ID: <([^>]+)>/i.exec(bad)?.[1] ?? "";
    await stack.dovecot.append(MAILBOX, bad);
    await receiver.waitFor((r) => r.some(isEvent("123588", "BA31")), 10_000);

    const stagesOf = async (query: string, wanted: string) => {
      for (let i = 0; i < 40; i++) {
        await page!.fill(".alarm-gateway-trace-query", query);
        await page!.click(".alarm-gateway-trace-search");
        await page!.waitForFunction(
          () => !/searching/.test(document.querySelector(".alarm-gateway-trace-result")?.textContent ?? ""),
        );
        const stages = await page!.$$eval(".alarm-gateway-trace-email li", (lis) =>
          lis.map((li) => ({ stage: li.getAttribute("data-stage"), text: li.textContent ?? "" })),
        );
        if (stages.some((s) => s.stage === wanted)) return stages;
        await sleep(250);
      }
      assert.fail(`no ${wanted} stage for ${query}`);
    };
    const stages = await stagesOf(messageId, "settled");
    // Settled once accepted (the outbox has it): before, beside or after the ACK.
    const at = (stage: string) => stages.findIndex((s) => s.stage === stage);
    const causal = ["arrived", "picked-up", "mapped", "accepted", "sent", "acked"];
    assert.deepEqual(
      causal.map(at),
      [...causal.keys()].map((i) => (i < 4 ? i : causal.map(at)[i])),
      stages.map((s) => s.stage).join(" "),
    );
    assert.ok(
      causal.map(at).every((i, n, all) => i >= 0 && (n === 0 || i > (all[n - 1] ?? -1))),
      "in causal order",
    );
    assert.ok(at("settled") > at("accepted"), "settled after it was accepted");
    assert.equal(stages.length, 7);
    for (const s of stages) assert.match(s.text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, "each stage with its time");
    assert.match(stages.find((s) => s.stage === "acked")?.text ?? "", /primary 127\.0\.0\.1:\d+, seq \d+/);
    assert.match(await textOf(page.locator(".alarm-gateway-trace-head")), /trace me from .*account 123588/);
    await editor?.screenshot("gateway-trace", ".alarm-gateway-trace-result");

    const rejected = await stagesOf(badId, "rejected");
    assert.match(rejected.find((s) => s.stage === "rejected")?.text ?? "", /rule \d+ \(\w+\): .*(required|not)/);
  });

  it("metrics parse as Prometheus text and agree with what the receiver saw", async () => {
    const res = await fetch(`${red.url}/alarm-gateway/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const families = parsePrometheus(text);
    const linesOf = (name: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith(name))
        .join("\n");
    const value = (name: string, labels: Record<string, string>) =>
      Number(
        families
          .find((f) => f.name === name)
          ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value,
      );
    const acked = receiver.acked.filter((e) => e.frame.id !== "NULL").length;
    assert.equal(
      value("alarm_gateway_alarms_delivered_total", { line_driver: "ld" }),
      acked,
      linesOf("alarm_gateway_alarms_delivered_total"),
    );
    assert.equal(value("alarm_gateway_outbox_depth", { line_driver: "ld" }), 0);
    const received = value("alarm_gateway_emails_received_total", { connector: "conn" });
    const mapped = value("alarm_gateway_emails_mapped_total", { data_map: "dm" });
    const unmatched = value("alarm_gateway_emails_unmatched_total", { data_map: "dm" });
    assert.ok(
      received >= 6 && received === mapped + unmatched,
      `received ${received} = mapped ${mapped} + unmatched ${unmatched}`,
    );
    assert.equal(value("alarm_gateway_connector_up", { connector: "conn" }), 1);
    const histogram = families.find((f) => f.name === "alarm_gateway_delivery_latency_seconds");
    assert.equal(histogram?.type, "HISTOGRAM");
    // The parser folds a histogram's labelled series into one: its buckets are read from the lines themselves.
    const inf = /^alarm_gateway_delivery_latency_seconds_bucket\{line_driver="ld",[^}]*le="\+Inf"\} (\d+)$/m.exec(
      text,
    )?.[1];
    const count = /^alarm_gateway_delivery_latency_seconds_count\{line_driver="ld"[^}]*\} (\d+)$/m.exec(text)?.[1];
    assert.equal(Number(inf), acked, linesOf("alarm_gateway_delivery_latency_seconds"));
    assert.equal(Number(count), acked);
    assert.ok(value("alarm_gateway_token_refreshes_total", { oauth_config: "cfg" }) >= 1);
    assert.ok(
      value("alarm_gateway_token_failures_total", { oauth_config: "cfg" }) >= 1,
      "the refusals during the outage",
    );
  });
});
