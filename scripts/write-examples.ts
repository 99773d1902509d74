// Writes examples/*.json (Import > Examples > @alarm-gateway/node-red-o365): one flow per node and two
// complete gateways (alarm email → DC-09 receiver, alarm email → Sur-Gard automation). Placeholders a
// user fills in, never a secret. Run: npx tsx scripts/write-examples.ts
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultDataMapConfig, temperatureLoggerPreset } from "../src/core/datamap";
import { emailConnectorDef } from "../test/helpers/flows";

export interface Example {
  /** File name without .json: what Import > Examples lists. */
  title: string;
  flow: Record<string, unknown>[];
}

type NodeDef = Record<string, unknown> & { id: string; type: string };

const MAILBOX = "alarms@contoso.com";

function officeConfig(id: string): NodeDef {
  return {
    id,
    type: "o365-oauth-config",
    name: "Office 365: fill in tenant, client id and secret, then Test",
    tenant: "contoso.onmicrosoft.com",
    clientId: "00000000-0000-0000-0000-000000000000",
    credentialKind: "secret",
    thumbprint: "",
    cloud: "global",
    authorityHost: "",
    outlookHost: "",
    graphHost: "",
    consentRedirectUri: "",
  };
}

function connector(id: string, z: string, oauth: string, x: number, y: number, wires: string[][]): NodeDef {
  return { id, z, ...emailConnectorDef({ oauth, transport: "imap", graphPoll: 1, mailbox: MAILBOX }), x, y, wires };
}

function dataMap(id: string, z: string, name: string, map: unknown, x: number, y: number, wires: string[][]): NodeDef {
  return { id, type: "data-map", z, name, map, x, y, wires };
}

const LINE_DRIVER_DEFAULTS = {
  name: "",
  protocol: "dc09",
  format: "auto",
  host: "",
  port: 12345,
  backupHost: "",
  backupPort: "",
  transport: "tcp",
  receiver: "1",
  prefix: "1",
  ackTimeout: 5,
  attempts: 3,
  supervision: 60,
  supervisionAccount: "0000",
  sendText: true,
  sendTime: true,
  sendLink: false,
  sgRole: "server",
  sgHost: "",
  sgPort: 1025,
  sgAllow: "",
  sgReceiver: 1,
  sgLine: 1,
  sgLineDigits: "3",
  sgAccountDigits: "auto",
  sgHeartbeat: 30,
  sgAckTimeout: 4,
  sgAttempts: 3,
};

function lineDriver(id: string, z: string, props: Record<string, unknown>, x: number, y: number, wires: string[][]) {
  return { id, type: "line-driver", z, ...LINE_DRIVER_DEFAULTS, ...props, x, y, wires };
}

function debug(id: string, z: string, name: string, complete: string, x: number, y: number): NodeDef {
  return {
    id,
    type: "debug",
    z,
    name,
    active: true,
    tosidebar: true,
    console: false,
    tostatus: false,
    complete,
    targetType: complete === "true" ? "full" : "msg",
    x,
    y,
    wires: [],
  };
}

function comment(id: string, z: string, name: string, info: string, x: number, y: number): NodeDef {
  return { id, type: "comment", z, name, info, x, y, wires: [] };
}

function inject(id: string, z: string, name: string, props: object[], x: number, y: number, wires: string[][]) {
  return {
    id,
    type: "inject",
    z,
    name,
    props,
    repeat: "",
    crontab: "",
    once: false,
    onceDelay: 0.1,
    topic: "",
    x,
    y,
    wires,
  };
}

/** A test alarm as a data-map makes it; JSONata stamps the time of the click. */
const TEST_ALARM =
  '{"account": "1234", "eventCode": "BA", "eventFormat": "SIA", "qualifier": "new", "siaCode": "BA", ' +
  '"cidEvent": "130", "zone": 1, "area": 1, "user": null, "text": "Test alarm from Node-RED", ' +
  '"occurredAt": $now(), "attachments": [], "source": {"messageId": null, "subject": "test"}, "extra": {}}';

/** msg.email as the email-connector sends it, for a data-map tried without a mailbox. */
function sampleEmail(subject: string, text: string): string {
  return JSON.stringify({
    messageId: `<example-${subject.length}@logger.example>`,
    from: [{ address: "logger@cold.example", name: "TempGuard Logger" }],
    to: [{ address: MAILBOX, name: "" }],
    date: "2025-07-01T08:15:00.000Z",
    subject,
    text,
    html: null,
    headers: {},
    attachments: [],
  });
}

