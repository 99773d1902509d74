// Ready-made configs the editor offers as starting points. Each call returns a fresh object the editor may
// change freely.
import { DEVICE_PRESETS } from "./device-presets";
import type { DataMapConfig, FieldRule } from "./types";

type Transform = NonNullable<FieldRule["transforms"]>[number];
// functions, so that no two configs share a transform object the editor might change
const trim = (): Transform => ({ kind: "trim" });
const upper = (): Transform => ({ kind: "upper" });
const toEvent = (): Transform => ({ kind: "translate", table: "events" });

function bodyLine(field: string, line: number, required: boolean, extra: Transform[] = []): FieldRule {
  return {
    field,
    source: { kind: "bodyLine", line },
    extractor: { kind: "whole" },
    transforms: [trim(), ...extra],
    required,
  };
}

/**
 * The classic alarm email: Subject "Alarm", body of four lines: account (TXID), SIA code, zone, area.
 *   123588
 *   BA
 *   1
 *   1
 */
export function defaultDataMapConfig(): DataMapConfig {
  return {
    rules: [
      bodyLine("account", 1, true),
      bodyLine("eventCode", 2, true, [upper(), toEvent()]),
      bodyLine("zone", 3, true),
      bodyLine("area", 4, false),
      { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [trim()] },
    ],
    eventFormat: "SIA",
    spoofCheck: { enabled: true },
  };
}

function slashPart(field: string, part: number, required: boolean, extra: Transform[] = []): FieldRule {
  return {
    field,
    source: { kind: "bodyLine", line: 1 },
    extractor: { kind: "split", delimiter: "/", part },
    transforms: [trim(), ...extra],
    required,
  };
}

/** The classic alarm on one line: "123588 / BA / 1 / 1" (account / SIA code / zone / area). */
export function classicOneLinePreset(): DataMapConfig {
  return {
    rules: [
      slashPart("account", 1, true),
      slashPart("eventCode", 2, true, [upper(), toEvent()]),
      slashPart("zone", 3, true),
      slashPart("area", 4, false),
      { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [trim()] },
    ],
    eventFormat: "SIA",
    spoofCheck: { enabled: true },
  };
}

/**
 * Temperature loggers: "High Temperature Alarm at Pantry Freezer 3, site 4471". The event comes from the
 * wording (events table), the account from "site NNNN", the zone from the number ending the location.
 */
export function temperatureLoggerPreset(): DataMapConfig {
  return {
    rules: [
      {
        field: "account",
        source: { kind: "subject" },
        extractor: {
          kind: "regex",
          pattern: "\\bsite\\s{0,3}(?:no\\.?|#|:)?\\s{0,3}(?<account>[0-9A-Fa-f]{3,16})\\b",
          flags: "i",
        },
        required: true,
        note: "the site number in the subject",
      },
      {
        field: "account",
        source: { kind: "body" },
        extractor: { kind: "label", label: "Site" },
        transforms: [trim()],
        note: "else a Site: line in the body",
      },
      {
        field: "eventCode",
        source: { kind: "subject" },
        extractor: { kind: "whole" },
        transforms: [toEvent()],
        required: true,
      },
      {
        field: "zone",
        source: { kind: "subject" },
        extractor: { kind: "regex", pattern: "\\bat\\b[^,\\n]{0,120}?(?<zone>\\d{1,4})\\s{0,3}(?:,|$)", flags: "i" },
        note: "the number ending the location, e.g. Freezer 3",
      },
      { field: "occurredAt", source: { kind: "body" }, extractor: { kind: "label", label: "Time" } },
      { field: "reading", source: { kind: "body" }, extractor: { kind: "label", label: "Reading" } },
      { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [trim()] },
    ],
    eventFormat: "CID",
    spoofCheck: { enabled: true },
  };
}

/**
 * IP cameras and NVRs sending HTML with a snapshot: the account is the recipient's local part or +tag
 * (123588@alarms.example or alarms+123588@…), the event and channel come from the HTML table.
 */
export function cameraPreset(): DataMapConfig {
  return {
    preprocess: { preferHtml: true },
    rules: [
      {
        field: "account",
        source: { kind: "recipient" },
        extractor: { kind: "regex", pattern: "(?:^|\\+)(?<account>[0-9A-Fa-f]{3,16})@", flags: "m" },
        required: true,
      },
      {
        field: "eventCode",
        source: { kind: "body" },
        extractor: { kind: "label", label: "Event Type" },
        transforms: [toEvent()],
      },
      {
        field: "eventCode",
        source: { kind: "subject" },
        extractor: { kind: "whole" },
        transforms: [toEvent()],
        required: true,
        note: "else the wording of the subject",
      },
      { field: "zone", source: { kind: "body" }, extractor: { kind: "label", label: "Channel No." } },
      { field: "camera", source: { kind: "body" }, extractor: { kind: "label", label: "Device Name" } },
      { field: "text", source: { kind: "subject" }, extractor: { kind: "whole" }, transforms: [trim()] },
    ],
    eventFormat: "SIA",
    spoofCheck: { enabled: true },
  };
}

export interface DataMapPreset {
  id: string;
  label: string;
  config: () => DataMapConfig;
}

/** For the editor's "start from" list. */
export const DATA_MAP_PRESETS: readonly DataMapPreset[] = [
  {
    id: "classic",
    label: "Classic alarm email: account, SIA code, zone, area on four lines",
    config: defaultDataMapConfig,
  },
  { id: "classic-one-line", label: 'Classic alarm on one line: "123588 / BA / 1 / 1"', config: classicOneLinePreset },
  { id: "temperature-logger", label: "Temperature logger: wording and site number", config: temperatureLoggerPreset },
  { id: "camera", label: "IP camera / NVR HTML email with snapshot", config: cameraPreset },
  // Device families, from their published email text (device-presets.ts).
  ...DEVICE_PRESETS.map((p) => ({ id: p.id, label: p.label, config: p.config })),
];
