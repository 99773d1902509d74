// Sender checks: the allow-list (addresses, exact domains, subdomains) and the Authentication-Results spoof check.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileDataMap, defaultDataMapConfig, type MappableEmail, type MapResult } from "../../src/core/datamap";
import {
  type AllowList,
  compileAllowList,
  compileSpoofCheck,
  isAllowed,
  parseAuthenticationResults,
  senderProblem,
} from "../../src/core/datamap/sender-check";
import { parseEmail } from "../../src/core/mail/parse-email";

function allowList(entries: string[]): AllowList {
  const { list, problems } = compileAllowList(entries);
  assert.deepEqual(problems, []);
  assert.ok(list);
  return list;
}

describe("sender allow-list", () => {
  const list = allowList(["Alarm@Panel.Example", "@site.example", "cold.example", "@*.cams.example"]);

  it("an address entry allows exactly that address, case-insensitively", () => {
    assert.ok(isAllowed(list, "alarm@panel.example"));
    assert.ok(isAllowed(list, "ALARM@PANEL.EXAMPLE"));
    assert.ok(!isAllowed(list, "other@panel.example"));
  });

  it("@domain (or a bare domain) allows that domain only, not its subdomains", () => {
    assert.ok(isAllowed(list, "anyone@site.example"));
    assert.ok(isAllowed(list, "logger@cold.example"));
    assert.ok(!isAllowed(list, "anyone@mail.site.example"));
    assert.ok(!isAllowed(list, "anyone@evilsite.example"));
    assert.ok(!isAllowed(list, "site.example@evil.example"));
  });

  it("@*.domain allows subdomains at any depth, not the domain itself", () => {
    assert.ok(isAllowed(list, "nvr@garage.cams.example"));
    assert.ok(isAllowed(list, "nvr@a.b.cams.example"));
    assert.ok(!isAllowed(list, "nvr@cams.example"));
    assert.ok(!isAllowed(list, "nvr@notcams.example"));
  });

  it("every From address must be allowed; an email without one is refused", () => {
    assert.equal(senderProblem(list, [{ address: "a@site.example", name: "" }]), null);
    assert.equal(
      senderProblem(list, [
        { address: "a@site.example", name: "" },
        { address: "b@evil.example", name: "" },
      ]),
      'sender "b@evil.example" is not on the allow-list',
    );
    assert.equal(senderProblem(list, []), "the email has no From address to check against the allow-list");
  });

  it("refuses entries that are neither addresses nor domains", () => {
    const { list: none, problems } = compileAllowList(["ok@site.example", "two words", "@", "a@b@", 5]);
    assert.equal(none, null);
    assert.equal(problems.length, 4);
    assert.match(problems[0], /^allowSenders entry 2 "two words": not an address, @domain or @\*.domain/);
  });

  it("an empty list switches the check off", () => {
    assert.deepEqual(compileAllowList([]), { list: null, problems: [] });
  });
});

// as Exchange Online writes it: no authserv-id, comments holding ";"-free text, no space after some ";"
const EXCHANGE_PASS =
  "spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=site.example; dkim=pass (signature was verified) " +
  "header.d=site.example;dmarc=pass action=none header.from=site.example;compauth=pass reason=100";
const EXCHANGE_DMARC_FAIL =
  "spf=fail (sender IP is 198.51.100.66) smtp.mailfrom=site.example; dkim=none (message not signed) " +
  "header.d=none;dmarc=fail action=quarantine header.from=site.example;compauth=fail reason=000";

