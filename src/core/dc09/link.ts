// One receiver, one outstanding frame: send it over TCP (kept open) or UDP and wait for the
// answer that echoes its sequence number. Whatever else arrives is ignored.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, isIPv6, type Socket } from "node:net";
import { Dc09DecodeError, type Dc09Response, decodeDc09Response, splitDc09Answers } from "./frame";

export interface ReceiverAddress {
  host: string;
  port: number;
}

export type LinkTransport = "tcp" | "udp";

/**
 * No valid answer in time, or the connection failed: the caller retries. `unreadable` holds what the receiver
 * did answer when none of it could be read (bad CRC, wrong key, unknown form): an answer, not silence.
 */
export class Dc09LinkError extends Error {
  override readonly name = "Dc09LinkError";
  constructor(
    message: string,
    readonly unreadable?: string,
  ) {
    super(message);
  }
}

export class Dc09Link {
  private tcp: Socket | undefined;
  private udp: UdpSocket | undefined;
  /** False while the last datagram sent has had no datagram back. */
  private udpHeard = true;
  private rest: Buffer = Buffer.alloc(0);
  private waiting: ((frame: Buffer) => void) | undefined;
  private failed: ((err: Error) => void) | undefined;

  constructor(
    readonly address: ReceiverAddress,
    private readonly transport: LinkTransport,
    private readonly key?: Buffer,
  ) {}

  /** Sends a frame and resolves with the response whose seq matches (a NAK carries seq 0). */
  async exchange(frame: Buffer, seq: number, timeoutMs: number): Promise<Dc09Response> {
    const send = this.transport === "tcp" ? await this.tcpSocket(timeoutMs) : await this.udpSocket(timeoutMs);
    let unreadable: string | undefined;
    return new Promise<Dc09Response>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          finish(
            unreadable === undefined
              ? new Dc09LinkError(`no answer within ${timeoutMs} ms`)
              : new Dc09LinkError(`no readable answer within ${timeoutMs} ms (${unreadable})`, unreadable),
          ),
        timeoutMs,
      );
      const finish = (err: Error | undefined, response?: Dc09Response) => {
        clearTimeout(timer);
        this.waiting = undefined;
        this.failed = undefined;
        if (err) reject(err);
        else if (response) resolve(response);
      };
      this.failed = (err) => finish(err);
      this.waiting = (bytes) => {
        let response: Dc09Response;
        try {
          response = decodeDc09Response(bytes, { key: this.key });
        } catch (err) {
          // A garbled answer (bad CRC, wrong key) is not taken: keep waiting, a readable one may follow.
          if (!(err instanceof Dc09DecodeError)) throw err;
          unreadable = `${err.message}: ${JSON.stringify(bytes.toString("latin1").slice(0, 80))}`;
          return;
        }
        // A NAK carries seq 0; so does a refusal written without a sequence (a bare "DUH").
        if (response.kind === "NAK" || response.seq === seq || (response.kind === "DUH" && response.seq === 0)) {
          // Some receivers send a NAK twice and close: a later frame on this socket must not answer the resend.
          if (response.kind === "NAK") this.tcp?.destroy();
          finish(undefined, response);
        }
      };
      send(frame);
    });
  }

  close(): void {
    this.tcp?.destroy();
    this.tcp = undefined;
    this.udp?.close();
    this.udp = undefined;
    this.failed?.(new Dc09LinkError("link closed"));
  }

  private async tcpSocket(timeoutMs: number): Promise<(frame: Buffer) => void> {
    if (!this.tcp || this.tcp.destroyed) {
      this.rest = Buffer.alloc(0);
      const socket = connect({ host: this.address.host, port: this.address.port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Dc09LinkError(`connect to ${this.where} timed out`));
        }, timeoutMs);
        socket.once("connect", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once("error", (err) => {
          clearTimeout(timer);
          reject(new Dc09LinkError(`connect to ${this.where}: ${err.message}`));
        });
      });
      socket.on("data", (chunk: Buffer) => {
        const { frames, rest } = splitDc09Answers(Buffer.concat([this.rest, chunk]));
        this.rest = rest;
        for (const f of frames) this.waiting?.(f);
      });
      socket.on("error", () => undefined); // 'close' follows
      // A receiver that ends the connection after each answer (ioBroker.sia, src/lib/sia.ts: sock.end(ack)):
      // the next frame goes on a new one instead of into a closing socket.
      socket.on("end", () => {
        if (this.tcp === socket) this.tcp = undefined;
      });
      socket.on("close", () => {
        if (this.tcp === socket) this.tcp = undefined;
        this.failed?.(new Dc09LinkError(`connection to ${this.where} lost`));
      });
      this.tcp = socket;
    }
    const socket = this.tcp;
    return (frame) => socket.write(frame);
  }

  // A connected UDP socket (connect(2)): the kernel passes up only datagrams from the receiver's
  // address and port, so no other host can ACK a frame (an ACK makes the alarm count as delivered);
  // a closed port comes back as ECONNREFUSED instead of a wait. After a send that got nothing back
  // the socket is made again, so a receiver whose name now resolves elsewhere is found.
  private async udpSocket(timeoutMs: number): Promise<(frame: Buffer) => void> {
    if (this.udp && !this.udpHeard) {
      closeQuietly(this.udp);
      this.udp = undefined;
    }
    if (!this.udp) {
      const socket = createSocket(isIPv6(this.address.host) ? "udp6" : "udp4");
      socket.on("error", (err) => {
        // Sends on a fresh socket from now on; this one may be in any state.
        if (this.udp === socket) {
          this.udp = undefined;
          closeQuietly(socket);
        }
        this.failed?.(new Dc09LinkError(`UDP ${this.where}: ${err.message}`));
      });
      this.udp = socket;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Dc09LinkError(`UDP ${this.where}: name lookup timed out`)),
          timeoutMs,
        );
        socket.connect(this.address.port, this.address.host, (err?: Error) => {
          clearTimeout(timer);
          if (err) reject(new Dc09LinkError(`UDP ${this.where}: ${err.message}`));
          else resolve();
        });
      }).catch((err: unknown) => {
        if (this.udp === socket) this.udp = undefined;
        closeQuietly(socket);
        throw err;
      });
      const peer = socket.remoteAddress();
      socket.on("message", (msg, rinfo) => {
        // The kernel filters already; this keeps the rule visible and holds on any platform.
        if (rinfo.address !== peer.address || rinfo.port !== peer.port) return;
        this.udpHeard = true;
        const { frames } = splitDc09Answers(msg);
        for (const f of frames.length > 0 ? frames : [msg]) this.waiting?.(f);
      });
      this.udpHeard = true;
    }
    const socket = this.udp;
    return (frame) => {
      this.udpHeard = false;
      socket.send(frame, (err) => {
        if (err) this.failed?.(new Dc09LinkError(`UDP ${this.where}: ${err.message}`));
      });
    };
  }

  private get where(): string {
    return `${this.address.host}:${this.address.port}`;
  }
}

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}
