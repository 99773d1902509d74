// Who may raise alarms: an optional allow-list of sender addresses or domains, and a spoof check that reads the
// Authentication-Results our own mail server (Exchange Online) wrote.
//
// Allow-list entries, case-insensitive:
//   "alarm@site.example"  exactly this address
//   "@site.example"       any address at exactly this domain (not its subdomains); "site.example" is the same
//   "@*.site.example"     any address at a subdomain of site.example, at any depth (not site.example itself)
// Every From address must be allowed.
//
// Spoof check: results "fail", "permerror" and "hardfail" reject by default; "softfail" does not (many
// alarm devices send through a provider's relay that is not in their domain's SPF). A method with several
// results (two DKIM signatures) passes when any of them passes. The DMARC verdict counts only for the
// From domain (RFC 7489 §3.1: DMARC is about the RFC 5322.From domain, written as header.from), and only
// from our own receiving server's header: the topmost one, or the topmost one a trusted authserv-id wrote.
//
// Both checks need one From: an email with two From headers is refused (RFC 5322 §3.6 allows one; mail
// readers show one, the server may have checked the other, and the parser keeps only the first).
import { domainToASCII } from "node:url";
import type { EmailAddressLike, SpoofCheckOptions } from "./types";

export interface AllowList {
  addresses: Set<string>;
  domains: Set<string>;
  /** Parent domains whose subdomains are allowed. */
  parents: Set<string>;
}

