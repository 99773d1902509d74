// Presets for the alarm emails of device families people have: cameras, recorders and panels. Each is
// built from the email text the vendor documents or users published, kept as fixtures with their
// sources in test/fixtures/presets/<family>/ (SOURCES.md there quotes each one). A family's own event
// names are mapped to SIA and Contact ID codes by an "events" table of the preset, which the user edits
// like any other table; an event name the table does not know rejects the email with that reason.
//
// Camera emails carry no alarm account: each preset takes it from the recipient (alarms+123588@...
// or 123588@...), else from the "accounts" table keyed by the sender's address, which the user fills.
import { defaultTranslationTables, event as entry } from "./tables";
import type { DataMapConfig, EventTable, EventTableEntry, FieldRule, ValueTable } from "./types";

/** What a family's emails look like, to pick its preset for a pasted email. */
export interface DeviceEmailView {
  subject: string;
  /** The text the rules see (after preprocessing). */
  body: string;
  fromName: string;
  headers: ReadonlyMap<string, string>;
}

export interface DevicePreset {
  id: string;
  label: string;
  /** Whether an email looks like this family's (its test emails and near misses included). */
  detect(email: DeviceEmailView): boolean;
  config(): DataMapConfig;
}

// The codes every family uses. Motion and video analytics are a burglary zone (SIA BA / CID 130);
// a covered or moved camera is a tamper (TA / 137); a camera that stops sending video is a sensor
// trouble (BT / 380: neither list has a video-loss code); a recorder's disk is a system peripheral
// trouble (ET / 330); a camera off the network is a communication trouble (YC / 350, as in the
// default table); a wrong password is a user code tamper / wrong code entry (JA / 461).
const burglary = (match: string[]) => entry("BA", "BR", "130", "Burglary alarm (video)", match);
const tamper = (match: string[]) => entry("TA", "TR", "137", "Camera tamper", match);
const videoLoss = (match: string[]) => entry("BT", "BJ", "380", "Video loss / camera trouble", match);
const storage = (match: string[]) => entry("ET", "ER", "330", "Recorder storage trouble", match);
const network = (match: string[]) => entry("YC", "YK", "350", "Device communication trouble", match);
const wrongLogin = (match: string[]) => entry("JA", undefined, "461", "Wrong password (illegal login)", match);

/** Restore words of the default table, and the ones camera emails use for the end of an event. */
function restoreWords(more: string[] = []): string[] {
  const defaults = defaultTranslationTables().events as EventTable;
  return [...defaults.restoreWords, ...more];
}

function events(entries: EventTableEntry[], moreRestoreWords: string[] = []): EventTable {
  return { kind: "events", entries, restoreWords: restoreWords(moreRestoreWords) };
}

/** The user's list: sender address -> alarm account. Empty in a preset; an example entry says how. */
function accountsTable(): ValueTable {
  return { kind: "values", entries: [], phrases: false };
}

/** The account: the recipient's +tag or local part, else the sender looked up in "accounts". */
function accountRules(): FieldRule[] {
  return [
    {
      field: "account",
      source: { kind: "recipient" },
      extractor: { kind: "regex", pattern: "(?:^|\\+)(?<account>[0-9A-Fa-f]{3,16})@", flags: "m" },
      note: "the recipient alarms+123588@… or 123588@… names the account",
    },
    {
      field: "account",
      source: { kind: "sender" },
      extractor: { kind: "whole" },
      transforms: [{ kind: "lower" }, { kind: "translate", table: "accounts", output: "value", onMiss: "empty" }],
      required: true,
      note: 'else the sender\'s address in the "accounts" table',
    },
  ];
}

/** `^<label>:<value>` on a body line (leading blanks allowed): the value, trimmed. */
function labelled(field: string, label: string, extra: Partial<FieldRule> = {}): FieldRule {
  return {
    field,
    source: { kind: "body" },
    extractor: { kind: "regex", pattern: `^[ \\t]*${label}[ \\t]*:[ \\t]*(?<${field}>[^\\n]*?)[ \\t]*$`, flags: "m" },
    transforms: [{ kind: "trim" }],
    ...extra,
  };
}

const toEvents = { kind: "translate", table: "events", onMiss: "fail" } as const;

function subjectText(): FieldRule {
  return { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [{ kind: "trim" }] };
}