describe("Authentication-Results", () => {
  it("parses Exchange Online's format and the RFC 8601 format with an authserv-id", () => {
    assert.deepEqual(
      parseAuthenticationResults(EXCHANGE_PASS).results.map((r) => `${r.method}=${r.result}`),
      ["spf=pass", "dkim=pass", "dmarc=pass", "compauth=pass"],
    );
    const rfc = parseAuthenticationResults(
      "mx.google.com; dkim=pass header.i=@site.example header.s=s1; spf=softfail (google.com: domain of " +
        "transitioning x@site.example does not designate 1.2.3.4 (nested) as permitted sender) " +
        "smtp.mailfrom=x@site.example",
    );
    assert.equal(rfc.authServId, "mx.google.com");
    assert.deepEqual(
      rfc.results.map((r) => [r.method, r.result, r.properties]),
      [
        ["dkim", "pass", "header.i=@site.example header.s=s1"],
        ["spf", "softfail", "smtp.mailfrom=x@site.example"],
      ],
    );
  });

  const site = [{ address: "camera@site.example", name: "" }];
  const spoof = compileSpoofCheck({ enabled: true });
  const check = (header: string | null) => spoof(header, site);

  it("rejects dmarc, spf or dkim fail, naming the check and the domain", () => {
    assert.equal(check(EXCHANGE_PASS), null);
    assert.equal(check(EXCHANGE_DMARC_FAIL), "Authentication-Results: dmarc=fail for site.example");
    assert.equal(
      check("spf=fail smtp.mailfrom=x.example; dmarc=none"),
      "Authentication-Results: spf=fail for x.example",
    );
    assert.equal(check("dkim=fail header.d=x.example"), "Authentication-Results: dkim=fail for x.example");
    assert.equal(check("dkim=permerror header.d=x.example"), "Authentication-Results: dkim=permerror for x.example");
  });

  it("accepts softfail, neutral, none and temperror by default; reject can be widened", () => {
    assert.equal(check("spf=softfail smtp.mailfrom=x.example; dmarc=none; dkim=temperror"), null);
    const strict = compileSpoofCheck({ enabled: true, reject: ["fail", "softfail"] });
    assert.equal(
      strict("spf=softfail smtp.mailfrom=x.example", site),
      "Authentication-Results: spf=softfail for x.example",
    );
  });

  it("a method passes when any of its results passes (two DKIM signatures)", () => {
    assert.equal(
      check("dkim=fail header.d=relay.example; dkim=pass header.d=site.example; dmarc=pass header.from=site.example"),
      null,
    );
  });

  it("the DMARC verdict counts only for the From domain", () => {
    assert.equal(
      check("spf=pass smtp.mailfrom=evil.example; dmarc=pass action=none header.from=evil.example"),
      "Authentication-Results: dmarc=pass is for evil.example, not for the From domain site.example",
    );
    assert.equal(
      check("dmarc=pass"),
      "Authentication-Results: dmarc=pass names no header.from: it cannot be tied to the From domain site.example",
    );
    assert.equal(check("dmarc=pass header.from=SITE.example."), null, "case and a trailing dot do not matter");
    const mixed = [...site, { address: "x@evil.example", name: "" }];
    assert.equal(
      spoof(EXCHANGE_PASS, mixed),
      "the From addresses are in 2 domains (site.example, evil.example): DMARC vouches for one",
    );
    const idn = [{ address: "alarm@bücher.example", name: "" }];
    assert.equal(spoof("dmarc=pass header.from=xn--bcher-kva.example", idn), null, "punycode and Unicode agree");
  });

  it("reads only the topmost header: the ones below may have been written by the sender", () => {
    assert.equal(
      check(`${EXCHANGE_DMARC_FAIL}\nmx.attacker.example; dmarc=pass header.from=site.example`),
      "Authentication-Results: dmarc=fail for site.example",
    );
    assert.equal(check(`${EXCHANGE_PASS}\nmx.other.example; dmarc=fail header.from=site.example`), null);
  });

  it("with trusted authserv-ids reads the topmost header one of those servers wrote", () => {
    const trusting = compileSpoofCheck({ enabled: true, trustedAuthServIds: ["mx.gateway.example"] });
    const trusted = (header: string | null) => trusting(header, site);
    const forgedOnTop = "mx.gateway.example.evil; dmarc=pass\nmx.gateway.example; dmarc=fail header.from=site.example";
    assert.equal(trusted(forgedOnTop), "Authentication-Results: dmarc=fail for site.example");
    const forgedBelow =
      "mx.gateway.example; dmarc=fail header.from=site.example\nmx.gateway.example; dmarc=pass header.from=site.example";
    assert.equal(trusted(forgedBelow), "Authentication-Results: dmarc=fail for site.example");
    assert.equal(trusted("other.example; dmarc=fail"), null);
    const required = compileSpoofCheck({
      enabled: true,
      trustedAuthServIds: ["mx.gateway.example"],
      requireHeader: true,
    });
    assert.equal(
      required("other.example; dmarc=fail", site),
      "no Authentication-Results header from mx.gateway.example: the sender cannot be checked",
    );
  });

  it("a missing header passes unless requireHeader; methods can be narrowed", () => {
    assert.equal(check(null), null);
    const requiring = compileSpoofCheck({ enabled: true, requireHeader: true });
    assert.match(requiring(null, site) ?? "", /no Authentication-Results header/);
    assert.equal(
      requiring("spf=pass smtp.mailfrom=site.example", site),
      "Authentication-Results has no DMARC verdict: the From domain cannot be checked",
    );
    const dmarcOnly = compileSpoofCheck({ enabled: true, methods: ["dmarc"] });
    assert.equal(dmarcOnly("spf=fail; dkim=fail; dmarc=pass header.from=site.example", site), null);
    assert.equal(
      requiring("dmarc=none header.from=other.example", site),
      "Authentication-Results has no DMARC verdict for the From domain site.example",
    );
    const noDmarc = compileSpoofCheck({ enabled: true, methods: ["spf"], requireHeader: true });
    assert.equal(noDmarc("spf=pass; dmarc=pass header.from=evil.example", site), null, "dmarc not checked");
  });
});

