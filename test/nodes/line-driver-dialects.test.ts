// The line-driver against receivers that speak the dialects of public DC-09 receivers (issue #21, dc09.md
// "Dialects observed in public receiver implementations"): an alarm either gets through in a plainer form or
// comes out refused with the receiver's answer, and the alarm queued behind it is not held back.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { callsOf, helper, useUserDir } from "../helpers/connector-flow";
import { until } from "../helpers/until";
import { DC09_DIALECTS, type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";

const lineDriverNode = require("../../nodes/line-driver.js");

/** ACK timeout of the line-drivers below, and the first pause of the transmitter's backoff. */
const ACK_TIMEOUT_MS = 1000;
const FIRST_BACKOFF_MS = 1000;

let counter = 0;
function alarm(overrides: Record<string, unknown> = {}) {
  counter++;
  return {
    account: "1234",
    eventCode: "BA",
    eventFormat: "SIA",
    qualifier: "new",
    zone: 1,
    area: 1,
    user: null,
    text: "Burglary zone 1",
    occurredAt: "2026-11-27T08:00:00.000Z",
    attachments: [],
    source: {
      messageId: `d-${process.pid}-${counter}@test`,
      from: "panel@site.test",
      subject: "Alarm",
      receivedAt: null,
    },
    ...overrides,
  };
}

const cid = (overrides: Record<string, unknown> = {}) =>
  alarm({ eventFormat: "CID", eventCode: "130", zone: 15, area: 1, ...overrides });

type Outcome = { at: number; payload: any; alarm: any };

async function loadDriver(props: Record<string, unknown>, credentials: Record<string, string> = {}) {
  useUserDir(`line-driver-dialects-${counter++}`);
  await helper.load(
    [lineDriverNode],
    [
      {
        id: "ld",
        type: "line-driver",
        host: "127.0.0.1",
        transport: "tcp",
        receiver: "1",
        prefix: "1",
        format: "auto",
        ackTimeout: ACK_TIMEOUT_MS / 1000,
        attempts: 2,
        supervision: 0,
        supervisionAccount: "",
        // The editor's defaults: the frames that carry two extended blocks.
        sendText: true,
        sendTime: true,
        ...props,
        wires: [["out"]],
      } as never,
      { id: "out", type: "helper" },
    ],
    { ld: credentials },
  );
  const outcomes: Outcome[] = [];
  helper.getNode("out").on("input", (m: any) => outcomes.push({ at: Date.now(), payload: m.payload, alarm: m.alarm }));
  return { node: helper.getNode("ld") as any, outcomes };
}

function logged(node: any): string {
  return ["log", "warn", "error"].flatMap((m) => callsOf(node, m).map(String)).join("\n");
}

describe("line-driver against receiver dialects (SIA DC-09)", () => {
  let receiver: Dc09Receiver | undefined;
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(async () => {
    await helper.unload();
    await receiver?.close();
    receiver = undefined;
  });

  it("ADM-CID with text and time to a pysiaalarm-like receiver: NAK (L before R) read, sent without extended blocks, remembered", async () => {
    receiver = await startDc09Receiver({ dialect: DC09_DIALECTS.pysiaalarm });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort });
    node.receive({ alarm: cid() });
    node.receive({ alarm: cid({ zone: 16 }) });
    await until(() => outcomes.length === 2, 8000, "two outcomes");
    assert.deepEqual(
      outcomes.map((o) => o.payload.status),
      ["delivered", "delivered"],
    );
    assert.equal(outcomes[0]!.payload.form, "without extended blocks");
    assert.equal(
      outcomes[0]!.payload.sends,
      3,
      "the configured form twice (NAK asks for a resend), then the plain one",
    );
    assert.equal(outcomes[1]!.payload.sends, 1, "the second goes out in the form the receiver took");
    assert.deepEqual(
      receiver.acked.map((a) => [a.frame.data, a.frame.extended?.length ?? 0]),
      [
        ["#1234|1130 01 015", 0],
        ["#1234|1130 01 016", 0],
      ],
    );
    const log = logged(node);
    assert.doesNotMatch(log, /correcting the clock/, "a NAK whose time agrees with ours is no clock problem");
    assert.match(log, /accepts ADM-CID without extended blocks/);
    const state = await helper.request().get("/line-driver/ld/state").expect(200);
    assert.deepEqual(state.body.learnedForms, { "primary ADM-CID": "no extended blocks" });
  });

  it("SIA with area and user to a pysiaalarm-like receiver: DUH on ri…id, delivered with id before ri", async () => {
    receiver = await startDc09Receiver({ dialect: DC09_DIALECTS.pysiaalarm });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort });
    node.receive({ alarm: alarm({ eventCode: "OP", zone: null, area: 1, user: 3 }) });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(outcomes[0]!.payload.status, "delivered");
    assert.equal(receiver.received[0]!.frame.data, "#1234|Nri1/id3/OP03");
    assert.equal(receiver.answers[0]!.sent, "DUH");
    assert.equal(receiver.acked[0]!.frame.data, "#1234|Nid3/ri1/OP03");
    assert.equal(receiver.acked[0]!.frame.extended?.length, 2, "SIA-DCS keeps its text and time there");
  });

  it("modifier order id-ri goes out as set, and is taken at once by that receiver", async () => {
    receiver = await startDc09Receiver({ dialect: DC09_DIALECTS.pysiaalarm });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, modifierOrder: "id-ri" });
    node.receive({ alarm: alarm({ eventCode: "OP", zone: null, area: 1, user: 3 }) });
    await until(() => outcomes.length === 1, 5000, "outcome");
    assert.equal(outcomes[0]!.payload.sends, 1);
    assert.equal(receiver.received[0]!.frame.data, "#1234|Nid3/ri1/OP03");
  });

  for (const [name, dialect] of [
    ["an unframed NAK", { nakForm: "bare" as const, accounts: ["9999"] }],
    ["a doubled NAK and a closed connection", { doubleNak: true, accounts: ["9999"] }],
    ["an L-before-R NAK", { nakForm: "L-first" as const, accounts: ["9999"] }],
  ] as const) {
    it(`an alarm refused with ${name} comes out refused with the answer; the next one is not held back`, async () => {
      receiver = await startDc09Receiver({ dialect });
      const { node, outcomes } = await loadDriver({ port: receiver.tcpPort });
      node.receive({ alarm: alarm({ account: "1234" }) }); // unknown to the receiver
      node.receive({ alarm: alarm({ account: "9999" }) });
      await until(() => outcomes.length === 2, 10_000, "two outcomes");
      const [refused, next] = outcomes as [Outcome, Outcome];
      assert.equal(refused.payload.status, "failed");
      assert.equal(refused.payload.kept, true);
      assert.match(refused.payload.reason, /NAK/);
      assert.match(refused.payload.answer, /^"NAK"/, "the receiver's answer as it came");
      assert.equal(next.payload.status, "delivered");
      assert.equal(next.alarm.account, "9999");
      assert.equal(next.payload.sends, 1, "a stale NAK was not taken for its answer");
      assert.ok(
        next.at - refused.at <= ACK_TIMEOUT_MS + FIRST_BACKOFF_MS,
        `ACKed ${next.at - refused.at} ms after the refusal`,
      );
      assert.deepEqual(
        receiver.acked.map((a) => a.frame.account),
        ["9999"],
      );
      await until(() => /refused 1/.test(node.status.lastCall.args[0].text), 1000, "status counting the refused alarm");
      assert.doesNotMatch(logged(node), /correcting the clock/);
    });
  }

  for (const nakForm of ["bare", "L-first"] as const) {
    it(`over UDP: a ${nakForm} NAK refuses one alarm, and pysiaalarm's ADM-CID fallback works there too`, async () => {
      receiver = await startDc09Receiver({ dialect: { ...DC09_DIALECTS.pysiaalarm, nakForm, accounts: ["9999"] } });
      const { node, outcomes } = await loadDriver({ port: receiver.udpPort, transport: "udp" });
      node.receive({ alarm: cid({ account: "1234" }) });
      node.receive({ alarm: cid({ account: "9999" }) });
      await until(() => outcomes.length === 2, 10_000, "two outcomes");
      assert.equal(outcomes[0]!.payload.status, "failed");
      assert.match(outcomes[0]!.payload.answer, /^"NAK"/);
      assert.equal(outcomes[1]!.payload.status, "delivered");
      assert.equal(outcomes[1]!.payload.form, "without extended blocks");
      assert.ok(outcomes[1]!.at - outcomes[0]!.at <= ACK_TIMEOUT_MS + FIRST_BACKOFF_MS);
      assert.equal(receiver.acked[0]!.transport, "udp");
    });
  }

  it("an answer that cannot be read is a refusal after bounded tries, not a resend forever", async () => {
    let garble = true;
    receiver = await startDc09Receiver({ behaviour: () => (garble ? "bad-crc" : "ack") });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, sendText: false, sendTime: false });
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 1, 10_000, "refusal");
    assert.equal(outcomes[0]!.payload.status, "failed");
    assert.match(outcomes[0]!.payload.reason, /cannot be read/);
    assert.match(outcomes[0]!.payload.answer, /CRC mismatch/);
    assert.equal(receiver.received.length, 2, "attempts = 2 sends, no more");
    garble = false;
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 2, ACK_TIMEOUT_MS + FIRST_BACKOFF_MS, "the next alarm");
    assert.equal(outcomes[1]!.payload.status, "delivered");
  });

  it("a refused alarm stays listed and can be resent from the editor (admin routes)", async () => {
    receiver = await startDc09Receiver({ behaviour: "duh" });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, sendText: false, sendTime: false });
    node.receive({ alarm: alarm({ text: "Back door" }) });
    await until(() => outcomes.length === 1, 5000, "refusal");
    assert.equal(receiver.received.length, 1, "a DUH without plainer form is not resent");
    const state = await helper.request().get("/line-driver/ld/state").expect(200);
    assert.equal(state.body.refused.length, 1);
    const [entry] = state.body.refused;
    assert.equal(entry.account, "1234");
    assert.equal(entry.text, "Back door");
    assert.match(entry.reason, /DUH/);
    assert.match(entry.answer, /^"DUH"/);
    assert.match(entry.receiver, /^primary 127\.0\.0\.1:/);
    assert.equal(state.body.linkTestAccount, "0000", "nothing ACKed yet");
    assert.equal(JSON.stringify(state.body).includes('key":{'), false, "no key configured, none shown");

    receiver.behaviour = "ack";
    await helper.request().post(`/line-driver/ld/refused/${entry.id}/resend`).expect(200);
    await until(() => outcomes.length === 2, 5000, "resent alarm delivered");
    assert.equal(outcomes[1]!.payload.status, "delivered");
    assert.equal(receiver.acked[0]!.frame.seq, receiver.received[0]!.frame.seq, "same seq: a repeat, not a new event");
    const after = await helper.request().get("/line-driver/ld/state").expect(200);
    assert.deepEqual(after.body.refused, []);
    assert.equal(after.body.linkTestAccount, "1234", "link tests now use an account the receiver knows");
    await helper.request().post(`/line-driver/ld/refused/${entry.id}/resend`).expect(404);
    await until(() => /last ACK/.test(node.status.lastCall.args[0].text), 1000, "status after the resend");
    assert.doesNotMatch(node.status.lastCall.args[0].text, /refused/);
  });

  it("with a trouble account set, a refused alarm raises Contact ID 354 on it; a refused trouble raises none", async () => {
    receiver = await startDc09Receiver({ behaviour: (f) => (f.account === "1234" ? "duh" : "ack") });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, sendTime: false, troubleAccount: "9999" });
    node.receive({ alarm: alarm({ text: "Front door" }) });
    await until(() => outcomes.length === 2, 5000, "refusal and trouble");
    assert.equal(outcomes[0]!.payload.status, "failed");
    assert.equal(outcomes[1]!.payload.status, "delivered");
    const trouble = receiver.acked[0]!.frame;
    assert.equal(trouble.id, "ADM-CID");
    assert.equal(trouble.data, "#9999|1354 00 000");
    assert.match(trouble.extended?.[0]?.value ?? "", /alarm 1234\/BA refused by the receiver: "DUH"0001R1L1#1234/);

    receiver.behaviour = "duh";
    node.receive({ alarm: alarm() });
    await until(() => outcomes.length === 4, 5000, "second refusal and its refused trouble");
    await sleep(300);
    assert.equal(outcomes.length, 4, "no trouble about a trouble");
  });

  it("a refused alarm survives a restart, still refused and resendable", async () => {
    receiver = await startDc09Receiver({ behaviour: "duh" });
    const dir = `line-driver-dialects-restart-${process.pid}`;
    useUserDir(dir);
    const flow = [
      {
        id: "ld",
        type: "line-driver",
        host: "127.0.0.1",
        port: receiver.tcpPort,
        transport: "tcp",
        prefix: "1",
        ackTimeout: 1,
        attempts: 1,
        supervision: 0,
        wires: [["out"]],
      },
      { id: "out", type: "helper" },
    ];
    await helper.load([lineDriverNode], flow as never);
    const outcomes: any[] = [];
    helper.getNode("out").on("input", (m: any) => outcomes.push(m));
    helper.getNode("ld").receive({ alarm: alarm() } as never);
    await until(() => outcomes.length === 1, 5000, "refusal");
    await helper.unload();
    await helper.load([lineDriverNode], flow as never); // same user directory: the same outbox
    let state: any;
    for (let i = 0; i < 50; i++) {
      state = await helper.request().get("/line-driver/ld/state");
      if (state.body.refused?.length) break;
      await sleep(20);
    }
    assert.equal(state.body.refused.length, 1, "still refused after the restart");
  });

  it("a NULL-refusing receiver (ioBroker.sia-like): alarms flow, the link test says it refuses NULL, logged once", async () => {
    receiver = await startDc09Receiver({ dialect: DC09_DIALECTS.iobroker });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, supervision: 0.2 });
    node.receive({ alarm: alarm() });
    node.receive({ alarm: alarm({ zone: 2 }) });
    await until(() => outcomes.length === 2, 5000, "two outcomes");
    assert.deepEqual(
      outcomes.map((o) => o.payload.status),
      ["delivered", "delivered"],
      "a receiver that closes after every answer",
    );
    await until(() => receiver!.received.filter((r) => r.frame.id === "NULL").length >= 3, 5000, "three NULLs");
    const nulls = receiver.received.filter((r) => r.frame.id === "NULL");
    assert.equal(nulls[0]!.frame.account, "1234", "link tests carry the last ACKed alarm's account");
    const log = logged(node);
    assert.equal(log.match(/link test \(NULL, account 1234\) not acknowledged/g)?.length, 1, log);
    assert.match(log, /time agrees with ours/);
    assert.doesNotMatch(log, /correcting the clock/);
    await until(() => /link test not ACKed/.test(node.status.lastCall.args[0].text), 1000, "status");

    const res = await helper
      .request()
      .post("/line-driver/test")
      .send({ id: "ld", protocol: "dc09", host: "127.0.0.1", port: receiver.tcpPort, transport: "tcp", prefix: "1" })
      .expect(200);
    assert.equal(res.body.ok, false);
    const [line] = res.body.lines;
    assert.equal(line.answer, "NAK");
    assert.match(line.detail, /refuses the link test \(NULL, account 1234\)/);
    assert.match(line.detail, /not a clock problem/);
  });
});

