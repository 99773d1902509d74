// The Sur-Gard codec against the packets of surgard.md and the MLR2 / Rev 161 manuals, byte for byte, and the
// refusals that keep an alarm from going out altered (nothing is truncated or guessed).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ACK,
  type AlarmForSurgard,
  checkSurgardLine,
  contactIdPacket,
  DC4,
  decodeSurgardPacket,
  heartbeatPacket,
  NAK,
  SURGARD_MAX_PACKET_BYTES,
  SurgardDataError,
  type SurgardLine,
  siaPacket,
  splitSurgardPackets,
  surgardPacket,
} from "../../src/core/surgard";

const MLR2: SurgardLine = { receiver: 1, line: 1, lineDigits: 1 };
const SYSTEM5: SurgardLine = { receiver: 1, line: 100, lineDigits: 3 };

/** The packet text followed by DC4. */
function packet(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, "latin1"), Buffer.of(0x14)]);
}

function cid(fields: Partial<AlarmForSurgard> = {}): AlarmForSurgard {
  return { account: "1234", eventCode: "130", eventFormat: "CID", area: 1, zone: 15, ...fields };
}

function sia(fields: Partial<AlarmForSurgard> = {}): AlarmForSurgard {
  return { account: "1234", eventCode: "BA", eventFormat: "SIA", area: 1, zone: 1, ...fields };
}

function refuses(fn: () => unknown, message: RegExp | string): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof SurgardDataError, `${err.name}: ${err.message}`);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

function printable(bytes: Buffer): void {
  assert.equal(bytes[bytes.length - 1], DC4, "ends with DC4");
  assert.ok(
    bytes.subarray(0, -1).every((b) => b >= 0x20 && b <= 0x7e),
    `printable ASCII: ${JSON.stringify(bytes.toString("latin1"))}`,
  );
}

describe("Sur-Gard constants", () => {
  it("are DC4 0x14, ACK 0x06, NAK 0x15", () => {
    assert.deepEqual([DC4, ACK, NAK], [0x14, 0x06, 0x15]);
  });
});

describe("Sur-Gard heartbeat", () => {
  it("is the MLR2 bytes of surgard.md for receiver 01 line 1", () => {
    const bytes = heartbeatPacket(MLR2);
    assert.equal(bytes.toString("hex"), "313031312020202020202020202020402020202014");
    printable(bytes);
  });

  it("carries RR and L on 1-digit lines", () => {
    assert.deepEqual(heartbeatPacket({ receiver: 42, line: 7, lineDigits: 1 }), packet(`1427${" ".repeat(11)}@    `));
  });

  it("is 1RR000 on 3-digit lines whatever the line (Rev 161 4.2: the receiver itself sends it)", () => {
    const expected = packet(`101000${" ".repeat(11)}@    `);
    assert.deepEqual(heartbeatPacket(SYSTEM5), expected);
    assert.deepEqual(heartbeatPacket({ receiver: 1, line: 0, lineDigits: 3 }), expected);
    assert.equal(heartbeatPacket({ receiver: 99, line: 5, lineDigits: 3 }).toString("latin1", 0, 6), "199000");
  });
});

