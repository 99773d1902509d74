// Reading what public DC-09 receivers answer (dc09.md "Dialects observed in public receiver implementations"),
// and the plainer forms the transmitter falls back to.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  crc16ArcHex,
  decodeDc09Response,
  encodeDc09Response,
  siaDcsData,
  splitDc09Answers,
  swapSiaModifiers,
} from "../../src/core/dc09";

/** A frame as a receiver writes it, CRC and length computed here (so lowercase hex can be chosen). */
function frame(region: string, lower = false): Buffer {
  const head = `${crc16ArcHex(Buffer.from(region, "latin1"))}0${region.length.toString(16).padStart(3, "0")}`;
  return Buffer.from(`\n${lower ? head.toLowerCase() : head.toUpperCase()}${region}\r`, "latin1");
}

describe("DC-09 receiver answers, read leniently", () => {
  it('reads pysiaalarm\'s NAK `"NAK"0000L0R0A0[]_<time>` (L before R) with its time', () => {
    const r = decodeDc09Response(frame('"NAK"0000L0R0A0[]_16:20:01,09-24-2025'));
    assert.equal(r.kind, "NAK");
    assert.equal(r.seq, 0);
    assert.equal(r.prefix, "0");
    assert.equal(r.receiver, "0");
    assert.equal(r.timestamp?.toISOString(), "2025-09-24T16:20:01.000Z");
  });

  it("reads L before R with multi-digit numbers, and keeps reading the standard order", () => {
    const r = decodeDc09Response(frame('"NAK"0000L12R3A0[]_16:20:01,09-24-2025'));
    assert.deepEqual([r.prefix, r.receiver], ["12", "3"]);
    const std = decodeDc09Response(frame('"NAK"0000R3L12A0[]_16:20:01,09-24-2025'));
    assert.deepEqual([std.prefix, std.receiver], ["12", "3"]);
  });

  it("reads a frame with lowercase CRC and length hex", () => {
    assert.equal(decodeDc09Response(frame('"ACK"0001R1L1#1234[]', true)).kind, "ACK");
  });

  it('takes a bare `"NAK"` (no LF, CRC, length or CR) as a refusal with seq 0', () => {
    const { frames, rest } = splitDc09Answers(Buffer.from('"NAK"', "latin1"));
    assert.equal(frames.length, 1);
    assert.equal(rest.length, 0);
    const r = decodeDc09Response(frames[0]!);
    assert.equal(r.kind, "NAK");
    assert.equal(r.seq, 0);
    assert.match(r.raw, /"NAK"$/);
  });

  it('takes a bare `"DUH"` with its sequence, and a NAK whose LF is missing', () => {
    const duh = splitDc09Answers(Buffer.from('"DUH"0007R1L1#1234[]\r', "latin1"));
    assert.equal(decodeDc09Response(duh.frames[0]!).seq, 7);
    const region = '"NAK"0000R0L0A0[]_16:20:01,09-24-2025';
    const noLf = frame(region).subarray(1);
    const split = splitDc09Answers(noLf);
    assert.equal(decodeDc09Response(split.frames[0]!).timestamp?.toISOString(), "2025-09-24T16:20:01.000Z");
  });

  it("reads long unframed noise as nothing, without throwing", () => {
    assert.deepEqual(splitDc09Answers(Buffer.from(`"NAK"${"x".repeat(10_000)}`, "latin1")).frames, []);
  });

  it("never takes an unframed ACK: only refusals are read without framing", () => {
    assert.deepEqual(splitDc09Answers(Buffer.from('"ACK"0001R1L1#1234[]', "latin1")).frames, []);
  });

  it("takes a frame whose CR never came once its length says it is complete, and waits while it is not", () => {
    const whole = encodeDc09Response({ kind: "DUH", seq: 3, receiver: "1", prefix: "1", account: "1234" });
    const noCr = whole.subarray(0, whole.length - 1);
    const { frames } = splitDc09Answers(noCr);
    assert.equal(decodeDc09Response(frames[0]!).kind, "DUH");
    const partial = splitDc09Answers(noCr.subarray(0, noCr.length - 2));
    assert.deepEqual(partial.frames, []);
    assert.equal(partial.rest.length, noCr.length - 2, "kept for the next chunk");
  });

  it("splits two NAKs sent back to back on one socket into two frames", () => {
    const nak = encodeDc09Response({ kind: "NAK", seq: 0, timestamp: new Date("2026-12-05T08:00:00Z") });
    const { frames } = splitDc09Answers(Buffer.concat([nak, nak]));
    assert.equal(frames.length, 2);
    for (const f of frames) assert.equal(decodeDc09Response(f).kind, "NAK");
  });
});

describe("SIA modifier order", () => {
  const opening = { account: "1234", eventCode: "OP", eventFormat: "SIA" as const, area: 1, user: 3 };

  it("writes ri before id by default and id before ri when asked", () => {
    assert.equal(siaDcsData(opening), "#1234|Nri1/id3/OP03");
    assert.equal(siaDcsData(opening, "id-ri"), "#1234|Nid3/ri1/OP03");
  });

  it("swaps the two modifiers of data already built, either way, and leaves other blocks alone", () => {
    assert.equal(swapSiaModifiers("#1234|Nri1/id3/OP03"), "#1234|Nid3/ri1/OP03");
    assert.equal(swapSiaModifiers("#1234|Nid3/ri1/OP03"), "#1234|Nri1/id3/OP03");
    assert.equal(swapSiaModifiers("#1234|Oid12/ri4/CL12"), "#1234|Ori4/id12/CL12");
    assert.equal(swapSiaModifiers("#1234|Nri1/BA01"), undefined, "one modifier: nothing to reorder");
    assert.equal(swapSiaModifiers("#1234|1130 01 015"), undefined, "not SIA data");
  });
});