function mailboxToEvents(): Example {
  const z = "ex01-tab";
  const cfg = "ex01-o365";
  return {
    title: "01 - Alarm mailbox to alarm events",
    flow: [
      { id: z, type: "tab", label: "Office 365 alarm mailbox", info: "" },
      officeConfig(cfg),
      comment(
        "ex01-note",
        z,
        "Fill in the Office 365 config node (press Test), set the mailbox in the connector, deploy",
        "Each new email in the mailbox comes out of the connector; the data-map turns it into msg.alarm or says why not.\n" +
          "Nothing settles the emails here: put a line-driver after the data-map (see the complete examples).",
        400,
        40,
      ),
      connector("ex01-connector", z, cfg, 160, 120, [["ex01-map", "ex01-email"]]),
      dataMap("ex01-map", z, "classic alarm email", defaultDataMapConfig(), 400, 180, [
        ["ex01-alarm"],
        ["ex01-rejected"],
      ]),
      debug("ex01-email", z, "email", "true", 390, 120),
      debug("ex01-alarm", z, "alarm", "alarm", 630, 160),
      debug("ex01-rejected", z, "rejected: why", "error", 650, 200),
    ],
  };
}

function dataMapPreset(): Example {
  const z = "ex02-tab";
  return {
    title: "02 - Data map from a preset, tried without a mailbox",
    flow: [
      { id: z, type: "tab", label: "data-map preset", info: "" },
      comment(
        "ex02-note",
        z,
        "Click an inject: the data-map (temperature logger preset) maps the email or rejects it with the reason",
        "Open the data-map: Start from lists the presets; paste an email into Try it to see what each rule extracts.",
        420,
        40,
      ),
      inject(
        "ex02-alarm-email",
        z,
        "temperature alarm email",
        [
          {
            p: "email",
            v: sampleEmail(
              "High Temperature Alarm at Pantry Freezer 3, site 4471",
              "TempGuard alert\n\nSensor: Pantry Freezer 3\nReading: -8.2 °C (limit -15.0 °C)\nTime: 2025-07-01T10:15:00+02:00\nSite: 4471\n",
            ),
            vt: "json",
          },
        ],
        180,
        120,
        [["ex02-map"]],
      ),
      inject(
        "ex02-report-email",
        z,
        "weekly report email",
        [{ p: "email", v: sampleEmail("Weekly summary", "All sensors within limits this week.\n"), vt: "json" }],
        170,
        180,
        [["ex02-map"]],
      ),
      dataMap("ex02-map", z, "temperature logger", temperatureLoggerPreset(), 420, 150, [
        ["ex02-alarm"],
        ["ex02-rejected"],
      ]),
      debug("ex02-alarm", z, "alarm", "alarm", 650, 130),
      debug("ex02-rejected", z, "rejected: why", "error", 670, 170),
    ],
  };
}

function lineDriverDc09(): Example {
  const z = "ex03-tab";
  return {
    title: "03 - Line driver to a DC-09 receiver",
    flow: [
      { id: z, type: "tab", label: "line-driver DC-09", info: "" },
      comment(
        "ex03-note",
        z,
        "Set the receiver's host and port in the line-driver (press Test for a NULL link test), deploy, click the inject",
        "The alarm is written to the outbox, sent as SIA-DCS and the receiver's answer comes out (delivered or failed).",
        460,
        40,
      ),
      inject("ex03-inject", z, "test alarm", [{ p: "alarm", v: TEST_ALARM, vt: "jsonata" }], 140, 120, [["ex03-line"]]),
      lineDriver("ex03-line", z, { name: "DC-09 to the centre", host: "receiver.example.com", port: 12345 }, 360, 120, [
        ["ex03-outcome"],
      ]),
      debug("ex03-outcome", z, "outcome", "payload", 580, 120),
    ],
  };
}

function lineDriverSurgard(): Example {
  const z = "ex04-tab";
  return {
    title: "04 - Line driver to Sur-Gard automation software",
    flow: [
      { id: z, type: "tab", label: "line-driver Sur-Gard", info: "" },
      comment(
        "ex04-note",
        z,
        "Point the automation software's Sur-Gard line driver at this machine, port 1025; deploy; click the inject",
        "The gateway plays a Sur-Gard receiver: the automation software connects to it, gets heartbeats, and the alarm as a Contact ID packet.",
        460,
        40,
      ),
      inject("ex04-inject", z, "test alarm", [{ p: "alarm", v: TEST_ALARM, vt: "jsonata" }], 140, 120, [["ex04-line"]]),
      lineDriver(
        "ex04-line",
        z,
        { name: "Sur-Gard to the automation", protocol: "surgard", format: "CID", sgRole: "server", sgPort: 1025 },
        370,
        120,
        [["ex04-outcome"]],
      ),
      debug("ex04-outcome", z, "outcome", "payload", 600, 120),
    ],
  };
}

