// Builds the DC-09 data block (the text inside the first `[ ]`) from an alarm event (dc09.md "Frame", Data):
// SIA-DCS `#acct|Nri<area>/id<user>/<code><address>` (SIA DC-03 data) and ADM-CID `#acct|QEEE GG ZZZ`
// (Contact ID, SIA DC-05).

export interface AlarmForDc09 {
  account: string;
  eventCode: string;
  eventFormat: "SIA" | "CID";
  qualifier?: "new" | "restore" | "previous";
  zone?: number | null;
  area?: number | null;
  user?: number | null;
}

/**
 * Order of the area (`ri`) and user (`id`) modifiers in a SIA-DCS block. DC-09 allows either; receivers do
 * not all read both: pysiaalarm reads only `id` before `ri` (its SIA content pattern, utils/regexes.py),
 * ioBroker.sia reads either.
 */
export type SiaModifierOrder = "ri-id" | "id-ri";

/** The alarm cannot be expressed in DC-09; the message says which field and why. */
export class Dc09DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Dc09DataError";
  }
}

export const DC09_ACCOUNT_PATTERN = /^[0-9A-Fa-f]{3,16}$/;

export function checkDc09Account(account: string): void {
  if (!DC09_ACCOUNT_PATTERN.test(account)) {
    throw new Dc09DataError(`Account "${account}" is not 3 to 16 hex digits (0-9, A-F)`);
  }
}

function checkNumber(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new Dc09DataError(`${name} ${value} is not a whole number from 0 to ${max}`);
  }
}

// SIA DC-03: restore is part of the code (BA alarm → BR restore), not a qualifier.
const SIA_RESTORE_LETTER: Record<string, string> = { A: "R", T: "J", B: "U" };
const SIA_RESTORE_CODES = /^[A-Z][RJU]$/;
/**
 * Restorals whose second letter is not R, J or U (SIA DC-03 code list): YK communications restoral (of YC
 * communications fail, YS communications trouble, RT unable to report), YQ power supply restored, XH RF
 * interference restoral. A restore given as one of these is sent as it is.
 */
const SIA_OTHER_RESTORALS = new Set(["YK", "YQ", "XH"]);

function siaCodeFor(code: string, qualifier: AlarmForDc09["qualifier"]): string {
  if (qualifier !== "restore" || SIA_RESTORE_CODES.test(code) || SIA_OTHER_RESTORALS.has(code)) return code;
  // Openings (O.) and closings (C.) have no restore: CA (automatic closing) → CR would mean "recent closing".
  const restore = code[0] === "O" || code[0] === "C" ? undefined : SIA_RESTORE_LETTER[code[1]];
  if (!restore) {
    throw new Dc09DataError(
      `SIA code ${code} has no restore form (SIA puts restore in the code: xA→xR, xT→xJ, xB→xU); ` +
        "map the restore code itself",
    );
  }
  return code[0] + restore;
}

/**
 * SIA-DCS data, e.g. `#1234|Nri1/BA01`.
 * - `N` new event; `O` (old event, SIA DC-03) for "previous"; "restore" turns the code into its restore code.
 * - `ri<area>` when an area is known, `id<user>` when a user is known (the modifier order real panels send,
 *   e.g. `Nri1/id3/OP03`).
 * - Address after the code: the zone, at least 2 digits; with no zone the user number (SIA puts the user in
 *   the address of user events such as OP/CL); nothing when neither is known.
 * Numbers go up to 9999 (4-digit zones exist on large panels).
 */
export function siaDcsData(a: AlarmForDc09, order: SiaModifierOrder = "ri-id"): string {
  if (a.eventFormat !== "SIA") throw new Dc09DataError(`Event ${a.eventCode} is a ${a.eventFormat} code, not SIA`);
  checkDc09Account(a.account);
  const given = a.eventCode.trim().toUpperCase();
  if (!/^[A-Z]{2}$/.test(given)) throw new Dc09DataError(`SIA event code "${a.eventCode}" is not two letters`);
  const code = siaCodeFor(given, a.qualifier);
  const modifiers: string[] = [];
  if (a.area != null) {
    checkNumber("Area", a.area, 9999);
    modifiers.push(`ri${a.area}`);
  }
  if (a.user != null) {
    checkNumber("User", a.user, 9999);
    modifiers.push(`id${a.user}`);
  }
  if (a.zone != null) checkNumber("Zone", a.zone, 9999);
  const address = a.zone ?? a.user;
  const event = code + (address == null ? "" : String(address).padStart(2, "0"));
  const block = a.qualifier === "previous" ? "O" : "N";
  if (order === "id-ri") modifiers.reverse();
  return `#${a.account}|${block}${[...modifiers, event].join("/")}`;
}

/**
 * The same SIA-DCS data with its `ri` and `id` modifiers in the other order, or undefined when the block does
 * not carry both (nothing to reorder). Works on data already in the outbox, whatever order built it.
 */
export function swapSiaModifiers(data: string): string | undefined {
  const m = /^(#[0-9A-Fa-f]{3,16}\|[NO])(ri\d+|id\d+)\/(ri\d+|id\d+)\/(.*)$/.exec(data);
  if (!m || m[2]!.slice(0, 2) === m[3]!.slice(0, 2)) return undefined;
  return `${m[1]}${m[3]}/${m[2]}/${m[4]}`;
}

// Contact ID codes whose ZZZ field carries a user number, not a zone (SIA DC-05 Appendix C).
const CID_USER_EVENTS = new Set([
  121, 313, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 411, 412, 413, 414, 415, 421, 422, 424, 425, 429, 430,
  431, 440, 441, 442, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 462, 463, 464, 466, 574, 604, 607, 625, 642,
  652, 653,
]);

const CID_QUALIFIER = { new: "1", restore: "3", previous: "6" } as const;

/**
 * ADM-CID data, e.g. `#1234|1130 01 015`: Q (1 new, 3 restore, 6 previous) EEE event, GG partition (the
 * area, 00 when unknown), ZZZ zone; for user events (DC-05 list above) ZZZ is the user number (falling back to
 * the zone). 000 when unknown.
 */
export function admCidData(a: AlarmForDc09): string {
  if (a.eventFormat !== "CID") throw new Dc09DataError(`Event ${a.eventCode} is a ${a.eventFormat} code, not CID`);
  checkDc09Account(a.account);
  const event = a.eventCode.trim();
  if (!/^\d{3}$/.test(event)) throw new Dc09DataError(`Contact ID event code "${a.eventCode}" is not 3 digits`);
  const partition = a.area ?? 0;
  checkNumber("Partition (area)", partition, 99);
  if (a.zone != null) checkNumber("Zone", a.zone, 999);
  if (a.user != null) checkNumber("User", a.user, 999);
  const number = CID_USER_EVENTS.has(Number(event)) ? (a.user ?? a.zone ?? 0) : (a.zone ?? 0);
  const qualifier = CID_QUALIFIER[a.qualifier ?? "new"];
  return `#${a.account}|${qualifier}${event} ${String(partition).padStart(2, "0")} ${String(number).padStart(3, "0")}`;
}
