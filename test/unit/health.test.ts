// The gateway's picture of itself, in its plain parts: the supervisor's trouble/restore transitions, the
// hour figures, the trace's search and retention on a real directory, and the metrics text.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderMetrics } from "../../src/core/health/metrics";
import { ConnectorHealth, GatewayHealth, LineDriverHealth } from "../../src/core/health/registry";
import { HourCounter, HourSamples } from "../../src/core/health/rolling";
import { DEFAULT_CODES, type SupervisionState, Supervisor } from "../../src/core/health/supervisor";
import { TraceLog } from "../../src/core/health/trace-log";

const MIN = 60_000;

function setup(sites: { account: string; everyHours: number }[] = []) {
  const health = new GatewayHealth();
  const c = new ConnectorHealth("c1", "alarms", "alarms@contoso.test", "imap", "INBOX", false, "cfg");
  health.connectors.set("c1", c);
  const l = new LineDriverHealth("l1", "receiver", "dc09");
  health.lineDrivers.set("l1", l);
  const state: SupervisionState = { raised: {}, lastSeen: {}, startedAt: 0 };
  const sup = new Supervisor(
    { account: "9999", format: "SIA", mailboxMinutes: 5, backlogMinutes: 10, codes: DEFAULT_CODES, sites },
    state,
  );
  return { health, c, l, sup, state };
}

describe("supervisor", () => {
  it("raises a mailbox trouble once after the threshold, and restores it when the mailbox is seen again", () => {
    const { health, c, sup } = setup();
    c.setState("watching", "", 0, 0);
    assert.deepEqual(sup.evaluate(health.snapshot(MIN), MIN), []);
    c.setState("reconnecting", "connection refused", 0, 2 * MIN);
    assert.deepEqual(sup.evaluate(health.snapshot(6 * MIN), 6 * MIN), [], "blind 4 min: not yet");
    c.setState("error", "token refused (AADSTS7000215)", 0, 6.5 * MIN);
    const [trouble, ...more] = sup.evaluate(health.snapshot(7 * MIN), 7 * MIN);
    assert.equal(more.length, 0);
    assert.deepEqual(
      [trouble?.account, trouble?.eventCode, trouble?.qualifier, trouble?.cidEvent, trouble?.zone],
      ["9999", "YC", "new", "350", 1],
    );
    assert.match(
      trouble?.text ?? "",
      /cannot see mailbox alarms .*token refused/,
      "since the first failure, the last reason",
    );
    assert.deepEqual(sup.evaluate(health.snapshot(8 * MIN), 8 * MIN), [], "raised once");
    c.setState("watching", "", 0, 9 * MIN);
    const [restore] = sup.evaluate(health.snapshot(9 * MIN), 9 * MIN);
    assert.deepEqual([restore?.eventCode, restore?.qualifier], ["YK", "restore"]);
    assert.deepEqual(sup.evaluate(health.snapshot(10 * MIN), 10 * MIN), []);
  });

  it("raises undelivered alarms by the oldest one's age, in Contact ID when set so", () => {
    const { health, l, state } = setup();
    const sup = new Supervisor(
      { account: "9999", format: "CID", mailboxMinutes: 0, backlogMinutes: 10, codes: DEFAULT_CODES, sites: [] },
      state,
    );
    let oldest: number | undefined = 0;
    l.outbox = () => ({ depth: 3, oldestAcceptedAt: oldest, refused: 0 });
    assert.deepEqual(sup.evaluate(health.snapshot(9 * MIN), 9 * MIN), []);
    const [t] = sup.evaluate(health.snapshot(11 * MIN), 11 * MIN);
    assert.deepEqual([t?.eventCode, t?.eventFormat, t?.qualifier, t?.zone], ["354", "CID", "new", 2]);
    assert.match(t?.text ?? "", /not delivered by receiver for 11 min \(3 waiting\)/);
    oldest = undefined;
    const [r] = sup.evaluate(health.snapshot(12 * MIN), 12 * MIN);
    assert.deepEqual([r?.eventCode, r?.qualifier], ["354", "restore"]);
  });

  it("restores a trouble whose connector a redeploy removed", () => {
    const { health, c, sup } = setup();
    c.setState("reconnecting", "down", 0, 0);
    assert.equal(sup.evaluate(health.snapshot(6 * MIN), 6 * MIN).length, 1);
    health.connectors.delete("c1");
    const [r] = sup.evaluate(health.snapshot(7 * MIN), 7 * MIN);
    assert.equal(r?.qualifier, "restore");
  });

  it("a site late to test on its own account, restored when heard; the time survives in the state", () => {
    const { health, sup, state } = setup([{ account: "1234", everyHours: 24 }]);
    sup.heard("1234", 0);
    assert.deepEqual(sup.evaluate(health.snapshot(23 * 60 * MIN), 23 * 60 * MIN), []);
    const [late] = sup.evaluate(health.snapshot(24 * 60 * MIN), 24 * 60 * MIN);
    assert.deepEqual([late?.account, late?.eventCode, late?.zone], ["1234", "YS", 0]);
    assert.deepEqual(sup.heard("5678", 24 * 60 * MIN), [], "another account: nothing");
    const [back] = sup.heard("1234", 25 * 60 * MIN);
    assert.deepEqual([back?.account, back?.eventCode, back?.qualifier], ["1234", "YK", "restore"]);
    // A restart: a new supervisor over the saved state keeps counting from the last test.
    const again = new Supervisor(
      {
        account: "9999",
        format: "SIA",
        mailboxMinutes: 5,
        backlogMinutes: 10,
        codes: DEFAULT_CODES,
        sites: [{ account: "1234", everyHours: 24 }],
      },
      JSON.parse(JSON.stringify(state)),
    );
    assert.deepEqual(again.evaluate(health.snapshot(48 * 60 * MIN), 48 * 60 * MIN), []);
    assert.equal(again.evaluate(health.snapshot(49 * 60 * MIN), 49 * 60 * MIN).length, 1);
  });
});

