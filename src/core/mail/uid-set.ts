// IMAP sequence sets (RFC 3501 9, "sequence-set") of UIDs, as short as the server reads them.

/** A UID set for a command, with runs written as ranges: "3:7,9" rather than "3,4,5,6,7,9". */
export function uidSet(uids: number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
