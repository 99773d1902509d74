// CRC-16/ARC as DC-09 uses it (dc09.md "Frame"): poly 0x8005 reflected (0xA001), init 0, no final xor.
// Some public code calls it CRC-16/CCITT; every real vector uses ARC.

const TABLE = buildTable();

function buildTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
    table[byte] = crc;
  }
  return table;
}

export function crc16Arc(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) crc = (crc >>> 8) ^ TABLE[(crc ^ byte) & 0xff];
  return crc;
}

/** The CRC as it appears in a frame: 4 uppercase hex digits. */
export function crc16ArcHex(data: Uint8Array): string {
  return crc16Arc(data).toString(16).toUpperCase().padStart(4, "0");
}