describe("Sur-Gard Contact ID", () => {
  it("is the MLR2 example of surgard.md", () => {
    const bytes = contactIdPacket(cid(), MLR2);
    assert.deepEqual(bytes, packet("5011 181234E13001015"));
    printable(bytes);
  });

  it("is the 3-digit-line example of surgard.md", () => {
    assert.deepEqual(contactIdPacket(cid(), SYSTEM5), packet("501100 181234E13001015"));
  });

  it("puts the user in CCC for user events: the MLR2 manual's duress example", () => {
    // "Account 1234 sends in a duress alarm with group number 01 ... 5011s181234E12101001[DC4]"
    assert.deepEqual(
      contactIdPacket(cid({ eventCode: "121", zone: null, user: 1 }), MLR2),
      packet("5011 181234E12101001"),
    );
    assert.deepEqual(
      contactIdPacket(cid({ eventCode: "401", qualifier: "restore", zone: 9, user: 3 }), MLR2),
      packet("5011 181234R40101003"),
      "closing by user 3",
    );
    assert.deepEqual(
      contactIdPacket(cid({ eventCode: "130", zone: 9, user: 3 }), MLR2),
      packet("5011 181234E13001009"),
      "a zone event keeps the zone",
    );
  });

  it("maps the qualifier: new E, restore R, previous P", () => {
    const q = (qualifier: AlarmForSurgard["qualifier"]) =>
      contactIdPacket(cid({ qualifier }), MLR2).toString("latin1", 11, 12);
    assert.deepEqual([q(undefined), q("new"), q("restore"), q("previous")], ["E", "E", "R", "P"]);
  });

  it("sends 00 and 000 when area and zone are unknown", () => {
    assert.deepEqual(contactIdPacket(cid({ area: null, zone: undefined }), MLR2), packet("5011 181234E13000000"));
    assert.deepEqual(contactIdPacket(cid({ area: 99, zone: 999 }), MLR2), packet("5011 181234E13099999"));
  });

  it("pads short accounts to 4 and uppercases hex", () => {
    assert.deepEqual(contactIdPacket(cid({ account: "12" }), MLR2), packet("5011 180012E13001015"));
    assert.deepEqual(contactIdPacket(cid({ account: "bcdf" }), MLR2), packet("5011 18BCDFE13001015"));
  });

  it("uses the 58 form for accounts longer than 4, padded to 10", () => {
    assert.deepEqual(contactIdPacket(cid({ account: "123BC" }), SYSTEM5), packet("501100 5800000123BCE13001015"));
    assert.deepEqual(contactIdPacket(cid({ account: "123bcd" }), MLR2), packet("5011 580000123BCDE13001015"));
    assert.deepEqual(
      contactIdPacket(cid({ account: "9876543210" }), SYSTEM5, 10),
      packet("501100 589876543210E13001015"),
    );
  });

  it("follows the chosen account width", () => {
    assert.deepEqual(contactIdPacket(cid(), SYSTEM5, 10), packet("501100 580000001234E13001015"));
    assert.deepEqual(contactIdPacket(cid({ account: "B" }), SYSTEM5, 4), packet("501100 18000BE13001015"));
    assert.deepEqual(contactIdPacket(cid(), SYSTEM5, "auto"), packet("501100 181234E13001015"));
  });

  it("refuses an account too long for 4-digit accounts, saying what to do", () => {
    refuses(
      () => contactIdPacket(cid({ account: "123BCD" }), MLR2, 4),
      "account 123BCD has 6 characters; Contact ID with 4-digit accounts cannot carry it: " +
        "choose 10-digit (58) accounts or shorten the account in the data-map",
    );
  });

  it("refuses accounts Contact ID cannot carry", () => {
    refuses(() => contactIdPacket(cid({ account: "12345678901" }), MLR2), /has 11 characters; .*at most 10/);
    refuses(() => contactIdPacket(cid({ account: "12345678901" }), MLR2, 10), /has 11 characters/);
    refuses(() => contactIdPacket(cid({ account: "" }), MLR2), /account is empty/);
    refuses(() => contactIdPacket(cid({ account: "12A4" }), MLR2), /account 12A4 contains A: .*0-9 and B-F/);
    refuses(() => contactIdPacket(cid({ account: "12a4" }), MLR2), /contains A/);
    refuses(() => contactIdPacket(cid({ account: "12G4" }), MLR2), /not made of Contact ID digits/);
    refuses(() => contactIdPacket(cid({ account: " 1234" }), MLR2), /not made of Contact ID digits/);
    refuses(() => contactIdPacket(cid(), MLR2, 6 as never), /account digits 6 is not "auto", 4 or 10/);
  });

  it("refuses fields out of range, with the DC-09 field messages", () => {
    refuses(() => contactIdPacket(cid({ area: 100 }), MLR2), "Partition (area) 100 is not a whole number from 0 to 99");
    refuses(() => contactIdPacket(cid({ zone: 1000 }), MLR2), "Zone 1000 is not a whole number from 0 to 999");
    refuses(() => contactIdPacket(cid({ user: -1 }), MLR2), /User -1 is not a whole number/);
    refuses(() => contactIdPacket(cid({ eventCode: "13" }), MLR2), /event code "13" is not 3 digits/);
    refuses(() => contactIdPacket(cid({ eventCode: "1B0" }), MLR2), /is not 3 digits/);
    refuses(() => contactIdPacket(cid({ eventFormat: "SIA" }), MLR2), /is a SIA code, not CID/);
    refuses(() => contactIdPacket(cid({ qualifier: "old" as never }), MLR2), /Qualifier "old"/);
  });
});

