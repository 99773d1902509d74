// The whole chain on real parts: Dovecot mailbox → email-connector → data-map → line-driver →
// DC-09 receiver. The email is marked read only once its alarm is safe in the outbox.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DATA_MAP_PRESETS } from "../../src/core/datamap";
import { helper, useUserDir } from "../helpers/connector-flow";
import { dc09LineDriverDef, emailConnectorDef } from "../helpers/flows";
import { alarmEmail, type MailStack, startMailStack } from "../helpers/mail-stack";
import { CLIENT_SECRET, MAILBOX } from "../helpers/tenant";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";

const nodes = ["o365-oauth-config", "email-connector", "data-map", "line-driver"].map((n) =>
  require(`../../nodes/${n}.js`),
);

describe("alarm email → DC-09 receiver", () => {
  let stack: MailStack;
  let receiver: Dc09Receiver;
  before(async () => {
    stack = await startMailStack("pipeline");
    receiver = await startDc09Receiver({ behaviour: "silent" });
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await receiver.close();
    await stack.stop();
  });

  it("settles the email when the alarm is in the outbox, even while the receiver is silent, and delivers it later", async () => {
    useUserDir("pipeline");
    const classic = DATA_MAP_PRESETS.find((p) => p.id === "classic")?.config();
    await helper.load(
      nodes,
      [
        { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields },
        { id: "conn", ...emailConnectorDef({ oauth: "cfg" }), wires: [["dm"]] },
        { id: "dm", type: "data-map", map: classic, wires: [["ld"], []] } as never,
        { id: "ld", ...dc09LineDriverDef(receiver.tcpPort), wires: [["out"]] } as never,
        { id: "out", type: "helper" },
      ],
      { cfg: { clientSecret: CLIENT_SECRET } },
    );
    const outcomes: any[] = [];
    helper.getNode("out").on("input", (m: any) => outcomes.push(m));
    const uid = await stack.dovecot.append(MAILBOX, alarmEmail("Alarm", "123588\r\nBA\r\n3\r\n1\r\n"));
    let flags: string[] = [];
    for (let i = 0; i < 100 && !flags.includes("\\Seen"); i++) {
      await sleep(50);
      flags = (await stack.dovecot.list(MAILBOX)).find((m) => m.uid === uid)?.flags ?? [];
    }
    assert.ok(flags.includes("\\Seen"), "read once accepted, though the receiver has not answered");
    assert.equal(outcomes.length, 0);
    receiver.behaviour = "ack";
    await receiver.waitFor((r) => r.some((e) => e.frame.data === "#123588|Nri1/BA03"), 10_000);
    for (let i = 0; i < 100 && outcomes.length === 0; i++) await sleep(20);
    assert.equal(outcomes[0]?.payload.status, "delivered");
    assert.equal(outcomes[0]?.alarm.account, "123588");
  });
});
