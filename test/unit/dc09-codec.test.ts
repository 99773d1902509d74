// The DC-09 codec against the verified frames of dc09.md, the leniencies real receivers need, and the refusals
// that keep a corrupted frame from ever counting as an ACK.
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { describe, it } from "node:test";
import {
  type AlarmForDc09,
  admCidData,
  crc16Arc,
  Dc09DataError,
  Dc09DecodeError,
  Dc09KeyError,
  type Dc09Message,
  type Dc09Response,
  type DecodedDc09Frame,
  decodeDc09Frame,
  decodeDc09Response,
  type ExtendedBlock,
  encodeDc09,
  encodeDc09Response,
  formatDc09Time,
  formatDc09Timestamp,
  nextDc09Seq,
  parseDc09Key,
  parseDc09Timestamp,
  siaDcsData,
  splitDc09Frames,
} from "../../src/core/dc09";

const TS = new Date(Date.UTC(2019, 8, 25, 14, 12, 4));
const KEY = Buffer.from("AAAAAAAAAAAAAAAA", "ascii");
const padOf =
  (char: string) =>
  (n: number): Buffer =>
    Buffer.alloc(n, char);

function bytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

/** A frame around a region, with the CRC and length computed here. */
function frameOf(region: string, crcCase: "upper" | "lower" = "upper"): Buffer {
  const crc = crc16Arc(bytes(region)).toString(16).padStart(4, "0");
  const length = bytes(region).length.toString(16).toUpperCase().padStart(4, "0");
  return bytes(`\n${crcCase === "upper" ? crc.toUpperCase() : crc}${length}${region}\r`);
}

/** AES-CBC with zero IV straight from node:crypto, independent of the codec. */
function aesHex(plain: Buffer, key: Buffer, pkcs7 = false): string {
  const cipher = createCipheriv(`aes-${key.length * 8}-cbc`, key, Buffer.alloc(16));
  cipher.setAutoPadding(pkcs7);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString("hex");
}

function messageFields(f: DecodedDc09Frame): Dc09Message {
  const { encrypted: _e, raw: _r, decrypted: _d, ...message } = f;
  return message;
}

const sia = (fields: Partial<AlarmForDc09>): AlarmForDc09 => ({
  account: "1234",
  eventCode: "BA",
  eventFormat: "SIA",
  ...fields,
});
const cid = (fields: Partial<AlarmForDc09>): AlarmForDc09 => ({
  account: "1234",
  eventCode: "130",
  eventFormat: "CID",
  ...fields,
});

describe("crc16Arc", () => {
  it("has the CRC-16/ARC check value", () => {
    assert.equal(crc16Arc(bytes("123456789")), 0xbb3d);
    assert.equal(crc16Arc(new Uint8Array()), 0);
  });
});