describe("hour figures", () => {
  it("counts the last 60 minutes only", () => {
    const c = new HourCounter();
    c.add(0, 5);
    c.add(30 * MIN, 2);
    assert.equal(c.total(59 * MIN), 7);
    assert.equal(c.total(61 * MIN), 2);
    assert.equal(c.total(200 * MIN), 0);
  });

  it("p50 and p99 of the last hour", () => {
    const s = new HourSamples();
    for (let i = 1; i <= 100; i++) s.add(0, i);
    assert.deepEqual(s.percentiles(30 * MIN), { p50: 50, p99: 99, count: 100 });
    s.add(61 * MIN, 1000);
    assert.deepEqual(s.percentiles(70 * MIN), { p50: 1000, p99: 1000, count: 1 });
    assert.equal(s.percentiles(200 * MIN), null);
  });
});

describe("alarm trace", () => {
  it("finds an email by Message-ID, account, sender or subject, with every stage in time order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trace-"));
    const log = new TraceLog({ dir, keepDays: 7, maxBytes: 10 * 1024 * 1024 });
    log.record({
      at: 1,
      stage: "picked-up",
      key: "m1@x",
      node: "c",
      messageId: "m1@x",
      from: "cam@site.test",
      subject: "Motion zone 3",
    });
    log.record({ at: 2, stage: "mapped", key: "m1@x", node: "d", account: "1234", detail: "BA" });
    log.record({
      at: 2,
      stage: "picked-up",
      key: "m2@x",
      node: "c",
      messageId: "m2@x",
      from: "other@site.test",
      subject: "hello",
    });
    log.record({
      at: 3,
      stage: "rejected",
      key: "m2@x",
      node: "d",
      detail: "rule 2 (eventCode): eventCode is required but empty",
    });
    log.record({ at: 5, stage: "acked", key: "m1@x", node: "l", receiver: "primary 10.0.0.1:5000", seq: 7 });
    log.record({ at: 4, stage: "accepted", key: "m1@x", node: "l", account: "1234" });
    for (const q of ["m1@x", "1234", "cam@site", "MOTION zone"]) {
      const [email, ...rest] = await log.search(q);
      assert.equal(rest.length, 0, q);
      assert.equal(email?.messageId, "m1@x", q);
      assert.deepEqual(
        email?.stages.map((s) => s.stage),
        ["picked-up", "mapped", "accepted", "acked"],
      );
      assert.equal(email?.stages.at(-1)?.seq, 7);
    }
    const [bad] = await log.search("hello");
    assert.match(bad?.stages.at(-1)?.detail ?? "", /eventCode is required/);
    assert.deepEqual(await log.search("nothing-like-this"), []);
    const mode = statSync(join(dir, readdirSync(dir)[0] ?? "")).mode & 0o777;
    assert.equal(mode, 0o600);
  });

  it("removes days past retention and the oldest beyond the size cap, never today's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trace-"));
    const log = new TraceLog({ dir, keepDays: 2, maxBytes: 1000 });
    const day = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10);
    for (const d of [5, 1]) writeFileSync(join(dir, `trace-${day(d)}.jsonl`), "x".repeat(1000));
    log.record({ at: Date.now(), stage: "picked-up", key: "k", node: "n" });
    await log.flush();
    await log.cleanup();
    assert.deepEqual(
      readdirSync(dir).sort(),
      [`trace-${day(0)}.jsonl`].sort(),
      "5 days old: past retention; 1 day: over the cap",
    );
  });
});

describe("metrics text", () => {
  it("escapes label values and renders each family with HELP and TYPE", () => {
    const h = new GatewayHealth();
    const c = new ConnectorHealth("c1", 'a "quoted"\\name\nnext', "m@x.y", "graph", "INBOX", true, "cfg");
    c.emailed();
    h.connectors.set("c1", c);
    const text = renderMetrics(h);
    assert.match(text, /^# TYPE alarm_gateway_emails_received_total counter$/m);
    assert.match(
      text,
      /^alarm_gateway_emails_received_total\{connector="c1",name="a \\"quoted\\"\\\\name\\nnext",mailbox="m@x\.y",transport="graph"\} 1$/m,
    );
    assert.match(text, /^alarm_gateway_connector_state\{connector="c1",state="connecting"\} 1$/m);
  });
});
