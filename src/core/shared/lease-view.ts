// What the Leases folder says, read against the server's own clock: which gateways are live,
// which must be released, and whether another process runs under this gateway's id. Pure: the
// shared watcher feeds it the leases, the claim folders and the server time of its own renewal.
import type { LeaseRecord } from "./transport";

export interface LeaseInput {
  leases: readonly LeaseRecord[];
  /** Instances that have a claim folder. */
  folders: readonly string[];
  /** Server time stamp of this gateway's renewal just made. */
  serverNow: number;
  me: string;
  nonce: string;
  /** Server time stamp of this process's first renewal under `me`. */
  myFirstRenewal: number;
  leaseMs: number;
  /** Claim folders seen without any lease, and the server time they were first seen so. */
  unleasedSince: ReadonlyMap<string, number>;
}

export interface LeaseView {
  /** Live instances, this one included, sorted. */
  live: string[];
  /** Instances to release now: expired leases, and claim folders without a lease for longer than leaseMs. */
  release: string[];
  /** unleasedSince for the next view. */
  unleasedSince: Map<string, number>;
  /** A lease of another process under this id, renewed after this process began: a copied identity. */
  clash: LeaseRecord | undefined;
  /** Server time until the first live peer expires unless renewed (ms); undefined with no peer. */
  nextExpiryInMs: number | undefined;
}

export function viewLeases(input: LeaseInput): LeaseView {
  const { serverNow, me, leaseMs } = input;
  const newest = new Map<string, number>();
  let clash: LeaseRecord | undefined;
  for (const lease of input.leases) {
    if (lease.instance === me) {
      // Another nonce renewed before this process first did is this process's predecessor (a
      // restart); renewed since, it is a second process running under the same id right now.
      if (lease.nonce !== input.nonce && lease.renewedAt > input.myFirstRenewal) {
        if (!clash || lease.renewedAt > clash.renewedAt) clash = lease;
      }
      continue;
    }
    newest.set(lease.instance, Math.max(newest.get(lease.instance) ?? Number.NEGATIVE_INFINITY, lease.renewedAt));
  }
  const live = [me];
  const release: string[] = [];
  let nextExpiryInMs: number | undefined;
  for (const [instance, renewedAt] of newest) {
    const age = serverNow - renewedAt;
    if (age <= leaseMs) {
      live.push(instance);
      const left = leaseMs - age;
      nextExpiryInMs = nextExpiryInMs === undefined ? left : Math.min(nextExpiryInMs, left);
    } else release.push(instance);
  }
  // A claim folder whose lease is gone (deleted by hand, or its gateway died before its first
  // renewal) is released once it has been without one for a whole lease, by the server's clock.
  const unleasedSince = new Map<string, number>();
  for (const folder of input.folders) {
    if (folder === me || newest.has(folder)) continue;
    const since = input.unleasedSince.get(folder) ?? serverNow;
    unleasedSince.set(folder, since);
    if (serverNow - since > leaseMs) release.push(folder);
  }
  live.sort();
  return { live, release: [...new Set(release)].sort(), unleasedSince, clash, nextExpiryInMs };
}

export function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
