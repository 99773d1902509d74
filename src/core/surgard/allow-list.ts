// Who may take the Sur-Gard line when the gateway plays the receiver (server role): the automation
// software's addresses, as IPs or CIDRs. Anyone who holds the line receives every alarm and, by
// answering ACK, makes them count as delivered, so an empty list means this machine only.
import { BlockList, isIP } from "node:net";

export class AllowListError extends Error {
  override readonly name = "AllowListError";
}

export interface AllowList {
  /** True when a connection from this address may carry the line. */
  allows(address: string | undefined): boolean;
  /** What the list holds, for logs and refusals: "this machine only (loopback)" or the entries. */
  readonly text: string;
  /** No entry was given: only loopback connections are accepted. */
  readonly loopbackOnly: boolean;
}

const LOOPBACK = "this machine only (loopback)";

/** Parses "10.0.0.5, 192.168.1.0/24 fd00::/8" (commas or spaces); throws AllowListError naming a bad entry. */
export function parseAllowList(text: string | undefined): AllowList {
  const entries = String(text ?? "")
    .split(/[\s,;]+/)
    .filter(Boolean);
  const list = new BlockList();
  if (entries.length === 0) {
    list.addSubnet("127.0.0.0", 8, "ipv4");
    list.addAddress("::1", "ipv6");
  }
  for (const entry of entries) {
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    if (family === 0 || extra !== undefined)
      throw new AllowListError(
        `"${entry}" is not an IP address or CIDR (like 10.0.0.5 or 10.0.0.0/24; host names are not accepted)`,
      );
    const type = family === 4 ? "ipv4" : "ipv6";
    if (bits === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128))
      throw new AllowListError(`"${entry}": the prefix length must be 0-${family === 4 ? 32 : 128}`);
    list.addSubnet(address, prefix, type);
  }
  return {
    // BlockList matches an IPv4-mapped IPv6 address (::ffff:10.0.0.5, as a dual-stack server sees
    // an IPv4 client) against IPv4 rules too.
    allows: (address) => {
      const family = address ? isIP(address) : 0;
      return family !== 0 && list.check(address as string, family === 4 ? "ipv4" : "ipv6");
    },
    text: entries.length === 0 ? LOOPBACK : entries.join(", "),
    loopbackOnly: entries.length === 0,
  };
}

/**
 * The address the server role listens on: the one configured, else loopback while only loopback is
 * allowed (nothing else could take the line anyway), else all interfaces (undefined).
 */
export function listenAddress(configured: string | undefined, allow: AllowList): string | undefined {
  const host = configured?.trim();
  if (host) return host;
  return allow.loopbackOnly ? "127.0.0.1" : undefined;
}

/** An address as people write it: the IPv4 client of a dual-stack server without its ::ffff: prefix. */
export function plainAddress(address: string | undefined): string {
  if (!address) return "?";
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}
