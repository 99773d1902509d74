// Device presets against the fixtures built from published email text (test/fixtures/presets/<family>/,
// each with SOURCES.md): every alarm fixture maps to the expected alarm, every near miss goes out the
// second output with its reason, and a pasted email picks its family's preset.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { compileDataMap, type DataMapConfig, DEVICE_PRESETS, detectDevicePresets } from "../../src/core/datamap";
import { deviceEmailView } from "../../src/core/datamap/try-it";
import { type ParsedEmail, parseEmail } from "../../src/core/mail/parse-email";

const DIR = join(__dirname, "..", "fixtures", "presets");
const RECEIVED_AT = "2026-12-01T08:15:03.000Z";

interface Want {
  preset: string;
  alarm?: {
    account?: string;
    eventCode: string;
    qualifier?: string;
    cid?: string;
    zone?: number | null;
    area?: number | null;
  };
  extra?: Record<string, string>;
  /** Part of the rejection reason of a near miss. */
  rejected?: string;
}

const WANT: Record<string, Want> = {
  "hikvision/ipc-intrusion.eml": {
    preset: "hikvision",
    alarm: { eventCode: "BA", cid: "130", zone: 1 },
    extra: { camera: "Garden", device: "GARDEN-IPC", deviceTime: "2015-05-22,14:52:18" },
  },
  "hikvision/dvr-motion.eml": {
    preset: "hikvision",
    alarm: { eventCode: "BA", zone: 2 },
    extra: { camera: "CAM 2 Garage(A2)", device: "Embedded Net DVR" },
  },
  "hikvision/nvr-motion.eml": { preset: "hikvision", alarm: { eventCode: "BA", zone: 4 }, extra: { camera: "D4(D4)" } },
  "hikvision/unbranded-clone-ipc-motion.eml": {
    preset: "hikvision",
    alarm: { eventCode: "BA", zone: 1 },
    extra: { deviceTime: "27/12/2021 17:42:19" },
  },
  "hikvision/near-miss.eml": { preset: "hikvision", rejected: "eventCode is required but empty" },
  "dahua/ipc-motion.eml": { preset: "dahua", alarm: { eventCode: "BA", zone: 1 }, extra: { device: "IPC06" } },
  "dahua/ipc-intrusion.eml": {
    preset: "dahua",
    alarm: { eventCode: "BA", zone: 1 },
    extra: { camera: "Front Entrance" },
  },
  "dahua/ezip-motion-start.eml": { preset: "dahua", alarm: { eventCode: "BA", zone: 1 }, extra: { device: "EZIP08" } },
  "dahua/amcrest-oem-motion-detect.eml": {
    preset: "dahua",
    alarm: { eventCode: "BA", zone: 1 },
    extra: { deviceTime: "16/11/2018 20:54:54" },
  },
  "dahua/nvr-motion.eml": {
    preset: "dahua",
    alarm: { eventCode: "BA", zone: 2 },
    extra: { camera: "IPC", device: "NVR-0A1B" },
  },
  "dahua/near-miss.eml": { preset: "dahua", rejected: "eventCode is required but empty" },
  "reolink/motion.eml": { preset: "reolink", alarm: { eventCode: "BA", zone: 1 }, extra: { camera: "Front Door" } },
  "reolink/person.eml": { preset: "reolink", alarm: { eventCode: "BA", zone: 1 }, extra: { camera: "Driveway" } },
  "reolink/near-miss.eml": { preset: "reolink", rejected: "eventCode is required but empty" },
  "hanwha/motion.eml": {
    preset: "wisenet-viewer",
    alarm: { eventCode: "BA" },
    extra: { camera: "NVR-01(192.0.2.10) - CAM-01" },
  },
  "hanwha/motion-en-gb-date.eml": {
    preset: "wisenet-viewer",
    alarm: { eventCode: "BA" },
    extra: { deviceTime: "14/03/2024 14:05:09" },
  },
  "hanwha/video-analytics.eml": { preset: "wisenet-viewer", alarm: { eventCode: "BA" } },
  "hanwha/alarm-input.eml": { preset: "wisenet-viewer", alarm: { eventCode: "BA" } },
  "hanwha/tampering.eml": { preset: "wisenet-viewer", alarm: { eventCode: "TA", cid: "137" } },
  "hanwha/video-loss.eml": { preset: "wisenet-viewer", alarm: { eventCode: "BT", cid: "380" } },
  "hanwha/device-disconnected.eml": { preset: "wisenet-viewer", alarm: { eventCode: "BT", cid: "380" } },
  "hanwha/storage-status.eml": { preset: "wisenet-viewer", alarm: { eventCode: "ET", cid: "333" } },
  "hanwha/near-miss.eml": { preset: "wisenet-viewer", rejected: "eventCode is required but empty" },
  "risco/alarm-zone.eml": {
    preset: "risco-lightsys",
    alarm: { eventCode: "FA", cid: "110", zone: 5, area: 1 },
    extra: { system: "John's Residence" },
  },
  "risco/near-miss.eml": { preset: "risco-lightsys", rejected: "eventCode is required but empty" },
  "lupusec/perimeter-alarm.eml": {
    preset: "lupusec-xt",
    alarm: { account: "1234", eventCode: "131", cid: "131", zone: 15, area: 1 },
  },
  "lupusec/near-miss.eml": { preset: "lupusec-xt", rejected: "account is required but empty" },
};

const fixtures = readdirSync(DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(DIR, d.name))
      .filter((f) => f.endsWith(".eml"))
      .map((f) => `${d.name}/${f}`),
  )
  .sort();

