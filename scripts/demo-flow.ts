// The flow `npm start` deploys on first run, pointing at the local stand-ins.
import { emailConnectorDef } from "../test/helpers/flows";
import type { TestTenant } from "../test/helpers/tenant";

export interface DemoEndpoints {
  tenant: TestTenant;
  mailbox: string;
  /** The demo script's own page that drops a sample alarm email into the mailbox. */
  sendAlarmUrl: string;
}

export function demoFlow({ tenant, mailbox, sendAlarmUrl }: DemoEndpoints): object[] {
  const z = "demo-tab";
  return [
    { id: z, type: "tab", label: "Alarm gateway demo" },
    {
      id: "demo-o365",
      type: "o365-oauth-config",
      name: "Contoso (stand-in)",
      ...tenant.fields,
      credentials: { ...tenant.credentials },
    },
    {
      id: "demo-note",
      type: "comment",
      z,
      name: "Click the inject button: a sample alarm email lands in the stand-in mailbox and comes out of the connector",
      info: "Entra ID, Exchange IMAP (Dovecot) are local stand-ins started by `npm start`.",
      x: 420,
      y: 40,
      wires: [],
    },
    {
      id: "demo-inject",
      type: "inject",
      z,
      name: "Drop a sample alarm email",
      props: [{ p: "payload" }],
      payload: "",
      payloadType: "date",
      x: 180,
      y: 100,
      wires: [["demo-send"]],
    },
    {
      id: "demo-send",
      type: "http request",
      z,
      name: "append to the stand-in mailbox",
      method: "POST",
      ret: "txt",
      url: sendAlarmUrl,
      x: 450,
      y: 100,
      wires: [[]],
    },
    {
      id: "demo-connector",
      z,
      ...emailConnectorDef({ oauth: "demo-o365", mailbox }),
      x: 190,
      y: 180,
      wires: [["demo-debug", "demo-map"]],
    },
    {
      id: "demo-map",
      type: "data-map",
      z,
      name: "classic alarm email",
      map: { rules: [] },
      x: 430,
      y: 260,
      wires: [["demo-alarm", "demo-ack"], ["demo-rejected"]],
    },
    { id: "demo-alarm", type: "debug", z, name: "alarm", active: true, complete: "alarm", x: 660, y: 240, wires: [] },
    {
      id: "demo-rejected",
      type: "debug",
      z,
      name: "rejected",
      active: true,
      complete: "error",
      x: 660,
      y: 300,
      wires: [],
    },
    {
      id: "demo-debug",
      type: "debug",
      z,
      name: "alarm email",
      active: true,
      complete: "true",
      x: 450,
      y: 160,
      wires: [],
    },
    {
      id: "demo-ack",
      type: "function",
      z,
      name: "acknowledge (until a line-driver does)",
      func: "// Sending the message back into the connector settles the email: it is marked read.\nreturn msg;",
      outputs: 1,
      x: 700,
      y: 180,
      wires: [["demo-connector"]],
    },
  ];
}
