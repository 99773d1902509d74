// Figures "over the last hour" for the live panel: counts in one-minute buckets, and latency samples
// kept with their time. Cheap to update on every email (an array write), read only when someone looks.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Events counted per minute; total() is the last 60 minutes (the current minute included). */
export class HourCounter {
  private readonly counts = new Float64Array(60);
  private readonly minutes = new Float64Array(60).fill(-1);

  add(now: number, n = 1): void {
    const minute = Math.floor(now / MINUTE);
    const slot = minute % 60;
    if (this.minutes[slot] !== minute) {
      this.minutes[slot] = minute;
      this.counts[slot] = 0;
    }
    this.counts[slot] = (this.counts[slot] ?? 0) + n;
  }

  total(now: number): number {
    const newest = Math.floor(now / MINUTE);
    let sum = 0;
    for (let i = 0; i < 60; i++) {
      const m = this.minutes[i] ?? -1;
      if (m > newest - 60 && m <= newest) sum += this.counts[i] ?? 0;
    }
    return sum;
  }
}

/** Latency samples of the last hour (at most `cap`, the oldest dropped first), for p50 and p99. */
export class HourSamples {
  private readonly at: number[] = [];
  private readonly values: number[] = [];

  constructor(private readonly cap = 20_000) {}

  add(now: number, value: number): void {
    this.at.push(now);
    this.values.push(value);
    if (this.at.length > this.cap) {
      this.at.shift();
      this.values.shift();
    }
  }

  /** p50 and p99 of the last hour (nearest rank); null when there was nothing. */
  percentiles(now: number): { p50: number; p99: number; count: number } | null {
    let first = 0;
    while (first < this.at.length && (this.at[first] ?? 0) <= now - HOUR) first++;
    if (first > 0) {
      this.at.splice(0, first);
      this.values.splice(0, first);
    }
    if (this.values.length === 0) return null;
    const sorted = [...this.values].sort((a, b) => a - b);
    const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
    return { p50: rank(50), p99: rank(99), count: sorted.length };
  }
}