function completeGateway(kind: "dc09" | "surgard"): Example {
  const n = kind === "dc09" ? "05" : "06";
  const z = `ex${n}-tab`;
  const cfg = `ex${n}-o365`;
  const line =
    kind === "dc09"
      ? lineDriver(
          `ex${n}-line`,
          z,
          { name: "DC-09 to the centre", host: "receiver.example.com", port: 12345 },
          660,
          140,
          [[`ex${n}-outcome`]],
        )
      : lineDriver(
          `ex${n}-line`,
          z,
          { name: "Sur-Gard to the automation", protocol: "surgard", format: "CID", sgRole: "server", sgPort: 1025 },
          670,
          140,
          [[`ex${n}-outcome`]],
        );
  const target = kind === "dc09" ? "DC-09 receiver" : "Sur-Gard automation";
  return {
    title: `${n} - Alarm email to ${target} (complete gateway)`,
    flow: [
      { id: z, type: "tab", label: `Alarm email → ${target}`, info: "" },
      officeConfig(cfg),
      comment(
        `ex${n}-note`,
        z,
        kind === "dc09"
          ? "1. Office 365 config: tenant, client id, secret, Test with the mailbox  2. connector: mailbox  3. line-driver: receiver, Test  4. deploy"
          : "1. Office 365 config: tenant, client id, secret, Test with the mailbox  2. connector: mailbox  3. automation software: connect to port 1025  4. deploy",
        "An email is marked read only once its alarm is in the line-driver's outbox (on disk); emails the data-map " +
          "cannot map go to the connector's review folder (set one) with the reason in the debug sidebar.",
        520,
        40,
      ),
      connector(`ex${n}-connector`, z, cfg, 160, 140, [[`ex${n}-map`]]),
      dataMap(`ex${n}-map`, z, "classic alarm email", defaultDataMapConfig(), 400, 140, [
        [`ex${n}-line`],
        [`ex${n}-rejected`],
      ]),
      line,
      debug(`ex${n}-outcome`, z, "delivered / failed", "payload", 910, 140),
      debug(`ex${n}-rejected`, z, "rejected: why", "error", 650, 200),
      {
        id: `ex${n}-catch`,
        type: "catch",
        z,
        name: "any node's error",
        scope: null,
        uncaught: false,
        x: 180,
        y: 260,
        wires: [[`ex${n}-errors`]],
      },
      debug(`ex${n}-errors`, z, "errors", "error", 400, 260),
    ],
  };
}

function sendEmail(): Example {
  const z = "ex07-tab";
  const cfg = "ex07-o365";
  return {
    title: "07 - Send an email over Graph",
    flow: [
      { id: z, type: "tab", label: "o365-send-mail", info: "" },
      officeConfig(cfg),
      comment(
        "ex07-note",
        z,
        "Needs Mail.Send (Graph) for the app; fill in the Office 365 config node and the sender mailbox, deploy, click",
        "msg.payload is the body, msg.topic the subject, msg.to the recipients.",
        430,
        40,
      ),
      inject(
        "ex07-inject",
        z,
        "test email",
        [
          { p: "payload", v: "Test from the alarm gateway", vt: "str" },
          { p: "topic", v: "Alarm gateway test", vt: "str" },
          { p: "to", v: "operator@contoso.com", vt: "str" },
        ],
        150,
        120,
        [["ex07-send"]],
      ),
      {
        id: "ex07-send",
        type: "o365-send-mail",
        z,
        name: "",
        oauth: cfg,
        from: MAILBOX,
        to: "to",
        toType: "msg",
        subject: "topic",
        subjectType: "msg",
        bodyType: "auto",
        saveToSentItems: true,
        x: 360,
        y: 120,
        wires: [["ex07-result"]],
      },
      debug("ex07-result", z, "sent", "payload", 560, 120),
    ],
  };
}

export function examples(): Example[] {
  return [
    mailboxToEvents(),
    dataMapPreset(),
    lineDriverDc09(),
    lineDriverSurgard(),
    completeGateway("dc09"),
    completeGateway("surgard"),
    sendEmail(),
  ];
}

if (require.main === module) {
  const dir = join(__dirname, "..", "examples");
  const wanted = new Set(examples().map((e) => `${e.title}.json`));
  // Written by hand (two Node-RED instances' flow): kept, not stale.
  const handWritten = new Set(["08 - Two gateways on one mailbox (DC-09 receiver).json"]);
  for (const stale of readdirSync(dir).filter((f) => f.endsWith(".json") && !wanted.has(f) && !handWritten.has(f)))
    rmSync(join(dir, stale));
  for (const e of examples()) writeFileSync(join(dir, `${e.title}.json`), `${JSON.stringify(e.flow, null, 2)}\n`);
  console.log(`wrote ${wanted.size} examples to ${dir}`);
}