const DOMAIN =
  /^(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)*[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;
const LOCAL_PART = /^[^\s@"<>()[\],;:]{1,64}$/;

/** Adds one lower-case entry; false when it is neither an address nor a domain rule. */
function addEntry(list: AllowList, entry: string): boolean {
  if (entry === "") return false;
  const at = entry.lastIndexOf("@");
  if (at > 0) {
    if (!LOCAL_PART.test(entry.slice(0, at)) || !DOMAIN.test(entry.slice(at + 1))) return false;
    list.addresses.add(entry);
    return true;
  }
  const domain = at === 0 ? entry.slice(1) : entry;
  if (domain.startsWith("*.")) {
    if (!DOMAIN.test(domain.slice(2))) return false;
    list.parents.add(domain.slice(2));
    return true;
  }
  if (!DOMAIN.test(domain)) return false;
  list.domains.add(domain);
  return true;
}

/** Builds the allow-list; problems name the entry. */
export function compileAllowList(entries: unknown): { list: AllowList | null; problems: string[] } {
  if (entries === undefined || (Array.isArray(entries) && entries.length === 0)) return { list: null, problems: [] };
  if (!Array.isArray(entries)) return { list: null, problems: ["allowSenders: is not a list"] };
  const list: AllowList = { addresses: new Set(), domains: new Set(), parents: new Set() };
  const problems: string[] = [];
  entries.forEach((raw: unknown, i: number) => {
    if (!addEntry(list, typeof raw === "string" ? raw.trim().toLowerCase() : "")) {
      problems.push(
        `allowSenders entry ${i + 1} ${JSON.stringify(raw)}: not an address, @domain or @*.domain (subdomains)`,
      );
    }
  });
  return { list: problems.length > 0 ? null : list, problems };
}

export function isAllowed(list: AllowList, address: string): boolean {
  const a = address.trim().toLowerCase();
  const at = a.lastIndexOf("@");
  if (at <= 0) return false;
  if (list.addresses.has(a)) return true;
  const domain = a.slice(at + 1);
  if (list.domains.has(domain)) return true;
  for (let dot = domain.indexOf("."); dot >= 0; dot = domain.indexOf(".", dot + 1)) {
    if (list.parents.has(domain.slice(dot + 1))) return true;
  }
  return false;
}

/**
 * Why the From cannot be checked, or null: more than one From header (`fromHeader` is the header's
 * values one per line, as parse-email.ts keeps repeated headers).
 */
export function fromHeaderProblem(fromHeader: string | null): string | null {
  if (fromHeader === null) return null;
  const count = fromHeader.split("\n").length;
  if (count <= 1) return null;
  return `the email has ${count} From headers: a mail reader shows one and the checks might read another`;
}

/** Why the sender is not allowed, or null when it is. */
export function senderProblem(list: AllowList, from: EmailAddressLike[]): string | null {
  const addresses = from.map((f) => f.address).filter((a) => a !== "");
  if (addresses.length === 0) return "the email has no From address to check against the allow-list";
  for (const a of addresses) {
    if (!isAllowed(list, a)) return `sender ${JSON.stringify(a)} is not on the allow-list`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Authentication-Results (RFC 8601)

export interface AuthResult {
  method: string;
  result: string;
  /** The rest: "header.from=site.example", "smtp.mailfrom=…". */
  properties: string;
}

export interface AuthenticationResults {
  authServId: string | null;
  results: AuthResult[];
}

/** Removes (comments), which may nest and hold ";" (Exchange writes "(sender IP is 1.2.3.4)"). Linear. */
function withoutComments(value: string): string {
  let open = value.indexOf("(");
  if (open < 0) return value;
  let out = "";
  let from = 0;
  while (open >= 0) {
    out += value.slice(from, open);
    let depth = 0;
    let j = open;
    for (; j < value.length; j++) {
      const c = value.charCodeAt(j);
      if (c === 92)
        j++; // backslash escapes the next character
      else if (c === 40) depth++;
      else if (c === 41 && --depth === 0) break;
    }
    from = j + 1;
    open = from < value.length ? value.indexOf("(", from) : -1;
  }
  return from < value.length ? out + value.slice(from) : out;
}

const METHOD_RESULT = /^([a-z0-9_.-]{1,40})\s*(?:\/\s*\d{1,3}\s*)?=\s*([a-z0-9_-]{1,40})\s*(.*)$/is;

/** One Authentication-Results header value. */
export function parseAuthenticationResults(value: string): AuthenticationResults {
  const parts = withoutComments(value).split(";");
  let authServId: string | null = null;
  const results: AuthResult[] = [];
  parts.forEach((raw, i) => {
    const part = raw.trim();
    if (part === "") return;
    const m = METHOD_RESULT.exec(part);
    if (m === null) {
      // the first part names the server ("mx.example.com 1"); Exchange Online leaves it out
      if (i === 0) authServId = part.split(/\s/)[0].toLowerCase();
      return;
    }
    results.push({ method: m[1].toLowerCase(), result: m[2].toLowerCase(), properties: m[3].trim() });
  });
  return { authServId, results };
}

export const DEFAULT_SPOOF_REJECT = ["fail", "permerror", "hardfail"] as const;
const PASSING = new Set(["pass", "bestguesspass"]);
const METHODS = ["dmarc", "spf", "dkim"] as const;

const PROPERTY_SHOWN: Record<string, RegExp> = {
  dmarc: /header\.from=(\S+)/i,
  spf: /smtp\.mailfrom=(\S+)/i,
  dkim: /header\.d=(\S+)/i,
};

/** Lower case, ASCII (punycode), without quotes or a trailing dot, for comparing domains. */
function comparableDomain(domain: string): string {
  const d = domain.trim().replace(/^"|"$/g, "").replace(/\.$/, "").toLowerCase();
  return domainToASCII(d) || d;
}

/**
 * Checks an email's Authentication-Results header value (its headers one per line, topmost first; null when
 * it has none) against its From addresses: why it looks spoofed, or null.
 */
export type SpoofCheck = (headerValue: string | null, from: readonly EmailAddressLike[]) => string | null;

export function compileSpoofCheck(options: SpoofCheckOptions): SpoofCheck {
  const trusted = (options.trustedAuthServIds ?? []).map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  const reject = new Set<string>(options.reject ?? DEFAULT_SPOOF_REJECT);
  const methods = METHODS.filter((m) => (options.methods ?? METHODS).includes(m));
  const requireHeader = options.requireHeader === true;
  const missing =
    trusted.length > 0
      ? `no Authentication-Results header from ${trusted.join(", ")}: the sender cannot be checked`
      : "no Authentication-Results header: the sender cannot be checked";

  /** Our receiving server's results: the topmost header, or the topmost one a trusted server wrote. */
  const ours = (headerValue: string | null): AuthResult[] => {
    if (headerValue === null || headerValue.trim() === "") return [];
    for (const instance of headerValue.split("\n")) {
      const parsed = parseAuthenticationResults(instance);
      // the ones below the first may have been written by the sender
      if (trusted.length === 0) return parsed.results;
      if (parsed.authServId !== null && trusted.includes(parsed.authServId)) return parsed.results;
    }
    return [];
  };

  /**
   * Why the DMARC results do not vouch for the From domain, or null: a passing verdict must name it as
   * header.from; with requireHeader there must be a verdict for it. Other verdicts reject as results do.
   */
  const dmarcProblem = (results: AuthResult[], from: readonly EmailAddressLike[]): string | null => {
    const dmarc = results.filter((r) => r.method === "dmarc");
    const noVerdict = "Authentication-Results has no DMARC verdict";
    if (dmarc.length === 0) return requireHeader ? `${noVerdict}: the From domain cannot be checked` : null;
    const domains = [
      ...new Set(from.map((f) => comparableDomain(f.address.slice(f.address.lastIndexOf("@") + 1)))),
    ].filter((d) => d !== "");
    if (domains.length === 0) return "the email has no From address for the DMARC verdict to vouch for";
    if (domains.length > 1) {
      return `the From addresses are in ${domains.length} domains (${domains.join(", ")}): DMARC vouches for one`;
    }
    const domain = domains[0];
    let tied = false;
    for (const r of dmarc) {
      const named = PROPERTY_SHOWN.dmarc.exec(r.properties)?.[1];
      if (named !== undefined && comparableDomain(named) === domain) tied = true;
      else if (PASSING.has(r.result)) {
        return named === undefined
          ? `Authentication-Results: dmarc=${r.result} names no header.from: it cannot be tied to the From domain ${domain}`
          : `Authentication-Results: dmarc=${r.result} is for ${named}, not for the From domain ${domain}`;
      }
    }
    return tied || !requireHeader ? null : `${noVerdict} for the From domain ${domain}`;
  };

  return (headerValue, from) => {
    const results = ours(headerValue);
    if (results.length === 0) return requireHeader ? missing : null;
    if (methods.includes("dmarc")) {
      const problem = dmarcProblem(results, from);
      if (problem !== null) return problem;
    }
    for (const method of methods) {
      let failed: AuthResult | undefined;
      let passed = false;
      for (const r of results) {
        if (r.method !== method) continue;
        if (PASSING.has(r.result)) passed = true;
        else if (failed === undefined && reject.has(r.result)) failed = r;
      }
      if (passed || failed === undefined) continue;
      const shown = PROPERTY_SHOWN[method].exec(failed.properties)?.[1];
      return `Authentication-Results: ${method}=${failed.result}${shown ? ` for ${shown}` : ""}`;
    }
    return null;
  };
}

export function spoofOptionProblems(options: unknown): string[] {
  if (options === undefined) return [];
  if (typeof options !== "object" || options === null) return ["spoofCheck: is not an object"];
  const o = options as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof o.enabled !== "boolean") problems.push("spoofCheck.enabled: is not true/false");
  if (o.reject !== undefined && !(Array.isArray(o.reject) && o.reject.every((r) => typeof r === "string"))) {
    problems.push("spoofCheck.reject: is not a list of results like fail, permerror");
  }
  if (
    o.methods !== undefined &&
    !(Array.isArray(o.methods) && o.methods.every((m) => (METHODS as readonly unknown[]).includes(m)))
  ) {
    problems.push("spoofCheck.methods: is not a list of dmarc, spf, dkim");
  }
  if (o.requireHeader !== undefined && typeof o.requireHeader !== "boolean") {
    problems.push("spoofCheck.requireHeader: is not true/false");
  }
  if (
    o.trustedAuthServIds !== undefined &&
    !(Array.isArray(o.trustedAuthServIds) && o.trustedAuthServIds.every((s) => typeof s === "string"))
  ) {
    problems.push("spoofCheck.trustedAuthServIds: is not a list of server names");
  }
  return problems;
}