describe("verified frames of dc09.md", () => {
  const messages: { frame: string; message: Dc09Message; pad?: string; meaning: string }[] = [
    {
      meaning: "burglary, area 1, zone 1",
      frame: '\n16B3003B"SIA-DCS"0001R1L1#1234[#1234|Nri1/BA01]_14:12:04,09-25-2019\r',
      message: {
        id: "SIA-DCS",
        seq: 1,
        receiver: "1",
        prefix: "1",
        account: "1234",
        data: siaDcsData(sia({ area: 1, zone: 1 })),
        timestamp: TS,
      },
    },
    {
      meaning: "Contact ID 130, partition 01, zone 015",
      frame: '\n5FB9003D"ADM-CID"0002R1L1#1234[#1234|1130 01 015]_14:12:04,09-25-2019\r',
      message: {
        id: "ADM-CID",
        seq: 2,
        receiver: "1",
        prefix: "1",
        account: "1234",
        data: admCidData(cid({ qualifier: "new", area: 1, zone: 15 })),
        timestamp: TS,
      },
    },
    {
      meaning: "link test",
      frame: '\n25A70015"NULL"0003R1L1#1234[]\r',
      message: { id: "NULL", seq: 3, receiver: "1", prefix: "1", account: "1234", data: "" },
    },
    {
      meaning: "with extended data",
      frame:
        '\nD01A0073"SIA-DCS"0004R1L1#1234[#1234|Nri1/PA501][X006E07.7777777][Y49N06.6666666]' +
        "[H14:11:58,09-25-2019]_14:12:04,09-25-2019\r",
      message: {
        id: "SIA-DCS",
        seq: 4,
        receiver: "1",
        prefix: "1",
        account: "1234",
        data: siaDcsData(sia({ eventCode: "PA", area: 1, zone: 501 })),
        extended: [
          { kind: "X", value: "006E07.7777777" },
          { kind: "Y", value: "49N06.6666666" },
          { kind: "H", value: formatDc09Time(new Date(Date.UTC(2019, 8, 25, 14, 11, 58))) },
        ],
        timestamp: TS,
      },
    },
    {
      meaning: "encrypted SIA-DCS",
      frame:
        '\n23770078"*SIA-DCS"0005R1L1#1234[010403A755D3E1312081B895887044E77D38B50708C61E5F6213A1BA8B339ABDF838F9A3' +
        "E8E2C2ACB83510B88CEC9EB2\r",
      pad: "ppppppppppp|#1234|Nri1/BA01]_14:12:04,09-25-2019",
      message: {
        id: "SIA-DCS",
        seq: 5,
        receiver: "1",
        prefix: "1",
        account: "1234",
        data: siaDcsData(sia({ area: 1, zone: 1 })),
        timestamp: TS,
      },
    },
    {
      meaning: "encrypted NULL",
      frame: '\n4C8C0055"*NULL"0006R1L1#1234[5AE9DD27F211578061E110FE61EAA7EE6AC52DFA492A9E0CA206C7DD5119D4B1\r',
      pad: "pppppppppp|]_14:12:04,09-25-2019",
      message: { id: "NULL", seq: 6, receiver: "1", prefix: "1", account: "1234", data: "", timestamp: TS },
    },
    {
      meaning: "fioletoven/dc09 test frame",
      frame: '\nF4D20029"SIA-DCS"0001RF3L77#1234[#1234|NRR|Atest]\r',
      message: { id: "SIA-DCS", seq: 1, receiver: "F3", prefix: "77", account: "1234", data: "#1234|NRR|Atest" },
    },
    {
      meaning: "CreepPork/py-sia-dc-07 frame, no receiver",
      frame: '\n9EC40027"ADM-CID"0001L0#1002[#1002|1602 00 001]\r',
      message: {
        id: "ADM-CID",
        seq: 1,
        prefix: "0",
        account: "1002",
        data: admCidData(cid({ account: "1002", eventCode: "602", zone: 1 })),
      },
    },
  ];

  for (const v of messages) {
    it(`encodes and decodes: ${v.meaning}`, () => {
      const opts = v.pad ? { key: KEY, randomPad: padOf("p") } : {};
      assert.deepEqual(encodeDc09(v.message, opts), bytes(v.frame));
      const decoded = decodeDc09Frame(bytes(v.frame), { key: KEY });
      assert.deepEqual(messageFields(decoded), v.message);
      assert.equal(decoded.encrypted, v.pad !== undefined);
      assert.equal(decoded.raw, v.frame.slice(1, -1));
      assert.equal(decoded.decrypted, v.pad);
    });
  }

  const responses: { frame: string; response: Omit<Dc09Response, "raw" | "encrypted"> }[] = [
    {
      frame: '\nD2770014"ACK"0001R1L1#1234[]\r',
      response: { kind: "ACK", seq: 1, receiver: "1", prefix: "1", account: "1234" },
    },
    {
      frame: '\nC6280025"NAK"0000R0L0A0[]_14:12:24,09-25-2019\r',
      response: {
        kind: "NAK",
        seq: 0,
        receiver: "0",
        prefix: "0",
        timestamp: new Date(Date.UTC(2019, 8, 25, 14, 12, 24)),
      },
    },
    {
      frame: '\nA2AF0014"DUH"0001R1L1#1234[]\r',
      response: { kind: "DUH", seq: 1, receiver: "1", prefix: "1", account: "1234" },
    },
    {
      frame: '\nE4410025"NAK"0000R0L0A0[]_16:20:01,09-24-2025\r',
      response: {
        kind: "NAK",
        seq: 0,
        receiver: "0",
        prefix: "0",
        timestamp: new Date(Date.UTC(2025, 8, 24, 16, 20, 1)),
      },
    },
  ];

  for (const v of responses) {
    it(`encodes and decodes the ${v.response.kind} ${v.frame.slice(1, 9)}`, () => {
      assert.deepEqual(encodeDc09Response(v.response), bytes(v.frame));
      assert.deepEqual(decodeDc09Response(bytes(v.frame)), {
        ...v.response,
        encrypted: false,
        raw: v.frame.slice(1, -1),
      });
    });
  }
});

