// The verification link of an alarm in DC-09's [V...] block (issue #17: the operator sees the picture):
// sent in plain and AES frames alike and read back by our decoder, left out (not cut) when longer than
// the 256 characters receivers read, and left out when it would break the frame's brackets.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AlarmEvent } from "../../src/core/datamap";
import { decodeDc09Frame, encodeDc09 } from "../../src/core/dc09";
import { frameBody, MAX_VERIFICATION_URL } from "../../src/core/delivery/dc09-channel";

const KEY = Buffer.from("0123456789ABCDEF0123456789ABCDEF", "hex");
const OPTS = { format: "SIA" as const, sendText: true, sendTime: true, sendLink: true };

function alarm(link: string): AlarmEvent {
  return {
    account: "4471",
    eventCode: "BA",
    eventFormat: "SIA",
    qualifier: "new",
    siaCode: "BA",
    cidEvent: "130",
    zone: 2,
    area: null,
    user: null,
    text: "Motion Detected On Channel A2",
    occurredAt: "2026-12-06T01:00:00.000Z",
    attachments: [],
    source: { messageId: null, from: "dvr@cams.example.com", subject: "", receivedAt: null },
    extra: {},
    verificationUrl: link,
  } as AlarmEvent;
}

function linkIn(link: string, key?: Buffer): string | undefined {
  const body = frameBody(alarm(link), OPTS);
  const frame = encodeDc09({ ...body, seq: 1, receiver: "1", prefix: "1" }, key ? { key } : {});
  return decodeDc09Frame(frame, key ? { key } : {}).extended?.find((b) => b.kind === "V")?.value;
}

describe("DC-09 [V] verification link", () => {
  const url = "https://media.centre.example:8443/m/0123456789abcdef/tm1x8a/AbCdEfGhIjKlMnOpQrStUv";

  it("travels in plain and in AES frames, beside [I] and [H]", () => {
    assert.equal(linkIn(url), url);
    assert.equal(linkIn(url, KEY), url);
  });

  it("a link of exactly 256 characters goes; one longer is left out, not cut", () => {
    const at = `https://c.example/${"a".repeat(MAX_VERIFICATION_URL - 18)}`;
    assert.equal(at.length, 256);
    assert.equal(linkIn(at), at);
    assert.equal(linkIn(`${at}b`), undefined);
  });

  it("a link with brackets, spaces or other schemes is left out: the alarm itself still goes", () => {
    for (const bad of ["https://x.example/[a]", "https://x.example/a b", "javascript:alert(1)", "ftp://x.example/a"]) {
      assert.equal(linkIn(bad), undefined, bad);
    }
    assert.equal(
      frameBody(alarm(url), { ...OPTS, sendLink: false }).extended?.some((b) => b.kind === "V"),
      false,
    );
  });
});