describe("sender checks in map()", () => {
  const email = (from: string, auth: string): MappableEmail => ({
    from: [{ address: from, name: "" }],
    subject: "Alarm",
    text: "123588\nBA\n1\n1",
    headers: { "authentication-results": auth },
  });
  const map = compileDataMap({ ...defaultDataMapConfig(), allowSenders: ["@site.example"] });

  it("rejects before any rule runs, naming the check", () => {
    const spoofed = map.map({ email: email("panel@site.example", EXCHANGE_DMARC_FAIL) }) as MapResult;
    assert.deepEqual(spoofed, {
      ok: false,
      rule: "spoof check",
      reason: "Authentication-Results: dmarc=fail for site.example",
      trace: [],
    });
    const stranger = map.map({ email: email("x@elsewhere.example", EXCHANGE_PASS) }) as MapResult;
    assert.ok(!stranger.ok && stranger.rule === "sender allow-list");
    assert.ok((map.map({ email: email("panel@site.example", EXCHANGE_PASS) }) as MapResult).ok);
  });
});

describe("issue #20.5: the spoof cases, from raw emails", () => {
  // the settings a new node saves: allow-list, spoof check requiring our server's header
  const map = compileDataMap({
    ...defaultDataMapConfig(),
    allowSenders: ["camera@site.example"],
    spoofCheck: { enabled: true, requireHeader: true },
  });

  async function mapRaw(headers: string[]): Promise<MapResult> {
    const raw = [...headers, "To: alarms@centre.example", "Subject: Alarm", "", "123588", "BA", "1", "1", ""];
    const email = await parseEmail(Buffer.from(raw.join("\r\n")));
    return map.map({ email }) as MapResult;
  }

  const exchange = (from: string) =>
    `Authentication-Results: spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=${from}; dkim=pass ` +
    `(signature was verified) header.d=${from};dmarc=pass action=none header.from=${from};compauth=pass reason=100`;

  it("maps the genuine email", async () => {
    const result = await mapRaw([exchange("site.example"), "From: camera@site.example"]);
    assert.ok(result.ok, result.ok ? "" : result.reason);
  });

  it("refuses two From headers, also when the allowed one comes first", async () => {
    const result = await mapRaw([exchange("evil.example"), "From: camera@site.example", "From: x@evil.example"]);
    assert.deepEqual(
      [result.ok, !result.ok && result.rule, !result.ok && result.reason],
      [false, "spoof check", "the email has 2 From headers: a mail reader shows one and the checks might read another"],
    );
  });

  it("refuses an email without Authentication-Results", async () => {
    const result = await mapRaw(["From: camera@site.example"]);
    assert.ok(!result.ok);
    assert.equal(result.reason, "no Authentication-Results header: the sender cannot be checked");
  });

  it("refuses dmarc=pass for another domain than the From domain", async () => {
    const result = await mapRaw([exchange("evil.example"), "From: camera@site.example"]);
    assert.ok(!result.ok);
    assert.equal(
      result.reason,
      "Authentication-Results: dmarc=pass is for evil.example, not for the From domain site.example",
    );
  });

  it("ignores a passing header the sender wrote below our server's failing one", async () => {
    const ours =
      "Authentication-Results: spf=fail (sender IP is 198.51.100.66) smtp.mailfrom=site.example; dkim=none " +
      "(message not signed) header.d=none;dmarc=fail action=quarantine header.from=site.example;compauth=fail";
    const forged = "Authentication-Results: mx.site.example; dmarc=pass header.from=site.example";
    const result = await mapRaw([ours, forged, "From: camera@site.example"]);
    assert.ok(!result.ok);
    assert.equal(result.reason, "Authentication-Results: dmarc=fail for site.example");
  });

  it("without the A-R requirement (a server that writes none) the email is accepted unchecked", async () => {
    const lenient = compileDataMap({
      ...defaultDataMapConfig(),
      allowSenders: ["camera@site.example"],
      spoofCheck: { enabled: true, requireHeader: false },
    });
    const raw = "From: camera@site.example\r\nTo: a@centre.example\r\nSubject: Alarm\r\n\r\n123588\r\nBA\r\n1\r\n1\r\n";
    const result = lenient.map({ email: await parseEmail(Buffer.from(raw)) }) as MapResult;
    assert.ok(result.ok);
  });
});