describe("encodeDc09", () => {
  const base: Dc09Message = { id: "SIA-DCS", seq: 7, receiver: "1", prefix: "1", account: "1234", data: "#1234|NBA01" };

  it("adds the current time to an encrypted frame that has none", () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const decoded = decodeDc09Frame(encodeDc09(base, { key: KEY }), { key: KEY });
    const after = Date.now();
    assert.ok(decoded.timestamp && decoded.timestamp.getTime() >= before && decoded.timestamp.getTime() <= after);
    assert.equal(decodeDc09Frame(encodeDc09(base)).timestamp, undefined, "plain frames stay untimed");
  });

  it("pads with 16 bytes when the encrypted region is already aligned", () => {
    // "|" + 10 data + "]" + 20 timestamp = 32 bytes
    const frame = encodeDc09({ ...base, data: "#1234|NRP1", timestamp: TS }, { key: KEY });
    const decrypted = decodeDc09Frame(frame, { key: KEY }).decrypted!;
    assert.equal(decrypted.length, 48);
    assert.equal(decrypted.indexOf("|"), 16);
  });

  it("never pads with |, [ or ], and sends uppercase hex", () => {
    for (let i = 0; i < 200; i++) {
      const frame = encodeDc09({ ...base, data: "" }, { key: KEY });
      const decoded = decodeDc09Frame(frame, { key: KEY });
      const pad = decoded.decrypted!.slice(0, decoded.decrypted!.indexOf("|"));
      assert.match(pad, /^[^|[\]]{1,16}$/);
      assert.match(decoded.raw.slice(decoded.raw.indexOf("[") + 1), /^[0-9A-F]+$/);
    }
  });

  it("encrypts with 192- and 256-bit keys", () => {
    for (const size of [24, 32]) {
      const key = Buffer.alloc(size, 7);
      const decoded = decodeDc09Frame(encodeDc09({ ...base, timestamp: TS }, { key }), { key });
      assert.equal(decoded.data, base.data);
      const hex = decoded.raw.slice(decoded.raw.indexOf("[") + 1);
      assert.equal(aesHex(bytes(decoded.decrypted!), key).toUpperCase(), hex, `aes-${size * 8}-cbc, zero IV`);
    }
  });

  const refusals: [string, Partial<Dc09Message>, RegExp][] = [
    ["seq 0", { seq: 0 }, /Sequence number 0 is not a whole number from 1 to 9999/],
    ["seq 10000", { seq: 10000 }, /Sequence number 10000/],
    ["fractional seq", { seq: 1.5 }, /Sequence number 1.5/],
    ["receiver not hex", { receiver: "G1" }, /Receiver "G1" is not 1 to 6 hex digits/],
    ["receiver too long", { receiver: "1234567" }, /Receiver "1234567"/],
    ["empty prefix", { prefix: "" }, /Line prefix "" is not 1 to 6 hex digits/],
    ["short account", { account: "12" }, /Account "12" is not 3 to 16 hex digits/],
    ["long account", { account: "12345678901234567" }, /Account "12345678901234567"/],
    ["account not hex", { account: "12G4" }, /Account "12G4"/],
    ["] in data", { data: "#1234|NBA]01" }, /Data contains "\]" \(0x5D\)/],
    ["non-ASCII data", { data: "#1234|NBA01^Küche" }, /Data contains "ü" \(0xFC\): only printable ASCII/],
    ["CR in data", { data: "#1234|NBA01\r" }, /Data contains "\r" \(0x0D\)/],
    ["NULL with data", { id: "NULL", data: "#1234" }, /NULL \(link test\) message carries no data/],
    ["unknown id", { id: "SIA" as Dc09Message["id"] }, /Message id "SIA" is not SIA-DCS, ADM-CID or NULL/],
    ["extended kind of two letters", { extended: [{ kind: "XY", value: "1" }] }, /kind "XY" is not one capital/],
    ["[ in extended value", { extended: [{ kind: "I", value: "a[b" }] }, /Extended data \[I\] contains "\["/],
    ["over 4095 bytes", { data: "x".repeat(4080) }, /The message is 4104 bytes; DC-09 allows at most 4095/],
  ];
  for (const [name, change, message] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => encodeDc09({ ...base, ...change }),
        (err: Error) => {
          assert.ok(err instanceof Dc09DataError, `${err.name}: ${err.message}`);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  it("refuses a pad function that breaks the rules, and a key of the wrong size", () => {
    assert.throws(() => encodeDc09(base, { key: KEY, randomPad: padOf("|") }), /none of them \|, \[ or \]/);
    assert.throws(() => encodeDc09(base, { key: KEY, randomPad: () => Buffer.alloc(1, "p") }), /must return \d+ bytes/);
    assert.throws(() => encodeDc09(base, { key: Buffer.alloc(20) }), /16, 24 or 32 bytes, not 20/);
  });

  it("wraps the sequence after 9999 to 0001", () => {
    assert.equal(nextDc09Seq(1), 2);
    assert.equal(nextDc09Seq(9998), 9999);
    assert.equal(nextDc09Seq(9999), 1);
  });
});

describe("encodeDc09Response", () => {
  it("encrypts ACK with a key, keeps DUH and NAK plain", () => {
    const ack = encodeDc09Response({ kind: "ACK", seq: 5, receiver: "1", prefix: "1", account: "1234" }, { key: KEY });
    const decoded = decodeDc09Response(ack, { key: KEY });
    assert.equal(decoded.kind, "ACK");
    assert.equal(decoded.encrypted, true);
    assert.match(decoded.raw, /^[0-9A-F]{4}0054"\*ACK"0005R1L1#1234\[[0-9A-F]{64}$/);
    assert.ok(decoded.timestamp, "an encrypted ACK carries a timestamp");
    const duh = encodeDc09Response({ kind: "DUH", seq: 5, receiver: "1", prefix: "1", account: "1234" }, { key: KEY });
    assert.deepEqual(duh, frameOf('"DUH"0005R1L1#1234[]'));
    const nak = encodeDc09Response({ kind: "NAK", seq: 0, timestamp: TS }, { key: KEY });
    assert.equal(decodeDc09Response(nak).encrypted, false);
  });

  it("refuses an unknown kind or seq", () => {
    assert.throws(() => encodeDc09Response({ kind: "OK" as "ACK", seq: 1 }), /Response kind "OK"/);
    assert.throws(
      () => encodeDc09Response({ kind: "ACK", seq: -1 }),
      /Sequence number -1 is not a whole number from 0/,
    );
  });
});

describe("decodeDc09Response: lenient where receivers differ", () => {
  const stamp = "_14:12:04,09-25-2019";
  const check = (frame: Buffer) => {
    const r = decodeDc09Response(frame, { key: KEY });
    assert.equal(r.kind, "ACK");
    assert.equal(r.seq, 5);
    assert.equal(r.encrypted, true);
    assert.deepEqual(r.timestamp, TS);
  };

  it("reads lowercase hex and a lowercase CRC", () => {
    const hex = aesHex(bytes(`pppppppppp|]${stamp}`), KEY).toLowerCase();
    check(frameOf(`"*ACK"0005R1L1#1234[${hex}`, "lower"));
  });

  it("reads a pad of 0 without | (pysiaalarm)", () => {
    check(frameOf(`"*ACK"0005R1L1#1234[${aesHex(bytes(`00000000000]${stamp}`), KEY).toUpperCase()}`));
  });

  it("reads NUL pad, a space before the timestamp and PKCS#7 filler (ioBroker.sia)", () => {
    const plain = Buffer.concat([Buffer.alloc(9), bytes(`|] ${stamp}`)]);
    check(frameOf(`"*ACK"0005R1L1#1234[${aesHex(plain, KEY, true)}`));
  });

  it("reads a pad of random bytes", () => {
    const pad = Buffer.from([0x00, 0xff, 0x80, 0x0d, 0x0a, 0x23, 0x5f, 0x41, 0x7e, 0x30]);
    check(frameOf(`"*ACK"0005R1L1#1234[${aesHex(Buffer.concat([pad, bytes(`|]${stamp}`)]), KEY)}`));
  });

  it("accepts a plain ACK with no timestamp or an unreadable one", () => {
    assert.equal(decodeDc09Response(frameOf('"ACK"0001R1L1#1234[]')).timestamp, undefined);
    const odd = decodeDc09Response(frameOf('"ACK"0001R1L1#1234[]_25:99:99,13-45-2019'));
    assert.equal(odd.kind, "ACK");
    assert.equal(odd.timestamp, undefined);
  });

  it("reads an ACK without receiver or account, and an RSP", () => {
    assert.deepEqual(decodeDc09Response(frameOf('"ACK"0042L0[]')), {
      kind: "ACK",
      seq: 42,
      prefix: "0",
      encrypted: false,
      raw: decodeDc09Response(frameOf('"ACK"0042L0[]')).raw,
    });
    assert.equal(decodeDc09Response(frameOf('"RSP"0003R1L1#1234[][Ksomething]')).kind, "RSP");
  });

  it("reads a NAK with a real receiver number and line", () => {
    const nak = decodeDc09Response(frameOf('"NAK"0000R12L3A0[]_14:12:24,09-25-2019'));
    assert.equal(nak.receiver, "12");
    assert.equal(nak.prefix, "3");
    assert.equal(nak.account, undefined);
  });
});

