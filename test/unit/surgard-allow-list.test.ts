// Who may take the Sur-Gard line: the allow-list as a user types it, and the address listened on.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AllowListError, listenAddress, parseAllowList, plainAddress } from "../../src/core/surgard/allow-list";

describe("Sur-Gard allow-list", () => {
  it("empty: this machine only, over IPv4 and IPv6, also as a dual-stack server sees it", () => {
    const allow = parseAllowList("  ");
    assert.equal(allow.loopbackOnly, true);
    for (const a of ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) assert.ok(allow.allows(a), a);
    for (const a of ["10.0.0.5", "192.0.2.2", "::ffff:10.0.0.5", "fe80::1", "", undefined, "not-an-ip"])
      assert.ok(!allow.allows(a), String(a));
    assert.match(allow.text, /this machine only/);
  });

  it("addresses and CIDRs, separated by commas, semicolons or spaces; nothing else, not even loopback", () => {
    const allow = parseAllowList("10.0.0.5, 192.168.1.0/24;fd00::/8  2001:db8::7");
    assert.equal(allow.loopbackOnly, false);
    for (const a of ["10.0.0.5", "::ffff:10.0.0.5", "192.168.1.200", "fd00::1234", "2001:db8::7"])
      assert.ok(allow.allows(a), a);
    for (const a of ["10.0.0.6", "192.168.2.1", "127.0.0.1", "::1", "2001:db8::8"]) assert.ok(!allow.allows(a), a);
    assert.equal(allow.text, "10.0.0.5, 192.168.1.0/24, fd00::/8, 2001:db8::7");
  });

  it("names the entry it cannot take: host names, bad prefixes, stray slashes", () => {
    for (const [text, message] of [
      ["automation.example", /"automation\.example" is not an IP address or CIDR.*host names are not accepted/],
      ["10.0.0.0/33", /"10\.0\.0\.0\/33": the prefix length must be 0-32/],
      ["fd00::/129", /0-128/],
      ["10.0.0.0/x", /prefix length/],
      ["10.0.0.5/24/3", /not an IP address or CIDR/],
      ["10.0.0.256", /not an IP address/],
    ] as const)
      assert.throws(
        () => parseAllowList(text),
        (err: Error) => err instanceof AllowListError && message.test(err.message),
      );
  });

  it("listens on loopback while only loopback may connect, on all interfaces once others may, else where told", () => {
    assert.equal(listenAddress("", parseAllowList("")), "127.0.0.1");
    assert.equal(listenAddress(undefined, parseAllowList("10.0.0.5")), undefined);
    assert.equal(listenAddress(" 192.0.2.2 ", parseAllowList("10.0.0.5")), "192.0.2.2");
    assert.equal(plainAddress("::ffff:10.0.0.5"), "10.0.0.5");
    assert.equal(plainAddress("fd00::1"), "fd00::1");
  });
});
