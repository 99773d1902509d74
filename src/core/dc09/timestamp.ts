// DC-09 timestamp `_HH:MM:SS,MM-DD-YYYY`, always UTC (dc09.md "Frame"). The same text without the
// underscore is used inside the `[H...]` extended block (time of occurrence).

const TIME_PATTERN = /^(\d{1,2}):(\d{2}):(\d{2}),(\d{1,2})-(\d{1,2})-(\d{4})$/;

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/** `HH:MM:SS,MM-DD-YYYY` in UTC, without the leading underscore (for `[H...]` blocks). */
export function formatDc09Time(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new RangeError("Cannot format an invalid Date as a DC-09 timestamp");
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
  return `${time},${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())}-${date.getUTCFullYear()}`;
}

/** `_HH:MM:SS,MM-DD-YYYY` in UTC, as it ends a frame. */
export function formatDc09Timestamp(date: Date): string {
  return `_${formatDc09Time(date)}`;
}

/**
 * Reads a DC-09 timestamp with or without its leading underscore (surrounding spaces ignored).
 * Returns undefined for anything that is not a real UTC date and time, so callers decide how strict to be.
 */
export function parseDc09Timestamp(text: string): Date | undefined {
  const match = TIME_PATTERN.exec(text.trim().replace(/^_/, ""));
  if (!match) return undefined;
  const [hour, minute, second, month, day, year] = match.slice(1).map(Number);
  if (hour > 23 || minute > 59 || second > 59 || month < 1 || month > 12 || day < 1) return undefined;
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 02-30 over into March: a changed day means the date does not exist.
  if (date.getUTCDate() !== day || date.getUTCMonth() !== month - 1) return undefined;
  return date;
}