describe("decodeDc09Frame: lenient pads", () => {
  it("reads an encrypted event padded with NUL and no |", () => {
    const plain = Buffer.concat([Buffer.alloc(12), bytes("#1234|Nri1/BA01]_14:12:04,09-25-2019")]);
    const frame = frameOf(`"*SIA-DCS"0009R1L1#1234[${aesHex(plain, KEY)}`);
    const decoded = decodeDc09Frame(frame, { key: KEY });
    assert.equal(decoded.data, "#1234|Nri1/BA01");
    assert.deepEqual(decoded.timestamp, TS);
  });
});

describe("strict rejections", () => {
  const ack = '\nD2770014"ACK"0001R1L1#1234[]\r';
  const event = '\n16B3003B"SIA-DCS"0001R1L1#1234[#1234|Nri1/BA01]_14:12:04,09-25-2019\r';
  const encrypted = encodeDc09(
    { id: "SIA-DCS", seq: 5, receiver: "1", prefix: "1", account: "1234", data: "#1234|NBA01", timestamp: TS },
    { key: KEY },
  );
  const encryptedAck = encodeDc09Response({ kind: "ACK", seq: 5, receiver: "1", prefix: "1" }, { key: KEY });
  const cases: [string, () => unknown, RegExp][] = [
    [
      "bad CRC",
      () => decodeDc09Response(bytes(ack.replace("D277", "D278"))),
      /CRC mismatch: the frame says D278, comp/,
    ],
    ["changed byte", () => decodeDc09Response(bytes(ack.replace("#1234", "#1235"))), /CRC mismatch: .* computed/],
    ["wrong length", () => decodeDc09Response(bytes(ack.replace("0014", "0015"))), /Length mismatch: .* 21 bytes/],
    [
      "cut in the middle",
      () => decodeDc09Frame(bytes(`${event.slice(0, 30)}\r`)),
      /Length mismatch: the length field says 59 bytes, the frame has 21/,
    ],
    ["no CR", () => decodeDc09Response(bytes(ack.slice(0, -1))), /truncated: it does not end with CR/],
    ["empty", () => decodeDc09Response(Buffer.alloc(0)), /Empty frame/],
    ["garbage", () => decodeDc09Response(bytes("hello\r")), /starts with 0x68, not LF/],
    ["too short", () => decodeDc09Response(bytes("\nD277\r")), /too short/],
    ["CRC not hex", () => decodeDc09Response(bytes(ack.replace("D277", "XY77"))), /CRC field "XY77" is not 4 hex/],
    ["length not hex", () => decodeDc09Response(bytes(ack.replace("0014", "0x14"))), /Length field "0x14"/],
    ["no header", () => decodeDc09Response(frameOf("ACK0001R1L1[]")), /Cannot read id, sequence/],
    ["event as response", () => decodeDc09Response(bytes(event)), /"SIA-DCS" is not a receiver response/],
    ["response as event", () => decodeDc09Frame(bytes(ack)), /"ACK" is not a transmitter message/],
    ["event without account", () => decodeDc09Frame(frameOf('"NULL"0001R1L1[]')), /has no #<account>/],
    ["event without prefix", () => decodeDc09Frame(frameOf('"NULL"0001R1#1234[]')), /has no L<line prefix>/],
    ["bad timestamp", () => decodeDc09Frame(frameOf('"NULL"0001L1#123[]_99:00:00')), /timestamp "_99:00:00" is not/],
    ["text after data", () => decodeDc09Frame(frameOf('"NULL"0001L1#123[]x')), /unexpected "x" after the data/],
    ["unclosed data", () => decodeDc09Frame(frameOf('"SIA-DCS"0001L1#123[#123|NBA')), /not closed with \]/],
    ["encrypted, no key", () => decodeDc09Frame(encrypted), /\*SIA-DCS 0005 is encrypted but no key/],
    [
      "wrong key",
      () => decodeDc09Frame(encrypted, { key: Buffer.alloc(16, 1) }),
      /not a pad followed by ASCII content \(wrong key\?\)/,
    ],
    [
      "ACK, wrong key",
      () => decodeDc09Response(encryptedAck, { key: Buffer.alloc(16, 1) }),
      /not a pad followed by ASCII content \(wrong key\?\)/,
    ],
    ["odd hex", () => decodeDc09Frame(frameOf('"*NULL"0001L1#123[ABC'), { key: KEY }), /blocks of 32 digits \(3/],
  ];
  for (const [name, run, message] of cases) {
    it(`rejects ${name}`, () => {
      assert.throws(run, (err: Error) => {
        assert.ok(err instanceof Dc09DecodeError, `${err.name}: ${err.message}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe("round trips over random messages", () => {
  // Deterministic PRNG (mulberry32) so a failure can be replayed.
  let state = 0x9e3779b9;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)];
  const hex = (min: number, max: number) =>
    Array.from({ length: int(min, max) }, () => pick([..."0123456789ABCDEFabcdef"])).join("");
  const printable = [...Array(95)].map((_, i) => String.fromCharCode(32 + i)).filter((c) => c !== "[" && c !== "]");
  const text = (max: number) => Array.from({ length: int(0, max) }, () => pick(printable)).join("");

  it("decodes what it encodes, plain and with 128/192/256-bit keys", () => {
    for (let i = 0; i < 500; i++) {
      const id = pick(["SIA-DCS", "ADM-CID", "NULL"] as const);
      const extended: ExtendedBlock[] = Array.from({ length: int(0, 3) }, () => ({
        kind: pick([..."XYHIMVK"]),
        value: text(20),
      }));
      const message: Dc09Message = {
        id,
        seq: int(1, 9999),
        prefix: hex(1, 6),
        account: hex(3, 16),
        data: id === "NULL" ? "" : `#${hex(3, 6)}|${text(60)}`,
      };
      if (random() < 0.8) message.receiver = hex(1, 6);
      if (extended.length > 0) message.extended = extended;
      if (random() < 0.7) message.timestamp = new Date(int(0, 4_102_444_799) * 1000);
      const key = pick([undefined, Buffer.alloc(16), Buffer.alloc(24), Buffer.alloc(32)]);
      if (key) for (let b = 0; b < key.length; b++) key[b] = int(0, 255);

      const decoded = decodeDc09Frame(encodeDc09(message, { key }), { key });
      const expected = key && !message.timestamp ? { ...message, timestamp: decoded.timestamp } : message;
      assert.deepEqual(messageFields(decoded), expected, `message ${i}`);
      assert.equal(decoded.encrypted, key !== undefined);
      if (key) assert.ok(decoded.timestamp, "encrypted frames always carry a timestamp");
    }
  });
});

describe("parseDc09Key", () => {
  const hex32 = "00112233445566778899aabbccddeeff";
  it("reads ASCII keys of 16, 24 and 32 characters", () => {
    assert.deepEqual(parseDc09Key("AAAAAAAAAAAAAAAA"), { key: KEY, form: "ascii", bits: 128 });
    assert.equal(parseDc09Key("abcdefghijklmnopqrstuvwx").bits, 192);
    const k256 = parseDc09Key("Secret key for the alarm receive");
    assert.deepEqual(
      [k256.form, k256.bits, k256.key.toString("ascii")],
      ["ascii", 256, "Secret key for the alarm receive"],
    );
  });

  it("reads hex keys of 32, 48 and 64 digits in any case, trimmed", () => {
    const k = parseDc09Key(`  ${hex32.toUpperCase()} `);
    assert.deepEqual(k, { key: Buffer.from(hex32, "hex"), form: "hex", bits: 128 });
    assert.deepEqual(parseDc09Key(hex32).key, k.key);
    assert.equal(parseDc09Key(hex32 + hex32.slice(0, 16)).bits, 192);
    assert.equal(parseDc09Key(hex32 + hex32).bits, 256);
  });

  it("reads 32 hex digits as hex unless told ascii", () => {
    assert.equal(parseDc09Key(hex32).form, "hex");
    assert.deepEqual(parseDc09Key(hex32, "ascii"), { key: Buffer.from(hex32, "ascii"), form: "ascii", bits: 256 });
  });

  const refusals: [string, string, "auto" | "hex" | "ascii", RegExp][] = [
    ["empty", "   ", "auto", /The DC-09 key is empty: enter 32, 48 or 64 hex digits, or 16, 24 or 32 ASCII/],
    ["20 characters", "A".repeat(20), "auto", /The DC-09 key has 20 characters: enter 32, 48 or 64 hex/],
    ["48 with a typo", `${"0".repeat(47)}g`, "auto", /has 48 characters but is not all hex digits/],
    ["non-ASCII", `Ä${"A".repeat(15)}`, "auto", /contains U\+00C4, which is not a printable ASCII/],
    ["hex form, not hex", "AAAAAAAAAAAAAAAG", "hex", /The DC-09 key is not hex/],
    ["hex form, 30 digits", "0".repeat(30), "hex", /The DC-09 hex key has 30 digits/],
    ["ascii form, 20 characters", "A".repeat(20), "ascii", /The DC-09 ASCII key has 20 characters/],
  ];
  for (const [name, text, form, message] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parseDc09Key(text, form),
        (err: Error) => {
          assert.ok(err instanceof Dc09KeyError);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe("timestamps", () => {
  it("formats UTC and parses back", () => {
    assert.equal(formatDc09Timestamp(TS), "_14:12:04,09-25-2019");
    assert.equal(formatDc09Time(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), "03:04:05,01-02-2024");
    assert.deepEqual(parseDc09Timestamp("_14:12:04,09-25-2019"), TS);
    assert.deepEqual(parseDc09Timestamp(" 14:12:04,09-25-2019 "), TS);
    assert.deepEqual(parseDc09Timestamp("_00:00:00,02-29-2024"), new Date(Date.UTC(2024, 1, 29)));
    assert.throws(() => formatDc09Timestamp(new Date(Number.NaN)), RangeError);
  });

  for (const garbage of [
    "",
    "_",
    "garbage",
    "_25:00:00,01-01-2020",
    "_12:60:00,01-01-2020",
    "_12:00:00,13-01-2020",
    "_12:00:00,02-30-2021",
    "_12:00:00,00-10-2020",
    "_12:00,01-01-2020",
    "_12:00:00 01-01-2020",
    "12:00:00,1-1-20",
  ]) {
    it(`returns undefined for ${JSON.stringify(garbage)}`, () => assert.equal(parseDc09Timestamp(garbage), undefined));
  }
});

describe("splitDc09Frames", () => {
  const frames = [
    '\n16B3003B"SIA-DCS"0001R1L1#1234[#1234|Nri1/BA01]_14:12:04,09-25-2019\r',
    '\n25A70015"NULL"0003R1L1#1234[]\r',
    '\nD2770014"ACK"0001R1L1#1234[]\r',
  ].map(bytes);
  const stream = Buffer.concat(frames);

  it("returns every complete frame and keeps the rest", () => {
    const { frames: found, rest } = splitDc09Frames(Buffer.concat([stream, bytes('\n1234"par')]));
    assert.deepEqual(found, frames);
    assert.deepEqual(rest, bytes('\n1234"par'));
  });

  it("finds the same frames whichever byte the stream is cut at", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const first = splitDc09Frames(stream.subarray(0, cut));
      const second = splitDc09Frames(Buffer.concat([first.rest, stream.subarray(cut)]));
      assert.deepEqual([...first.frames, ...second.frames], frames, `cut at ${cut}`);
      assert.equal(second.rest.length, 0);
    }
  });

  it("finds the same frames when bytes arrive one at a time", () => {
    let pending: Buffer = Buffer.alloc(0);
    const found: Buffer[] = [];
    for (const byte of stream) {
      const { frames: f, rest } = splitDc09Frames(Buffer.concat([pending, Buffer.of(byte)]));
      found.push(...f);
      pending = rest;
    }
    assert.deepEqual(found, frames);
  });

  it("drops noise, broken frames and an overlong rest", () => {
    const noisy = Buffer.concat([bytes("noise\r"), bytes('\nBROKEN"NULL"'), frames[1], bytes("\r\n")]);
    const { frames: found, rest } = splitDc09Frames(noisy);
    assert.deepEqual(found, [frames[1]]);
    assert.deepEqual(rest, bytes("\n"));
    assert.equal(splitDc09Frames(Buffer.concat([bytes("\n"), Buffer.alloc(5000, 0x41)])).rest.length, 0);
  });
});

describe("siaDcsData", () => {
  const built: [string, Partial<AlarmForDc09>, string][] = [
    ["area and zone", { area: 1, zone: 1 }, "#1234|Nri1/BA01"],
    ["3-digit zone", { eventCode: "PA", area: 1, zone: 501 }, "#1234|Nri1/PA501"],
    ["no area", { zone: 7 }, "#1234|NBA07"],
    ["no zone", { area: 2 }, "#1234|Nri2/BA"],
    ["user and zone", { area: 1, zone: 5, user: 3 }, "#1234|Nri1/id3/BA05"],
    ["user event without zone", { eventCode: "OP", area: 1, user: 3 }, "#1234|Nri1/id3/OP03"],
    ["lowercase code", { eventCode: "ba", zone: 1 }, "#1234|NBA01"],
    ["restore of an alarm", { qualifier: "restore", area: 1, zone: 1 }, "#1234|Nri1/BR01"],
    ["restore of a trouble", { eventCode: "BT", qualifier: "restore", zone: 1 }, "#1234|NBJ01"],
    ["restore of a bypass", { eventCode: "BB", qualifier: "restore", zone: 1 }, "#1234|NBU01"],
    ["restore code given", { eventCode: "BR", qualifier: "restore", zone: 1 }, "#1234|NBR01"],
    ["communications restoral given", { eventCode: "YK", qualifier: "restore", zone: 1 }, "#1234|NYK01"],
    ["previous", { qualifier: "previous", area: 1, zone: 1 }, "#1234|Ori1/BA01"],
    ["4-digit zone", { zone: 1001 }, "#1234|NBA1001"],
  ];
  for (const [name, fields, data] of built) it(`builds ${name}`, () => assert.equal(siaDcsData(sia(fields)), data));

  const refused: [string, Partial<AlarmForDc09>, RegExp][] = [
    ["a one-letter code", { eventCode: "B" }, /SIA event code "B" is not two letters/],
    ["a code with a digit", { eventCode: "BA1" }, /SIA event code "BA1" is not two letters/],
    ["a CID code", { eventCode: "130", eventFormat: "CID" }, /Event 130 is a CID code, not SIA/],
    ["a restore of an opening", { eventCode: "OP", qualifier: "restore" }, /SIA code OP has no restore form/],
    ["a restore of a closing", { eventCode: "CA", qualifier: "restore" }, /SIA code CA has no restore form/],
    ["a short account", { account: "12" }, /Account "12" is not 3 to 16 hex digits/],
    ["a non-hex account", { account: "ACME" }, /Account "ACME"/],
    ["zone 10000", { zone: 10000 }, /Zone 10000 is not a whole number from 0 to 9999/],
    ["a negative area", { area: -1 }, /Area -1 is not a whole number/],
    ["a fractional user", { user: 1.5 }, /User 1.5 is not a whole number/],
  ];
  for (const [name, fields, message] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => siaDcsData(sia(fields)), errorOf(Dc09DataError, message)));
  }
});

describe("admCidData", () => {
  const built: [string, Partial<AlarmForDc09>, string][] = [
    ["new event", { area: 1, zone: 15 }, "#1234|1130 01 015"],
    ["restore", { qualifier: "restore", area: 1, zone: 15 }, "#1234|3130 01 015"],
    ["previous", { qualifier: "previous", area: 1, zone: 15 }, "#1234|6130 01 015"],
    ["no area or zone", {}, "#1234|1130 00 000"],
    ["zone event with only a user", { user: 4 }, "#1234|1130 00 000"],
    ["user event", { eventCode: "401", area: 2, zone: 9, user: 7 }, "#1234|1401 02 007"],
    ["user event, closing", { eventCode: "401", qualifier: "restore", user: 12 }, "#1234|3401 00 012"],
    ["user event without user", { eventCode: "441", zone: 3 }, "#1234|1441 00 003"],
    ["largest fields", { area: 99, zone: 999 }, "#1234|1130 99 999"],
  ];
  for (const [name, fields, data] of built) it(`builds ${name}`, () => assert.equal(admCidData(cid(fields)), data));

  const refused: [string, Partial<AlarmForDc09>, RegExp][] = [
    ["a 2-digit event", { eventCode: "13" }, /Contact ID event code "13" is not 3 digits/],
    ["a qualified event", { eventCode: "1130" }, /Contact ID event code "1130" is not 3 digits/],
    ["a SIA code", { eventCode: "BA", eventFormat: "SIA" }, /Event BA is a SIA code, not CID/],
    ["zone 1000", { zone: 1000 }, /Zone 1000 is not a whole number from 0 to 999/],
    ["partition 100", { area: 100 }, /Partition \(area\) 100 is not a whole number from 0 to 99/],
    ["user 1000", { eventCode: "401", user: 1000 }, /User 1000 is not a whole number from 0 to 999/],
    ["an account with a letter past F", { account: "12G4" }, /Account "12G4" is not 3 to 16 hex digits/],
    ["a 17-digit account", { account: "1".repeat(17) }, /Account "1{17}"/],
  ];
  for (const [name, fields, message] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => admCidData(cid(fields)), errorOf(Dc09DataError, message)));
  }
});

function errorOf(type: new (message: string) => Error, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof type, String(err));
    assert.match(err.message, message);
    return true;
  };
}