/** The preset as a user sets it up: this device's sender address belongs to alarm account 1234. */
function configured(presetId: string, email: ParsedEmail): DataMapConfig {
  const preset = DEVICE_PRESETS.find((p) => p.id === presetId);
  assert.ok(preset, `no preset ${presetId}`);
  const config = preset.config();
  const sender = email.from[0]?.address ?? "";
  config.tables = {
    ...config.tables,
    accounts: { kind: "values", entries: [{ match: [sender], value: "1234" }], phrases: false },
  };
  // The fixtures come without the receiving server's Authentication-Results.
  config.spoofCheck = { enabled: false };
  return config;
}

async function read(file: string): Promise<ParsedEmail> {
  return parseEmail(readFileSync(join(DIR, file)));
}

describe("device presets on emails built from published text", () => {
  it("has an expectation for every fixture, and every family has a near miss and a SOURCES.md", () => {
    assert.deepEqual(fixtures, Object.keys(WANT).sort());
    for (const family of new Set(fixtures.map((f) => f.split("/")[0]))) {
      assert.ok(fixtures.includes(`${family}/near-miss.eml`), `${family} has no near miss`);
      const sources = readFileSync(join(DIR, family ?? "", "SOURCES.md"), "utf8");
      // a URL, or a repository and path
      assert.match(sources, /https?:\/\/|\b[\w.-]+\/[\w.-]+`?,? `[\w./-]+`/, `${family} cites no source`);
    }
  });

  for (const file of Object.keys(WANT).sort()) {
    const want = WANT[file] as Want;
    it(`${file}: ${want.rejected ? "rejected" : want.alarm?.eventCode} by ${want.preset}`, async () => {
      const email = await read(file);
      const result = await compileDataMap(configured(want.preset, email)).map({ email, receivedAt: RECEIVED_AT });
      if (want.rejected) {
        assert.equal(result.ok, false, `mapped: ${JSON.stringify(result.ok && result.alarm)}`);
        if (!result.ok) assert.ok(result.reason.includes(want.rejected), result.reason);
        return;
      }
      if (!result.ok) assert.fail(`rejected by rule ${result.rule}: ${result.reason}`);
      const a = result.alarm;
      const w = want.alarm ?? { eventCode: "" };
      assert.equal(a.account, w.account ?? "1234");
      assert.equal(a.eventCode, w.eventCode);
      assert.equal(a.qualifier, w.qualifier ?? "new");
      if (w.cid) assert.equal(a.cidEvent, w.cid);
      if (w.zone !== undefined) assert.equal(a.zone, w.zone);
      if (w.area !== undefined) assert.equal(a.area, w.area);
      for (const [k, v] of Object.entries(want.extra ?? {})) assert.equal(a.extra[k], v, `extra.${k}`);
      assert.ok(a.text.length > 0, "an alarm text");
    });
  }

  it("a pasted email picks its family's preset, and only that one", async () => {
    for (const file of fixtures) {
      const email = await read(file);
      const found = detectDevicePresets(deviceEmailView(email)).map((p) => p.id);
      assert.deepEqual(found, [WANT[file]?.preset], file);
    }
  });

  it("the account comes from the recipient's tag before the accounts table", async () => {
    const raw = readFileSync(join(DIR, "reolink/motion.eml"), "latin1").replace(
      /^To: .*$/m,
      "To: Alarm Gateway <alarms+00C4A1@gateway.example.com>",
    );
    const email = await parseEmail(Buffer.from(raw, "latin1"));
    const result = await compileDataMap(configured("reolink", email)).map({ email, receivedAt: RECEIVED_AT });
    assert.ok(result.ok && result.alarm.account === "00C4A1", JSON.stringify(result));
  });

  it("a device nobody put in the accounts table is rejected with the reason", async () => {
    const email = await read("hikvision/ipc-intrusion.eml");
    const config = configured("hikvision", email);
    config.tables = { ...config.tables, accounts: { kind: "values", entries: [], phrases: false } };
    const result = await compileDataMap(config).map({ email, receivedAt: RECEIVED_AT });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /account is required but empty/);
  });

  it("an event name the family table does not know is rejected, naming it", async () => {
    const raw = readFileSync(join(DIR, "dahua/ipc-motion.eml"));
    const email = await parseEmail(raw);
    email.text = email.text.replace("Motion Detection", "Audio Detection");
    const result = await compileDataMap(configured("dahua", email)).map({ email, receivedAt: RECEIVED_AT });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /Audio Detection/);
  });

  it("a LUPUSEC Contact ID line with qualifier 3 is a restore, its account the panel's own", async () => {
    const email = await read("lupusec/perimeter-alarm.eml");
    email.text = email.text.replace("<1234 18 1131 01 015 8>", "<0A1B 18 3131 01 015 8>");
    const result = await compileDataMap(configured("lupusec-xt", email)).map({ email, receivedAt: RECEIVED_AT });
    if (!result.ok) assert.fail(result.reason);
    assert.deepEqual(
      [result.alarm.account, result.alarm.eventCode, result.alarm.qualifier],
      ["0A1B", "131", "restore"],
    );
    assert.equal(result.alarm.eventFormat, "CID");
  });

  it("the end of a Dahua motion event is a restore", async () => {
    const email = await read("dahua/ezip-motion-start.eml");
    email.text = email.text.replace("Motion Detection Start", "Motion Detection Stop");
    const result = await compileDataMap(configured("dahua", email)).map({ email, receivedAt: RECEIVED_AT });
    if (!result.ok) assert.fail(result.reason);
    assert.equal(result.alarm.eventCode, "BR");
    assert.equal(result.alarm.qualifier, "restore");
  });
});
