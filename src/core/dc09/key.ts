// DC-09 AES keys (dc09.md "Encryption"): 128, 192 or 256 bits, entered in the field either as 32/48/64 hex
// digits or as 16/24/32 ASCII characters used as raw bytes.

export type Dc09KeyForm = "hex" | "ascii";

export interface Dc09Key {
  key: Buffer;
  form: Dc09KeyForm;
  bits: 128 | 192 | 256;
}

export class Dc09KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Dc09KeyError";
  }
}

const HEX_LENGTHS: Record<number, 128 | 192 | 256> = { 32: 128, 48: 192, 64: 256 };
const ASCII_LENGTHS: Record<number, 128 | 192 | 256> = { 16: 128, 24: 192, 32: 256 };
const EXPECTED = "enter 32, 48 or 64 hex digits, or 16, 24 or 32 ASCII characters";

/**
 * Reads a key as a user typed it. Spaces around it are trimmed (an ASCII key cannot start or end with one).
 * Ambiguity rule: 32 characters that are all hex digits are read as a 128-bit hex key, not as a 256-bit
 * ASCII key, because panels and receivers show keys in hex far more often; pass `form: "ascii"` to force the
 * other reading. `form` "hex" or "ascii" accepts only that form.
 */
export function parseDc09Key(text: string, form: "auto" | Dc09KeyForm = "auto"): Dc09Key {
  const trimmed = text.trim();
  if (trimmed === "") throw new Dc09KeyError(`The DC-09 key is empty: ${EXPECTED}`);
  const isHex = /^[0-9a-fA-F]+$/.test(trimmed);
  const hexBits = HEX_LENGTHS[trimmed.length];
  const asciiBits = ASCII_LENGTHS[trimmed.length];

  if (form !== "ascii" && isHex && hexBits) {
    return { key: Buffer.from(trimmed, "hex"), form: "hex", bits: hexBits };
  }
  if (form === "hex") {
    if (!isHex) throw new Dc09KeyError("The DC-09 key is not hex: only 0-9 and A-F are allowed in a hex key");
    throw new Dc09KeyError(`The DC-09 hex key has ${trimmed.length} digits: a hex key has 32, 48 or 64`);
  }
  const nonAscii = [...trimmed].find((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) > 0x7e);
  if (nonAscii !== undefined) {
    const code = nonAscii.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    throw new Dc09KeyError(`The DC-09 key contains U+${code}, which is not a printable ASCII character`);
  }
  if (asciiBits) return { key: Buffer.from(trimmed, "ascii"), form: "ascii", bits: asciiBits };
  if (form === "ascii") {
    throw new Dc09KeyError(`The DC-09 ASCII key has ${trimmed.length} characters: an ASCII key has 16, 24 or 32`);
  }
  if (hexBits) {
    // 48 or 64 characters: meant as hex, but a typo slipped in.
    throw new Dc09KeyError(
      `The DC-09 key has ${trimmed.length} characters but is not all hex digits (0-9, A-F): ${EXPECTED}`,
    );
  }
  throw new Dc09KeyError(`The DC-09 key has ${trimmed.length} characters: ${EXPECTED}`);
}
