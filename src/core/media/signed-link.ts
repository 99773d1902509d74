// Links to an alarm's stored picture or clip: `/m/<id>/<expiry>/<signature>`, where the id is random
// (never the file name), the expiry is in seconds since the epoch (base 36), and the signature is an
// HMAC-SHA256 over both with the centre's key, cut to 128 bits (base64url, 22 characters). Short on
// purpose: a DC-09 `[V...]` block carries it, and receivers read at most 256 characters there.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const MEDIA_ID = /^[0-9a-f]{16}$/;
const EXPIRY = /^[0-9a-z]{1,10}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{22}$/;
/** The whole path of a link; anything else is not one of ours. */
const LINK_PATH = /^\/m\/([0-9a-f]{16})\/([0-9a-z]{1,10})\/([A-Za-z0-9_-]{22})$/;

/** A new random media id: 64 bits, unguessable and short. */
export function newMediaId(): string {
  return randomBytes(8).toString("hex");
}

/** A new signing key (32 random bytes, base64), for the credentials of a new store. */
export function newSigningKey(): string {
  return randomBytes(32).toString("base64");
}

function signature(key: Buffer, id: string, expiry: string): Buffer {
  return createHmac("sha256", key).update(`${id}.${expiry}`).digest().subarray(0, 16);
}

/** The path of a link to `id` valid until `expiresAtMs`. */
export function signedPath(key: Buffer, id: string, expiresAtMs: number): string {
  if (!MEDIA_ID.test(id)) throw new Error(`media id "${id}" is not 16 hex digits`);
  const expiry = Math.ceil(expiresAtMs / 1000).toString(36);
  return `/m/${id}/${expiry}/${signature(key, id, expiry).toString("base64url")}`;
}

export type LinkCheck = { ok: true; id: string; expiresAtMs: number } | { ok: false; status: 403 | 404; why: string };

/**
 * Checks a request path: 404 when it is not a link's shape at all (no listing, nothing else is
 * served), 403 when the signature does not match the id and expiry or the link has expired.
 */
export function checkSignedPath(key: Buffer, path: string, nowMs: number): LinkCheck {
  const m = LINK_PATH.exec(path);
  if (!m) return { ok: false, status: 404, why: "not a media link" };
  const [, id, expiry, sig] = m as unknown as [string, string, string, string];
  if (!MEDIA_ID.test(id) || !EXPIRY.test(expiry) || !SIGNATURE.test(sig)) {
    return { ok: false, status: 404, why: "not a media link" };
  }
  // Compared as text: base64url's last character carries 2 unused bits, so a decoded comparison
  // would let 4 spellings of one signature through.
  const given = Buffer.from(sig, "latin1");
  const wanted = Buffer.from(signature(key, id, expiry).toString("base64url"), "latin1");
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
    return { ok: false, status: 403, why: "signature does not match" };
  }
  const expiresAtMs = Number.parseInt(expiry, 36) * 1000;
  if (!(expiresAtMs > nowMs)) return { ok: false, status: 403, why: "link expired" };
  return { ok: true, id, expiresAtMs };
}

/** The key as stored in credentials (base64 of at least 16 bytes) -> bytes; throws with the reason. */
export function signingKeyBytes(text: string): Buffer {
  const key = Buffer.from(text.trim(), "base64");
  if (key.length < 16) throw new Error("the media signing key must be base64 of at least 16 bytes");
  return key;
}