describe("line-driver AES key forms", () => {
  // 32 hex digits: AES-128 read as hex, AES-256 read as ASCII (pysiaalarm uses a key's text as its bytes).
  const KEY = "00112233445566778899AABBCCDDEEFF";
  let receiver: Dc09Receiver | undefined;
  before(async () => {
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(() => new Promise<void>((r) => helper.stopServer(() => r())));
  afterEach(async () => {
    await helper.unload();
    await receiver?.close();
    receiver = undefined;
  });

  for (const [form, receiverKey, bits] of [
    ["hex", Buffer.from(KEY, "hex"), 128],
    ["ascii", Buffer.from(KEY, "ascii"), 256],
  ] as const) {
    it(`32 hex digits as ${form}: the receiver configured that way decrypts the alarm`, async () => {
      receiver = await startDc09Receiver({ key: receiverKey });
      const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, keyForm: form }, { key: KEY });
      node.receive({ alarm: alarm() });
      await until(() => outcomes.length === 1, 5000, "outcome");
      assert.equal(outcomes[0]!.payload.status, "delivered");
      assert.equal(receiver.acked[0]!.frame.encrypted, true);
      assert.equal(receiver.acked[0]!.frame.data, "#1234|Nri1/BA01");
      const state = await helper.request().get("/line-driver/ld/state").expect(200);
      assert.deepEqual(state.body.key, { form, bits });
      assert.doesNotMatch(JSON.stringify(state.body), new RegExp(KEY, "i"), "the key itself is never shown");
      assert.doesNotMatch(logged(node), new RegExp(KEY, "i"));
    });
  }

  it("the Test button uses the stored key only with the deployed receivers: another host gets nothing", async () => {
    receiver = await startDc09Receiver({ key: Buffer.from(KEY, "hex") });
    const stranger = await startDc09Receiver({ key: Buffer.from(KEY, "hex") });
    try {
      await loadDriver({ port: receiver.tcpPort, keyForm: "hex" }, { key: KEY });
      const ask = (port: number, key?: string) =>
        helper
          .request()
          .post("/line-driver/test")
          .send({
            id: "ld",
            protocol: "dc09",
            host: "127.0.0.1",
            port,
            transport: "tcp",
            receiver: "1",
            prefix: "1",
            keyForm: "hex",
            ...(key === undefined ? {} : { credentials: { key } }),
          })
          .expect(200);
      const refused = await ask(stranger.tcpPort, "__PWRD__");
      assert.equal(refused.body.ok, false);
      assert.match(
        refused.body.note,
        /stored AES key is used only with the receivers this line-driver was deployed with/,
      );
      const withoutKey = await ask(stranger.tcpPort);
      assert.equal(withoutKey.body.ok, false, "no key field at all: the stored one is not used either");
      await sleep(200);
      assert.equal(stranger.received.length + stranger.rejected.length, 0, "the other host was never contacted");

      const own = await ask(receiver.tcpPort, "__PWRD__");
      assert.equal(own.body.ok, true, JSON.stringify(own.body));
      const typed = await ask(stranger.tcpPort, KEY);
      assert.equal(typed.body.ok, true, "a key typed into the dialog may go to the host the dialog names");
      assert.equal(stranger.acked.at(-1)?.frame.encrypted, true);
    } finally {
      await stranger.close();
    }
  });

  it("without the form, 32 hex digits stay a hex key (flows saved before the setting), and an ASCII receiver stays silent", async () => {
    receiver = await startDc09Receiver({ key: Buffer.from(KEY, "ascii") });
    const { node, outcomes } = await loadDriver({ port: receiver.tcpPort, attempts: 1 }, { key: KEY });
    node.receive({ alarm: alarm() });
    await until(() => receiver!.rejected.length >= 1, 5000, "a frame the receiver cannot decrypt");
    await sleep(200);
    assert.equal(outcomes.length, 0, "no ACK, no refusal: silence is retried");
    assert.match(logged(node), /AES key read as hex digits, AES-128/);
  });
});