function config(rules: FieldRule[], table: EventTable): DataMapConfig {
  return {
    rules,
    tables: { events: table, accounts: accountsTable() },
    eventFormat: "SIA",
    spoofCheck: { enabled: true, requireHeader: true },
  };
}

// ---- Hikvision (IPC, DVR, NVR): "EVENT TYPE:" / "EVENT TIME:" lines, X-Mailer HIKMailer ----

function hikvision(): DataMapConfig {
  return config(
    [
      ...accountRules(),
      labelled("eventCode", "EVENT TYPE", { transforms: [{ kind: "trim" }, toEvents], required: true }),
      labelled("zone", "CHANNEL NUMBER", { extractor: numberAfter("CHANNEL NUMBER") }),
      {
        field: "zone",
        source: { kind: "body" },
        // CAMERA NAME(NUM):   CAM 2 Garage(A2) -> 2 (the letter is the recorder's bank)
        extractor: {
          kind: "regex",
          pattern: "^[ \\t]*CAMERA NAME\\(NUM\\)[ \\t]*:[^\\n]*\\([A-Za-z]{0,2}0*(?<zone>\\d{1,4})\\)[ \\t]*$",
          flags: "m",
        },
        note: "else the number in CAMERA NAME(NUM)",
      },
      labelled("camera", "CHANNEL NAME"),
      labelled("camera", "CAMERA NAME\\(NUM\\)"),
      labelled("device", "(?:IPC|DVR|NVR) NAME"),
      labelled("serial", "(?:IPC|DVR|NVR) S/N"),
      labelled("deviceTime", "EVENT TIME"),
      subjectText(),
      labelled("text", "EVENT TYPE", { note: "a subject left empty: the event" }),
    ],
    events([
      burglary(["Motion Detected", "Motion Detection", "Intrusion Detection", "Line Crossing Detection"]),
      tamper(["Video Tampering"]),
      videoLoss(["Video Loss"]),
      storage(["HDD Error", "HDD Full", "Record Exception"]),
      network(["Network Disconnected", "IP Conflicted"]),
      wrongLogin(["Illegal Login"]),
    ]),
  );
}

function numberAfter(label: string): FieldRule["extractor"] {
  return { kind: "regex", pattern: `^[ \\t]*${label}[ \\t]*:[ \\t]*0*(?<zone>\\d{1,4})[ \\t]*$`, flags: "m" };
}

// ---- Dahua (and OEMs such as Amcrest, EZVIZ-less EZIP): "Alarm Event:" / "Alarm Input Channel" ----

function dahua(): DataMapConfig {
  return config(
    [
      ...accountRules(),
      labelled("eventCode", "Alarm Event", { transforms: [{ kind: "trim" }, toEvents], required: true }),
      labelled("zone", "Alarm Input Channel(?: No\\.)?", { extractor: numberAfter("Alarm Input Channel(?: No\\.)?") }),
      labelled("camera", "Alarm Input Channel Name"),
      labelled("camera", "Alarm Name"),
      labelled("device", "Alarm Device Name"),
      labelled("deviceTime", "Alarm Start Time ?\\(D/M/Y H:M:S\\)"),
      subjectText(),
      labelled("text", "Alarm Event", { note: "a subject left empty: the event" }),
    ],
    events(
      [
        burglary([
          "Motion Detection",
          "Motion Detect",
          "Motion Detection Start",
          "Intrusion",
          "Tripwire",
          "Cross Line Detection",
        ]),
        tamper(["Video Tampering"]),
        videoLoss(["Video Loss"]),
        storage(["Disk Full", "Disk Error", "No Disk"]),
      ],
      // "Motion Detection Stop", "Motion Detection end", "Intrusion End"
      ["stop", "end"],
    ),
  );
}

// ---- Reolink: "Alarm Camera Name:" / "Alarm Event:" without a space, subject "<Event> from <camera>" ----

