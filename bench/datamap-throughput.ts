// Throughput of the data-map: maps per second on one core for a 10-rule map over plain-text alarm emails,
// the same map with one JSONata rule (asynchronous), and the temperature-logger preset (wording lookup).
// Run: node --import tsx bench/datamap-throughput.ts [--seconds 3] [--write-results]
// Goal: >= 100k maps/s for the 10-rule synchronous map.
import { compileDataMap, type DataMapConfig, type FieldRule, temperatureLoggerPreset } from "../src/core/datamap";
import { type ParsedEmail, parseEmail } from "../src/core/mail/parse-email";
import { machine, writeSection } from "./results-file";

const argSeconds = process.argv.indexOf("--seconds");
const SECONDS = argSeconds > 0 ? Number(process.argv[argSeconds + 1]) : 3;
const EMAILS = 1000;

const tenRules: FieldRule[] = [
  {
    field: "account",
    source: { kind: "bodyLine", line: 1 },
    extractor: { kind: "whole" },
    transforms: [{ kind: "trim" }],
    required: true,
  },
  {
    field: "eventCode",
    source: { kind: "bodyLine", line: 2 },
    extractor: { kind: "whole" },
    transforms: [{ kind: "trim" }, { kind: "upper" }, { kind: "translate", table: "events" }],
    required: true,
  },
  {
    field: "zone",
    source: { kind: "bodyLine", line: 3 },
    extractor: { kind: "whole" },
    transforms: [{ kind: "trim" }],
    required: true,
  },
  {
    field: "area",
    source: { kind: "bodyLine", line: 4 },
    extractor: { kind: "whole" },
    transforms: [{ kind: "trim" }],
  },
  {
    field: "user",
    source: { kind: "body" },
    extractor: { kind: "label", label: "User" },
    transforms: [{ kind: "default", value: "0" }],
  },
  { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [{ kind: "trim" }] },
  {
    field: "qualifier",
    source: { kind: "subject" },
    extractor: { kind: "regex", pattern: "\\b(?<qualifier>restored?|cleared)\\b", flags: "i" },
    transforms: [{ kind: "lower" }],
  },
  { field: "sender", source: { kind: "sender" }, extractor: { kind: "whole" }, transforms: [{ kind: "lower" }] },
  {
    field: "panel",
    source: { kind: "header", name: "X-Panel-Id" },
    extractor: { kind: "whole" },
    transforms: [{ kind: "default", value: "none" }],
  },
  {
    field: "mailbox",
    source: { kind: "recipient" },
    extractor: { kind: "regex", pattern: "^(?<mailbox>[^@\\s]{1,64})@" },
    transforms: [{ kind: "pad", length: 8, char: "_", side: "right" }],
  },
];

const tenRulesWithJsonata: FieldRule[] = [
  ...tenRules.slice(0, 9),
  {
    field: "mailbox",
    source: { kind: "recipient" },
    extractor: { kind: "jsonata", expression: '$uppercase($substringBefore(source, "@"))' },
  },
];

const CODES = ["BA", "FA", "PA", "TA", "AT", "YT", "KH", "WA", "BR", "FR"];

function rawClassicEmail(i: number): string {
  const account = (0x100000 + i * 7919).toString(16).toUpperCase().slice(-6);
  const restore = i % 10 === 9;
  return [
    "From: Alarm Panel <panel@site.example>",
    `To: alarms${i % 3}@gateway.example`,
    `Subject: ${restore ? "Alarm restored" : "Alarm"}`,
    `Message-ID: <bench-${i}@site.example>`,
    "Date: Tue, 01 Jul 2025 10:15:00 +0200",
    // as Exchange Online writes it
    "Authentication-Results: spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=site.example; dkim=none (message " +
      "not signed) header.d=none;dmarc=pass action=none header.from=site.example;compauth=pass reason=100",
    i % 4 === 0 ? `X-Panel-Id: P${i}` : "X-Mailer: panel",
    "Content-Type: text/plain; charset=utf-8",
    "",
    account,
    CODES[i % CODES.length],
    String(1 + (i % 64)),
    String(1 + (i % 4)),
    ...(i % 5 === 0 ? ["User: 12"] : []),
    ...(i % 7 === 0 ? ["", "Sent from my iPhone"] : []),
    "",
  ].join("\r\n");
}

