// Checks and normalises the values the rules produced into an AlarmEvent's fields. Each function returns the
// normalised value or an Invalid whose reason says exactly what is wrong with which value.
import type { EventFormat, NumberRange, Qualifier, ValidationRanges } from "./types";

export class Invalid {
  constructor(readonly reason: string) {}
}

/** Default ranges: Contact ID has 3-digit zones/users and 2-digit partitions; SIA allows more. */
export const DEFAULT_RANGES: Readonly<Record<EventFormat, Required<ValidationRanges>>> = {
  CID: { zone: { min: 0, max: 999 }, area: { min: 0, max: 99 }, user: { min: 0, max: 999 } },
  SIA: { zone: { min: 0, max: 9999 }, area: { min: 0, max: 999 }, user: { min: 0, max: 9999 } },
};

export function rangesFor(format: EventFormat, configured: ValidationRanges | undefined): Required<ValidationRanges> {
  const d = DEFAULT_RANGES[format];
  return { zone: configured?.zone ?? d.zone, area: configured?.area ?? d.area, user: configured?.user ?? d.user };
}

/** Problems of configured ranges, for compile. */
export function rangeProblems(ranges: unknown): string[] {
  if (ranges === undefined) return [];
  if (typeof ranges !== "object" || ranges === null) return ["validation: is not an object"];
  const problems: string[] = [];
  for (const [name, r] of Object.entries(ranges as Record<string, unknown>)) {
    if (name !== "zone" && name !== "area" && name !== "user") {
      problems.push(`validation.${name}: only zone, area and user have ranges`);
      continue;
    }
    const { min, max } = (typeof r === "object" && r !== null ? r : {}) as Record<string, unknown>;
    const ok = (n: unknown): boolean => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
    if (!ok(min) || !ok(max) || (min as number) > (max as number)) {
      problems.push(`validation.${name}: ${JSON.stringify(r)} is not a range {min, max} of whole numbers min <= max`);
    }
  }
  return problems;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

const HEX_ACCOUNT = /^[0-9A-Fa-f]{3,16}$/;
const SIA_CODE = /^[A-Za-z]{2}$/;
const CID_EVENT = /^\d{3}$/;
const DIGITS = /^\d+$/;

export function checkAccount(value: string): string | Invalid {
  const v = value.trim();
  if (HEX_ACCOUNT.test(v)) return v.toUpperCase();
  if (v.length < 3 || v.length > 16) {
    return new Invalid(`account ${quote(v)} has ${v.length} characters; it must have 3-16 hexadecimal characters`);
  }
  return new Invalid(`account ${quote(v)} is not hexadecimal (0-9, A-F)`);
}

export function checkEventCode(value: string, format: EventFormat): string | Invalid {
  const v = value.trim();
  if (format === "SIA") {
    if (SIA_CODE.test(v)) return v.toUpperCase();
    return new Invalid(`eventCode ${quote(v)} is not a SIA event code (two letters, e.g. BA)`);
  }
  if (CID_EVENT.test(v)) return v;
  return new Invalid(`eventCode ${quote(v)} is not a Contact ID event (three digits, e.g. 130)`);
}

const FORMAT_WORDS: Record<string, EventFormat> = {
  sia: "SIA",
  "sia-dcs": "SIA",
  "dc-03": "SIA",
  cid: "CID",
  "contact id": "CID",
  contactid: "CID",
  "contact-id": "CID",
  "ademco contact id": "CID",
  adm: "CID",
  "adm-cid": "CID",
};

export function checkEventFormat(value: string): EventFormat | Invalid {
  const format = FORMAT_WORDS[value.trim().toLowerCase()];
  return format ?? new Invalid(`eventFormat ${quote(value)} is not SIA or CID (Contact ID)`);
}

const QUALIFIER_WORDS: Record<string, Qualifier> = {
  new: "new",
  "1": "new",
  e: "new",
  event: "new",
  alarm: "new",
  opening: "new",
  open: "new",
  restore: "restore",
  "3": "restore",
  r: "restore",
  restored: "restore",
  restoral: "restore",
  closing: "restore",
  close: "restore",
};

export function checkQualifier(value: string): Qualifier | Invalid {
  const q = QUALIFIER_WORDS[value.trim().toLowerCase()];
  return q ?? new Invalid(`qualifier ${quote(value)} is not new or restore (1/3, E/R)`);
}

/** A whole number (leading zeros allowed) within the range. */
export function checkNumber(name: string, value: string, range: NumberRange): number | Invalid {
  const v = value.trim();
  if (!DIGITS.test(v)) return new Invalid(`${name} ${quote(v)} is not a whole number`);
  const n = Number(v);
  if (n < range.min || n > range.max) {
    return new Invalid(`${name} ${quote(v)} is out of range ${range.min}-${range.max}`);
  }
  return n;
}

const EPOCH = /^\d{9,13}$/;
const MIN_TIME = Date.UTC(1970, 0, 1);
const MAX_TIME = Date.UTC(2200, 0, 1);

/**
 * ISO 8601 / RFC 2822 text, or Unix time in seconds (9-11 digits) or milliseconds (12-13 digits). Text without a
 * time zone is read as the local time of the host. Anything else is invalid: Date.parse reads "7" as a year.
 */
export function checkDate(name: string, value: string): string | Invalid {
  const v = value.trim();
  let time: number;
  if (EPOCH.test(v)) time = v.length >= 12 ? Number(v) : Number(v) * 1000;
  else if (DIGITS.test(v) || v === "") time = Number.NaN;
  else time = Date.parse(v);
  if (Number.isNaN(time)) {
    return new Invalid(`${name} ${quote(v)} is not a date (use ISO 8601 or RFC 2822, or a JSONata rule)`);
  }
  if (time < MIN_TIME || time > MAX_TIME) return new Invalid(`${name} ${quote(v)} is not between 1970 and 2200`);
  return new Date(time).toISOString();
}
