// The flow `npm start` deploys on first run, pointing at the local stand-ins.
import { dc09LineDriverDef, emailConnectorDef } from "../test/helpers/flows";
import type { TestTenant } from "../test/helpers/tenant";

export interface DemoEndpoints {
  tenant: TestTenant;
  mailbox: string;
  /** TCP port of the local DC-09 receiver standing in for the monitoring centre. */
  receiverPort: number;
  /** The demo script's own page that drops a sample alarm email into the mailbox. */
  sendAlarmUrl: string;
  /** How the connector reads the mailbox: IMAP (Dovecot stand-in) or Graph (Graph stand-in). */
  transport?: "imap" | "graph";
}

export function demoFlow({ tenant, mailbox, receiverPort, sendAlarmUrl, transport = "imap" }: DemoEndpoints): object[] {
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
      name: "Click the inject button: a sample alarm email goes mailbox → connector → data-map → DC-09 receiver (ACK in the debug sidebar)",
      info:
        transport === "graph"
          ? "Entra ID, Microsoft Graph and the DC-09 receiver are local stand-ins started by `npm start`."
          : "Entra ID, Exchange IMAP (Dovecot) and the DC-09 receiver are local stand-ins started by `npm start`.",
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
      // As the editor saves an inject without a schedule: it validates repeat, "" for none.
      repeat: "",
      crontab: "",
      once: false,
      onceDelay: 0.1,
      topic: "",
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
      ...emailConnectorDef({ oauth: "demo-o365", mailbox, transport, graphPoll: 1 }),
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
      wires: [["demo-alarm", "demo-line"], ["demo-rejected"]],
    },
    {
      id: "demo-line",
      z,
      name: "DC-09 to the centre",
      ...dc09LineDriverDef(receiverPort, {
        ackTimeout: 5,
        attempts: 3,
        supervision: 60,
        supervisionAccount: "0000",
        sendTime: true,
      }),
      x: 690,
      y: 200,
      wires: [["demo-delivered"]],
    },
    {
      id: "demo-delivered",
      type: "debug",
      z,
      name: "receiver ACK",
      active: true,
      complete: "payload",
      x: 900,
      y: 200,
      wires: [],
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
  ];
}