function rawTemperatureEmail(i: number): string {
  const kind = ["High Temperature Alarm", "Low Temperature Alarm", "High Temperature Alarm cleared"][i % 3];
  return [
    "From: Logger <logger@cold.example>",
    "To: alarms@gateway.example",
    `Subject: ${kind} at Pantry Freezer ${1 + (i % 9)}, site ${4400 + (i % 90)}`,
    `Message-ID: <t-${i}@cold.example>`,
    "Date: Tue, 01 Jul 2025 10:15:00 +0200",
    "",
    `Reading: ${(-8 - (i % 10) / 10).toFixed(1)} °C`,
    "Time: 2025-07-01T10:15:00+02:00",
    "",
  ].join("\r\n");
}

async function emails(make: (i: number) => string): Promise<ParsedEmail[]> {
  const out: ParsedEmail[] = [];
  for (let i = 0; i < EMAILS; i++) out.push(await parseEmail(Buffer.from(make(i))));
  return out;
}

interface Measured {
  name: string;
  rules: number;
  mapsPerSecond: number;
  microsPerMap: number;
}

async function measure(name: string, config: DataMapConfig, list: ParsedEmail[]): Promise<Measured> {
  const map = compileDataMap(config);
  // every email must map, or the bench measures rejections
  for (const email of list) {
    const r = await map.map({ email, receivedAt: "2025-07-01T08:15:01.000Z" });
    if (!r.ok) throw new Error(`${name}: ${email.messageId} rejected by ${r.rule}: ${r.reason}`);
  }
  const run = async (ms: number): Promise<number> => {
    const end = performance.now() + ms;
    let n = 0;
    while (performance.now() < end) {
      if (map.async) {
        for (let i = 0; i < list.length; i++) await map.map({ email: list[i] });
      } else {
        for (let i = 0; i < list.length; i++) map.map({ email: list[i] });
      }
      n += list.length;
    }
    return n;
  };
  await run(1000); // warm-up: let V8 optimise
  const t0 = performance.now();
  const n = await run(SECONDS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const result = { name, rules: config.rules.length, mapsPerSecond: n / seconds, microsPerMap: (seconds * 1e6) / n };
  console.log(
    `${name.padEnd(52)} ${String(result.rules).padStart(2)} rules  ${Math.round(result.mapsPerSecond)
      .toLocaleString("en")
      .padStart(9)} maps/s  ${result.microsPerMap.toFixed(2)} µs/map`,
  );
  return result;
}

async function main(): Promise<void> {
  console.log(`data-map throughput, one core, ${machine()}`);
  const classic = await emails(rawClassicEmail);
  const temperature = await emails(rawTemperatureEmail);
  const results = [
    await measure("10-rule map, plain-text classic alarms (sync)", { rules: tenRules }, classic),
    await measure(
      "same, with allow-list and spoof check on",
      { rules: tenRules, allowSenders: ["@site.example"], spoofCheck: { enabled: true, requireHeader: true } },
      classic,
    ),
    await measure("10-rule map with one JSONata rule (async)", { rules: tenRulesWithJsonata }, classic),
    await measure("temperature-logger preset (wording lookup)", temperatureLoggerPreset(), temperature),
  ];
  const goal = results[0].mapsPerSecond >= 100_000;
  console.log(`goal >= 100,000 maps/s for the 10-rule map: ${goal ? "met" : "NOT met"}`);
  if (process.argv.includes("--write-results")) {
    const rows = results.map(
      (r) =>
        `| ${r.name} | ${r.rules} | ${Math.round(r.mapsPerSecond).toLocaleString("en")} | ` +
        `${r.microsPerMap.toFixed(2)} |`,
    );
    writeSection(
      "datamap-throughput",
      [
        "## Data-map throughput",
        "",
        `\`node --import tsx bench/datamap-throughput.ts\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}.`,
        `${EMAILS} parsed emails mapped in a loop on one core for ${SECONDS} s after a 1 s warm-up.`,
        "",
        "| map | rules | maps/s | µs/map |",
        "| --- | ----- | ------ | ------ |",
        ...rows,
      ].join("\n"),
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