function reolink(): DataMapConfig {
  return config(
    [
      ...accountRules(),
      labelled("eventCode", "Alarm Event", { transforms: [{ kind: "trim" }, toEvents], required: true }),
      {
        field: "eventCode",
        source: { kind: "subject" },
        extractor: { kind: "regex", pattern: "^(?<eventCode>.+?) from .+$" },
        transforms: [{ kind: "trim" }, toEvents],
        note: "else the subject's event: Person Detected from Driveway",
      },
      labelled("zone", "Alarm Input Channel No\\.", { extractor: numberAfter("Alarm Input Channel No\\.") }),
      labelled("camera", "Alarm Camera Name"),
      labelled("device", "Alarm Device Name"),
      subjectText(),
    ],
    events([
      burglary([
        "Motion Detection",
        "Motion Detected",
        "Person Detected",
        "Vehicle Detected",
        "Pet Detected",
        "Animal Detected",
      ]),
    ]),
  );
}

// ---- Hanwha Vision Wisenet Viewer (the PC client's rule emails): "Event trigger: <type> / <device> / <time>" ----

function wisenetViewer(): DataMapConfig {
  return config(
    [
      ...accountRules(),
      {
        field: "eventCode",
        source: { kind: "body" },
        extractor: {
          kind: "regex",
          pattern: "^[ \\t]*Event trigger:[ \\t]*(?<eventCode>[^/\\n]+?)[ \\t]*/",
          flags: "m",
        },
        transforms: [{ kind: "trim" }, toEvents],
        required: true,
      },
      {
        field: "camera",
        source: { kind: "body" },
        extractor: {
          kind: "regex",
          pattern: "^[ \\t]*Event trigger:[^/\\n]*/[ \\t]*(?<camera>[^/\\n]+?)[ \\t]*/",
          flags: "m",
        },
      },
      {
        field: "deviceTime",
        source: { kind: "body" },
        // the time may hold slashes itself (14/03/2024): it is what follows the second " / "
        extractor: {
          kind: "regex",
          pattern: "^[ \\t]*Event trigger:[^/\\n]*/[^/\\n]*/[ \\t]*(?<deviceTime>[^\\n]+?)[ \\t]*$",
          flags: "m",
        },
      },
      labelled("ruleName", "Rule Name"),
      subjectText(),
    ],
    events([
      burglary([
        "MotionDetection",
        "VideoAnalytics",
        "ObjectDetection",
        "AudioDetection",
        "AudioAnalytics",
        "AlarmInput",
      ]),
      tamper(["Tampering", "DefocusDetection"]),
      videoLoss(["Videoloss", "DeviceSystemDisconnected"]),
      entry("BJ", undefined, "380", "Device connected again", ["DeviceSystemConnected"], "restore"),
      entry("ET", "ER", "333", "Recorder storage trouble", ["DeviceStorageStatus"]),
    ]),
  );
}

// ---- RISCO LightSYS "Follow Me" email: "Event: <event>, Zone <n>, <zone name>", "Partition: Partition <n>" ----

function riscoLightsys(): DataMapConfig {
  return config(
    [
      ...accountRules(),
      {
        field: "eventCode",
        source: { kind: "body" },
        extractor: { kind: "regex", pattern: "^[ \\t]*Event:[ \\t]*(?<eventCode>[^,\\n]+)", flags: "m" },
        transforms: [{ kind: "trim" }, toEvents],
        required: true,
        note: "the body's Event line (the manual's own example has another event in the subject)",
      },
      {
        field: "zone",
        source: { kind: "body" },
        extractor: { kind: "regex", pattern: "^[ \\t]*Event:[^\\n]*\\bZone[ \\t]+0*(?<zone>\\d{1,4})", flags: "m" },
      },
      {
        field: "area",
        source: { kind: "body" },
        extractor: {
          kind: "regex",
          pattern: "^[ \\t]*Partition:[ \\t]*Partition[ \\t]+0*(?<area>\\d{1,3})",
          flags: "m",
        },
      },
      labelled("system", "System Name"),
      labelled("text", "Event"),
      subjectText(),
    ],
    events([
      entry("BA", "BR", "130", "Burglary alarm", ["Intruder Alarm", "Burglary Alarm"]),
      entry("FA", "FR", "110", "Fire alarm", ["Fire Alarm"]),
    ]),
  );
}

// ---- LUPUSEC XT1 / XT1 Plus / XT2 panels: a Contact ID line "<1234 18 1131 01 015 8>" in the email ----
// Account, 18, qualifier (1 new, 3 restore) and event, area, zone, checksum (Lupus manuals, see
// test/fixtures/presets/lupusec/SOURCES.md). The line carries the panel's own account and codes: no table.

