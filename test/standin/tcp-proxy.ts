// A TCP relay between a client and a server that a test can cut, like a proxy or NAT box
// dropping connections. It relays bytes (TLS passes through untouched).
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Bytes relayed server → client since start, to cut a connection mid-transfer. */
  readonly bytesToClient: number;
  /** Resets every open connection (as a crashing middlebox would). */
  cutAll(): void;
  /** Calls back once server→client traffic passes `bytes`, then cuts every connection. */
  cutAfter(bytes: number): Promise<void>;
  /**
   * Cuts one process off (its open connections reset, new ones reset at once) while every other
   * client keeps going, like a network fault between one gateway host and the server; null heals.
   * The process is found by the owner of the client's socket (Linux /proc), so the gateway under
   * test changes nothing in how it connects.
   */
  block(pid: number | null): void;
  close(): Promise<void>;
}

/** The process that owns the local end 127.0.0.1:`port` of a TCP connection (Linux), if found. */
export function socketOwner(port: number): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let inode: string | undefined;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] === `0100007F:${hex}`) inode = cols[9];
  }
  if (!inode || inode === "0") return undefined;
  const wanted = `socket:[${inode}]`;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${entry}/fd/${fd}`) === wanted) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

export async function startTcpProxy(targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let bytesToClient = 0;
  let trigger: { at: number; resolve: () => void } | undefined;
  let blocked: number | null = null;
  const owners = new Map<Socket, number | undefined>();
  const cutAll = () => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  const server: Server = createServer((client) => {
    const owner = socketOwner(client.remotePort ?? 0);
    if (blocked !== null && owner === blocked) {
      client.resetAndDestroy();
      return;
    }
    owners.set(client, owner);
    const upstream = connect(targetPort, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      bytesToClient += chunk.length;
      client.write(chunk);
      if (trigger && bytesToClient >= trigger.at) {
        const t = trigger;
        trigger = undefined;
        cutAll();
        t.resolve();
      }
    });
    const end = () => {
      pairs.delete(pair);
      owners.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    get bytesToClient() {
      return bytesToClient;
    },
    cutAll,
    cutAfter(bytes) {
      return new Promise((resolve) => {
        trigger = { at: bytesToClient + bytes, resolve };
      });
    },
    block(pid) {
      blocked = pid;
      if (pid === null) return;
      for (const pair of pairs) {
        if (owners.get(pair[0]) !== pid) continue;
        pair[0].resetAndDestroy();
        pair[1].resetAndDestroy();
        pairs.delete(pair);
      }
    },
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