describe("Sur-Gard SIA", () => {
  it("is the MLR2 example of surgard.md", () => {
    const bytes = siaPacket(sia(), MLR2);
    assert.deepEqual(bytes, packet("S011[#1234|Nri1/BA01]"));
    printable(bytes);
  });

  it("has a 3-digit line field on System I/II/III/5", () => {
    assert.deepEqual(siaPacket(sia(), SYSTEM5), packet("S01100[#1234|Nri1/BA01]"));
  });

  it("carries the SIA-DCS data of DC-09: restore codes, ri/id modifiers, user address", () => {
    assert.deepEqual(siaPacket(sia({ qualifier: "restore" }), MLR2), packet("S011[#1234|Nri1/BR01]"));
    assert.deepEqual(
      siaPacket(sia({ eventCode: "OP", area: 2, zone: null, user: 3 }), MLR2),
      packet("S011[#1234|Nri2/id3/OP03]"),
    );
    assert.deepEqual(siaPacket(sia({ qualifier: "previous", area: null }), MLR2), packet("S011[#1234|OBA01]"));
    assert.deepEqual(siaPacket(sia({ account: "ABC123" }), MLR2), packet("S011[#ABC123|Nri1/BA01]"));
  });

  it("turns DC-09 data errors into SurgardDataError with the same message", () => {
    refuses(() => siaPacket(sia({ eventCode: "CA", qualifier: "restore" }), MLR2), /^SIA code CA has no restore form/);
    refuses(() => siaPacket(sia({ eventCode: "B" }), MLR2), 'SIA event code "B" is not two letters');
    refuses(() => siaPacket(sia({ account: "12" }), MLR2), /Account "12" is not 3 to 16 hex digits/);
    refuses(() => siaPacket(sia({ eventFormat: "CID" }), MLR2), /is a CID code, not SIA/);
  });
});

describe("Sur-Gard line addressing", () => {
  it("dispatches on the event format", () => {
    assert.deepEqual(surgardPacket(cid(), MLR2), contactIdPacket(cid(), MLR2));
    assert.deepEqual(surgardPacket(cid({ account: "1234" }), MLR2, 10), contactIdPacket(cid(), MLR2, 10));
    assert.deepEqual(surgardPacket(sia(), SYSTEM5), siaPacket(sia(), SYSTEM5));
    refuses(() => surgardPacket(cid({ eventFormat: "ADM" as never }), MLR2), /"ADM" is not SIA or CID/);
  });

  it("pads receiver and line and accepts the edges", () => {
    assert.equal(contactIdPacket(cid(), { receiver: 0, line: 0, lineDigits: 1 }).toString("latin1", 0, 4), "5000");
    assert.equal(contactIdPacket(cid(), { receiver: 99, line: 9, lineDigits: 1 }).toString("latin1", 0, 4), "5999");
    assert.equal(siaPacket(sia(), { receiver: 7, line: 5, lineDigits: 3 }).toString("latin1", 0, 6), "S07005");
    assert.equal(siaPacket(sia(), { receiver: 7, line: 999, lineDigits: 3 }).toString("latin1", 0, 6), "S07999");
  });

  it("refuses receiver and line numbers that do not fit", () => {
    refuses(
      () => checkSurgardLine({ receiver: 100, line: 1, lineDigits: 1 }),
      "Receiver number 100 is not a whole number from 0 to 99",
    );
    refuses(() => checkSurgardLine({ receiver: -1, line: 1, lineDigits: 1 }), /Receiver number -1/);
    refuses(() => checkSurgardLine({ receiver: 1.5, line: 1, lineDigits: 1 }), /Receiver number 1.5/);
    refuses(
      () => checkSurgardLine({ receiver: 1, line: 10, lineDigits: 1 }),
      "Line number (1 digit) 10 is not a whole number from 0 to 9",
    );
    refuses(
      () => checkSurgardLine({ receiver: 1, line: 1000, lineDigits: 3 }),
      "Line number (3 digits) 1000 is not a whole number from 0 to 999",
    );
    refuses(() => checkSurgardLine({ receiver: 1, line: 1, lineDigits: 2 as never }), /Line digits 2 is not 1/);
    refuses(() => heartbeatPacket({ receiver: 1, line: 10, lineDigits: 1 }), /Line number/);
    refuses(() => contactIdPacket(cid(), { receiver: 100, line: 1, lineDigits: 3 }), /Receiver number/);
    refuses(() => siaPacket(sia(), { receiver: 1, line: Number.NaN, lineDigits: 3 }), /Line number \(3 digits\) NaN/);
    assert.doesNotThrow(() => checkSurgardLine(SYSTEM5));
  });
});