/** The Contact ID line: account (hex digits), 18 or 98, qualifier + event, area, zone, checksum digit. */
const CONTACT_ID_LINE =
  "<?[ \\t]*(?<account>[0-9A-Fa-f]{4,6})[ \\t]+[19]8[ \\t]+(?<qualifier>[13])(?<eventCode>[0-9A-Fa-f]{3})[ \\t]+(?<area>[0-9]{2})[ \\t]+(?<zone>[0-9]{3})[ \\t]*[0-9A-Fa-f]?[ \\t]*>?";

function lupusecXt(): DataMapConfig {
  const line = (field: string, note?: string): FieldRule => ({
    field,
    source: { kind: "body" },
    extractor: { kind: "regex", pattern: `^[ \\t]*${CONTACT_ID_LINE}[ \\t]*$`, flags: "m" },
    required: field === "eventCode" || field === "account",
    ...(note ? { note } : {}),
  });
  return {
    rules: [
      line("account", "the Contact ID line's own account"),
      line("qualifier", "1 new event, 3 restore"),
      line("eventCode", "the Contact ID event code"),
      line("area"),
      line("zone"),
      subjectText(),
    ],
    tables: { accounts: accountsTable() },
    eventFormat: "CID",
    spoofCheck: { enabled: true, requireHeader: true },
  };
}

const has = (text: string, pattern: RegExp) => pattern.test(text);

/** Most specific first: the first family whose detect() says yes is offered for a pasted email. */
export const DEVICE_PRESETS: readonly DevicePreset[] = [
  {
    id: "hikvision",
    label: "Hikvision camera / DVR / NVR (EVENT TYPE, EVENT TIME lines)",
    detect: (e) =>
      /hikmailer/i.test(e.headers.get("x-mailer") ?? "") ||
      has(e.body, /^[ \t]*EVENT TIME:/m) ||
      has(e.body, /automatically generated e-mail from your (?:IPC|DVR|NVR)/i),
    config: hikvision,
  },
  {
    id: "reolink",
    label: "Reolink camera / NVR (Alarm Camera Name, Alarm Event)",
    detect: (e) =>
      has(e.body, /^[ \t]*Alarm Camera Name:/m) ||
      has(e.subject, /^(?:Motion|Person|Vehicle|Pet|Animal) Detected from /) ||
      has(e.body, /successfully set up and tested the e-mail alert from your IPC/i),
    config: reolink,
  },
  {
    id: "dahua",
    label: "Dahua / Amcrest camera or NVR (Alarm Event, Alarm Input Channel)",
    // Reolink writes "Alarm Event:" too, beside its own "Alarm Camera Name:"
    detect: (e) =>
      !has(e.body, /^[ \t]*Alarm Camera Name:/m) &&
      (has(e.body, /^[ \t]*Alarm Event:/m) ||
        has(e.body, /^[ \t]*Alarm Input Channel/m) ||
        e.subject.trim() === "Mail_Test"),
    config: dahua,
  },
  {
    id: "wisenet-viewer",
    label: "Hanwha Vision Wisenet Viewer rule email (Event trigger)",
    detect: (e) => /^Wisenet Viewer\b/i.test(e.fromName) || has(e.body, /^[ \t]*Event trigger:/m),
    config: wisenetViewer,
  },
  {
    id: "risco-lightsys",
    label: "RISCO LightSYS panel, Follow Me email (Event, Partition)",
    detect: (e) => has(e.subject, /^Alarm Security Message:/i) || has(e.body, /^[ \t]*Service Contact:/m),
    config: riscoLightsys,
  },
  {
    id: "lupusec-xt",
    label: "LUPUSEC XT1 / XT2 panel, Contact ID line (<1234 18 1131 01 015 8>)",
    // The start of the line is enough: a cut line is this family's email too (rejected with its reason).
    detect: (e) => has(e.body, /^[ \t]*<?[0-9A-Fa-f]{4,6}[ \t]+[19]8[ \t]+[0-9A-Fa-f]{4}\b/m),
    config: lupusecXt,
  },
];

/** The device presets whose family the email looks like, most specific first. */
export function detectDevicePresets(email: DeviceEmailView): DevicePreset[] {
  return DEVICE_PRESETS.filter((p) => p.detect(email));
}
