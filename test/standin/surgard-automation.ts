// The automation software (Manitou, MASterMind, Patriot...) on a real TCP socket, for tests: it reads Sur-Gard
// packets and answers each with one byte, ACK or NAK, or stays silent, or hangs up. It listens (the gateway in
// "client" role connects to it) or connects to the gateway's port (gateway in "server" role), as real ones do.
import { EventEmitter } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import {
  ACK,
  type DecodedSurgardPacket,
  decodeSurgardPacket,
  NAK,
  type SurgardLineDigits,
  splitSurgardPackets,
} from "../../src/core/surgard";

/** "disconnect": close the socket on receipt of a packet without answering. */
export type AutomationBehaviour = "ack" | "nak" | "silent" | "disconnect";

export interface ReceivedPacket {
  at: number;
  packet: DecodedSurgardPacket;
  /** The packet as received, DC4 included. */
  bytes: Buffer;
}

/** A packet the automation could not read: it was answered with NAK, as a garbled line is. */
export interface RejectedPacket {
  at: number;
  bytes: Buffer;
  error: string;
}

export interface SurgardAutomation {
  /** Every packet decoded, in order, heartbeats too. */
  received: ReceivedPacket[];
  /** Packets answered with ACK. */
  acked: ReceivedPacket[];
  rejected: RejectedPacket[];
  /** Settable at any time; a function decides per packet. Default "ack". */
  behaviour: AutomationBehaviour | ((p: DecodedSurgardPacket) => AutomationBehaviour);
  /** TCP connections made so far. */
  connections: number;
  readonly connected: boolean;
  /** Resolves once predicate(received) holds (checked after each packet and connection change); rejects after timeoutMs (5 s). */
  waitFor(predicate: (r: ReceivedPacket[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Destroys the current connection(s); the client variant reconnects 200 ms later. */
  dropConnection(): void;
  close(): Promise<void>;
}

export interface AutomationOptions {
  lineDigits: SurgardLineDigits;
  behaviour?: AutomationBehaviour | ((p: DecodedSurgardPacket) => AutomationBehaviour);
}

const RECONNECT_MS = 200;

interface Peer {
  automation: SurgardAutomation;
  sockets: Set<Socket>;
  /** Reads packets from a connected socket and answers them. */
  attach(socket: Socket): void;
}

function makePeer(opts: AutomationOptions, close: () => Promise<void>, drop: () => void): Peer {
  const changes = new EventEmitter();
  const sockets = new Set<Socket>();
  const changed = () => changes.emit("change");

  const automation: SurgardAutomation = {
    received: [],
    acked: [],
    rejected: [],
    behaviour: opts.behaviour ?? "ack",
    connections: 0,
    get connected() {
      return sockets.size > 0;
    },
    waitFor(predicate, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const done = (err?: Error) => {
          clearTimeout(timer);
          changes.off("change", check);
          if (err) reject(err);
          else resolve();
        };
        const check = () => {
          try {
            if (predicate(automation.received)) done();
          } catch (err) {
            done(err as Error);
          }
        };
        const timer = setTimeout(() => {
          const seen = automation.received.map((r) => r.packet.raw.trim()).join(", ") || "nothing";
          done(new Error(`Sur-Gard automation: condition not met within ${timeoutMs} ms (received: ${seen})`));
        }, timeoutMs);
        changes.on("change", check);
        check();
      });
    },
    dropConnection: drop,
    close,
  };

  // Returns false when the socket is gone and the rest of the chunk must not be read.
  const handle = (socket: Socket, bytes: Buffer): boolean => {
    const at = Date.now();
    let packet: DecodedSurgardPacket;
    try {
      packet = decodeSurgardPacket(bytes, opts.lineDigits);
    } catch (err) {
      automation.rejected.push({ at, bytes: Buffer.from(bytes), error: (err as Error).message });
      socket.write(Buffer.of(NAK));
      changed();
      return true;
    }
    const received: ReceivedPacket = { at, packet, bytes: Buffer.from(bytes) };
    automation.received.push(received);
    const b = automation.behaviour;
    const behaviour = typeof b === "function" ? b(packet) : b;
    let open = true;
    switch (behaviour) {
      case "ack":
        socket.write(Buffer.of(ACK));
        automation.acked.push(received);
        break;
      case "nak":
        socket.write(Buffer.of(NAK));
        break;
      case "disconnect":
        socket.destroy();
        open = false;
        break;
      default:
        break;
    }
    changed();
    return open;
  };

  const attach = (socket: Socket) => {
    sockets.add(socket);
    automation.connections++;
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      const { packets, rest } = splitSurgardPackets(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const packet of packets) {
        if (socket.destroyed || !handle(socket, packet)) break;
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      sockets.delete(socket);
      changed();
    });
    changed();
  };

  return { automation, sockets, attach };
}

/** Listens on 127.0.0.1 (the gateway connects to it: gateway in "client" role). */
export async function startAutomationServer(
  opts: AutomationOptions & { port?: number },
): Promise<SurgardAutomation & { port: number }> {
  const server = createServer((socket) => peer.attach(socket));
  const peer = makePeer(
    opts,
    async () => {
      for (const socket of peer.sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    () => {
      for (const socket of peer.sockets) socket.destroy();
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Assign, not spread: a spread would copy `connected` once instead of keeping the getter.
  return Object.assign(peer.automation, { port: (server.address() as { port: number }).port });
}

/**
 * Connects to the gateway's listening port (gateway in "server" role) and reconnects every 200 ms when the
 * connection drops or is refused, until closed. Resolves at once: wait for `connected` with waitFor.
 */
export async function startAutomationClient(
  opts: AutomationOptions & {
    host?: string;
    port: number;
    /** Address to connect from: e.g. 127.0.0.2, another host as far as the gateway can tell. */
    localAddress?: string;
  },
): Promise<SurgardAutomation> {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Socket | undefined;

  const dial = () => {
    timer = undefined;
    if (closed) return;
    const socket = connect({ port: opts.port, host: opts.host ?? "127.0.0.1", localAddress: opts.localAddress });
    current = socket;
    socket.once("connect", () => peer.attach(socket));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      if (current === socket) current = undefined;
      if (!closed && timer === undefined) timer = setTimeout(dial, RECONNECT_MS);
    });
  };

  const peer = makePeer(
    opts,
    async () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      const socket = current;
      if (socket && !socket.destroyed) {
        const gone = new Promise((resolve) => socket.once("close", resolve));
        socket.destroy();
        await gone;
      }
    },
    () => current?.destroy(),
  );
  dial();
  return peer.automation;
}
