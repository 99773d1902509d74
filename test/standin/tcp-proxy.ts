// A TCP relay between a client and a server that a test can cut, like a proxy or NAT box
// dropping connections. It relays bytes (TLS passes through untouched).
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Bytes relayed server → client since start, to cut a connection mid-transfer. */
  readonly bytesToClient: number;
  /** Resets every open connection (as a crashing middlebox would). */
  cutAll(): void;
  /** Calls back once server→client traffic passes `bytes`, then cuts every connection. */
  cutAfter(bytes: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let bytesToClient = 0;
  let trigger: { at: number; resolve: () => void } | undefined;
  const cutAll = () => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  const server: Server = createServer((client) => {
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
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