describe("Sur-Gard stream and decoder", () => {
  it("splits a stream at DC4, keeping DC4 and the unfinished rest", () => {
    const a = heartbeatPacket(MLR2);
    const b = contactIdPacket(cid(), MLR2);
    const c = siaPacket(sia(), MLR2);
    const { packets, rest } = splitSurgardPackets(Buffer.concat([a, b, c.subarray(0, 5)]));
    assert.deepEqual(packets, [a, b]);
    assert.deepEqual(rest, c.subarray(0, 5));
    const next = splitSurgardPackets(Buffer.concat([rest, c.subarray(5)]));
    assert.deepEqual(next, { packets: [c], rest: Buffer.alloc(0) });
    assert.deepEqual(splitSurgardPackets(Buffer.alloc(0)), { packets: [], rest: Buffer.alloc(0) });
  });

  it("drops a rest longer than any packet", () => {
    const { packets, rest } = splitSurgardPackets(Buffer.alloc(SURGARD_MAX_PACKET_BYTES, 0x31));
    assert.deepEqual([packets.length, rest.length], [0, 0]);
    assert.equal(
      splitSurgardPackets(Buffer.alloc(SURGARD_MAX_PACKET_BYTES - 1, 0x31)).rest.length,
      SURGARD_MAX_PACKET_BYTES - 1,
    );
    assert.equal(SURGARD_MAX_PACKET_BYTES, siaPacket(sia(), SYSTEM5).length + 66 - "#1234|Nri1/BA01".length);
  });

  it("reads back every packet the encoders write, with or without DC4", () => {
    assert.deepEqual(decodeSurgardPacket(heartbeatPacket(MLR2), 1), {
      kind: "heartbeat",
      receiver: 1,
      line: 1,
      raw: `1011${" ".repeat(11)}@    `,
    });
    assert.deepEqual(decodeSurgardPacket(heartbeatPacket(SYSTEM5), 3), {
      kind: "heartbeat",
      receiver: 1,
      line: 0,
      raw: `101000${" ".repeat(11)}@    `,
    });
    assert.deepEqual(decodeSurgardPacket(contactIdPacket(cid({ qualifier: "restore" }), SYSTEM5), 3), {
      kind: "cid",
      receiver: 1,
      line: 100,
      account: "1234",
      qualifier: "R",
      eventCode: "130",
      group: "01",
      zone: "015",
      raw: "501100 181234R13001015",
    });
    const ten = decodeSurgardPacket(Buffer.from("5011 580000123BCDP40101003"), 1);
    assert.deepEqual(ten.kind === "cid" && [ten.account, ten.qualifier, ten.eventCode], ["0000123BCD", "P", "401"]);
    assert.deepEqual(decodeSurgardPacket(siaPacket(sia(), SYSTEM5), 3), {
      kind: "sia",
      receiver: 1,
      line: 100,
      data: "#1234|Nri1/BA01",
      account: "1234",
      raw: "S01100[#1234|Nri1/BA01]",
    });
  });

  it("refuses garbage", () => {
    const bad = (text: string, lineDigits: 1 | 3, message: RegExp) =>
      refuses(() => decodeSurgardPacket(packet(text), lineDigits), message);
    bad("", 1, /Empty packet/);
    bad("5011 181234E1300101\x07", 1, /outside printable ASCII/);
    bad("5011 181234E13001015", 3, /3-digit-line packet "5011 181234E13001015" is not Contact ID/);
    bad("501100 181234E13001015", 1, /is not Contact ID/);
    bad("5011 1812345E13001015", 1, /the 18 form has 4-digit accounts, not 5/);
    bad("5011 58123456E13001015", 1, /the 58 form has 10-digit accounts, not 6/);
    bad("5011 1812A4E13001015", 1, /is not Contact ID/);
    bad("5011 181234X13001015", 1, /is not Contact ID/);
    bad(`1011${" ".repeat(10)}@    `, 1, /is not a heartbeat/);
    bad("S011#1234|Nri1/BA01", 1, /is not SIA/);
    bad("S011[Nri1/BA01]", 1, /does not start with #<account>\|/);
    bad(`S011[#1234|N${"x".repeat(60)}]`, 1, /SIA data has 67 bytes, more than 63/);
    bad("8011 1234 0000 0000 0", 1, /protocol id "8" is not 1 \(heartbeat\), 5 \(Contact ID\) or S \(SIA\)/);
    refuses(() => decodeSurgardPacket(packet("5011 181234E13001015"), 2 as never), /Line digits 2/);
  });
});
