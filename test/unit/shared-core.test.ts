// The pure parts of shared mode: partition, lease view, instance identity.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadOrCreateIdentity, newIdentity, renewIdentity } from "../../src/core/shared/identity";
import { type LeaseInput, viewLeases } from "../../src/core/shared/lease-view";
import { ownerOf } from "../../src/core/shared/partition";

describe("ownerOf", () => {
  const keys = Array.from({ length: 3000 }, (_, i) => String(i + 1));

  it("splits keys about evenly, the same whatever the order of the instances", () => {
    const counts = new Map<string, number>();
    for (const k of keys) {
      const owner = ownerOf(k, ["a-1", "b-2", "c-3"]);
      assert.equal(owner, ownerOf(k, ["c-3", "a-1", "b-2"]));
      counts.set(owner as string, (counts.get(owner as string) ?? 0) + 1);
    }
    for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `share ${n}`);
    assert.equal(ownerOf("1", []), undefined);
  });

  it("a join moves keys only to the joiner, a leave only the leaver's", () => {
    for (const k of keys) {
      const before = ownerOf(k, ["a-1", "b-2"]);
      const joined = ownerOf(k, ["a-1", "b-2", "c-3"]);
      assert.ok(joined === before || joined === "c-3", `key ${k} moved from ${before} to ${joined}`);
      const left = ownerOf(k, ["a-1", "c-3"]);
      if (joined !== "b-2") assert.equal(left, joined);
    }
  });
});

describe("viewLeases", () => {
  const base: LeaseInput = {
    leases: [],
    folders: [],
    serverNow: 100_000,
    me: "me-1",
    nonce: "n1",
    myFirstRenewal: 90_000,
    leaseMs: 20_000,
    unleasedSince: new Map(),
  };

  it("live by server age of the newest lease; expired ones released; never me", () => {
    const v = viewLeases({
      ...base,
      leases: [
        { instance: "me-1", nonce: "n1", renewedAt: 100_000 },
        { instance: "b-2", nonce: "x", renewedAt: 80_000 },
        { instance: "b-2", nonce: "y", renewedAt: 70_000 },
        { instance: "c-3", nonce: "z", renewedAt: 79_999 },
      ],
      folders: ["me-1", "b-2", "c-3"],
    });
    assert.deepEqual(v.live, ["b-2", "me-1"]);
    assert.deepEqual(v.release, ["c-3"]);
    assert.equal(v.nextExpiryInMs, 0);
    assert.equal(v.clash, undefined);
  });

  it("my id with another nonce: my predecessor when older than my first renewal, a clash when newer", () => {
    const old = viewLeases({ ...base, leases: [{ instance: "me-1", nonce: "n0", renewedAt: 89_000 }] });
    assert.equal(old.clash, undefined);
    assert.deepEqual(old.release, []);
    const twin = viewLeases({ ...base, leases: [{ instance: "me-1", nonce: "n2", renewedAt: 95_000 }] });
    assert.equal(twin.clash?.nonce, "n2");
    assert.deepEqual(twin.live, ["me-1"]);
  });

  it("a claim folder without a lease is released after a lease's time without one", () => {
    const first = viewLeases({ ...base, folders: ["me-1", "ghost-9"] });
    assert.deepEqual(first.release, []);
    assert.equal(first.unleasedSince.get("ghost-9"), 100_000);
    const soon = viewLeases({ ...base, folders: ["ghost-9"], serverNow: 120_000, unleasedSince: first.unleasedSince });
    assert.deepEqual(soon.release, []);
    const later = viewLeases({ ...base, folders: ["ghost-9"], serverNow: 120_001, unleasedSince: first.unleasedSince });
    assert.deepEqual(later.release, ["ghost-9"]);
    const gone = viewLeases({ ...base, folders: [], serverNow: 130_000, unleasedSince: first.unleasedSince });
    assert.equal(gone.unleasedSince.size, 0);
  });
});

describe("identity", () => {
  const root = mkdtempSync(join(tmpdir(), "shared-identity-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("hostname sanitised and cut to 20 chars, then 6 random hex", () => {
    assert.match(newIdentity("my_host.example.local.very-long"), /^my-host-example-loca-[0-9a-f]{6}$/);
    assert.match(newIdentity("..."), /^gateway-[0-9a-f]{6}$/);
  });

  it("created once in a private file, read back, renewed on demand", async () => {
    const dir = join(root, "user", "shared");
    const id = await loadOrCreateIdentity(dir);
    assert.match(id, /^[A-Za-z0-9-]{1,20}-[0-9a-f]{6}$/);
    assert.equal(statSync(join(dir, "instance-id")).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(await loadOrCreateIdentity(dir), id);
    const renewed = await renewIdentity(dir);
    assert.notEqual(renewed, id);
    assert.equal(readFileSync(join(dir, "instance-id"), "utf8").trim(), renewed);
    assert.equal(await loadOrCreateIdentity(dir), renewed);
    writeFileSync(join(dir, "instance-id"), "not valid!\n");
    assert.notEqual(await loadOrCreateIdentity(dir), "not valid!");
  });
});
