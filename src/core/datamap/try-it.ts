// The editor's "Try it" panel: a pasted email and the rules being edited (not yet deployed) -> what the
// rules see after preprocessing and what each rule extracts. Config problems come back as a list instead of
// an exception, so the panel can show them next to the rules.
import { parseEmail, UnreadableEmailError } from "../mail/parse-email";
import { type CompiledDataMap, compileDataMap, DataMapConfigError } from "./compile";
import { type DeviceEmailView, detectDevicePresets } from "./device-presets";
import { viewEmail } from "./email-view";
import { DEFAULT_LIMITS, prepareFor } from "./map-email";
import { DEFAULT_PREPROCESS, type PreparedEmail } from "./preprocess";
import type { DataMapConfig, MapInput, MappableEmail, MapResult } from "./types";

/** A device preset whose family the tried email looks like: the editor offers to load it. */
export interface PresetMatch {
  id: string;
  label: string;
}

export type TryItResult =
  | { config: "invalid"; problems: string[] }
  | { config: "ok"; email: "unreadable"; problem: string }
  | { config: "ok"; email: "read"; prepared: PreparedEmail; result: MapResult; presets: PresetMatch[] };

/** The email as a device preset's detect() reads it: preprocessed with the defaults (HTML as text). */
export function deviceEmailView(email: MappableEmail): DeviceEmailView {
  const view = viewEmail(email);
  const prepared = prepareFor({ preprocess: { ...DEFAULT_PREPROCESS }, limits: DEFAULT_LIMITS }, view);
  const headers = new Map(Object.entries(view.headers).map(([k, v]) => [k, String(v)]));
  return { subject: prepared.subject, body: prepared.body, fromName: view.from[0]?.name ?? "", headers };
}

function presetsFor(email: MappableEmail): PresetMatch[] {
  return detectDevicePresets(deviceEmailView(email)).map((p) => ({ id: p.id, label: p.label }));
}

function compileForTry(config: DataMapConfig): CompiledDataMap | { problems: string[] } {
  try {
    return compileDataMap(config);
  } catch (err) {
    return { problems: err instanceof DataMapConfigError ? err.problems : [String(err)] };
  }
}

/** Maps an already parsed email with a config that may not compile. */
export async function tryDataMap(config: DataMapConfig, input: MapInput): Promise<TryItResult> {
  const compiled = compileForTry(config);
  if ("problems" in compiled) return { config: "invalid", problems: compiled.problems };
  const prepared = compiled.prepare(input.email);
  const result = await compiled.map(input);
  return { config: "ok", email: "read", prepared, result, presets: presetsFor(input.email) };
}

/** Maps a raw RFC 5322 email as pasted into the editor (LF line ends are fine). */
export async function tryDataMapOnRawEmail(
  config: DataMapConfig,
  raw: string | Buffer,
  msg?: Record<string, unknown>,
): Promise<TryItResult> {
  const compiled = compileForTry(config);
  if ("problems" in compiled) return { config: "invalid", problems: compiled.problems };
  let email: Awaited<ReturnType<typeof parseEmail>>;
  try {
    // no spool directory: attachments over the in-memory limit are dropped, which a preview does not need
    email = await parseEmail(typeof raw === "string" ? Buffer.from(raw, "utf8") : raw);
  } catch (err) {
    const problem = err instanceof UnreadableEmailError ? err.message : `could not read the email: ${String(err)}`;
    return { config: "ok", email: "unreadable", problem };
  }
  const input: MapInput = { email, msg, receivedAt: new Date().toISOString() };
  const prepared = compiled.prepare(email);
  const result = await compiled.map(input);
  return { config: "ok", email: "read", prepared, result, presets: presetsFor(email) };
}
