// The byte line to the automation software: one packet out, one byte back (ACK 0x06 / NAK 0x15).
// As a TCP server (the automation connects, like to a System III/5 receiver) or as a TCP client
// (we connect to the automation's listening port). One packet outstanding at a time is the
// caller's rule; this only moves bytes and times the answer.
import { connect, createServer, type Server, type Socket } from "node:net";

export type SurgardRole = "server" | "client";

export interface SurgardLinkOptions {
  role: SurgardRole;
  /** server: address to listen on ("" = all); client: the automation's host. */
  host: string;
  port: number;
  /** A new connection arrived (server) or was made (client): a waiting sender may try now. */
  onConnected?(remote: string): void;
  onDisconnected?(remote: string): void;
}

export type SurgardAnswer = "ACK" | "NAK";

/** No answer in time, no connection, or the connection dropped: the caller resends. */
export class SurgardLinkError extends Error {
  override readonly name = "SurgardLinkError";
}

const ACK = 0x06;
const NAK = 0x15;

export class SurgardLink {
  private server: Server | undefined;
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private waiting: ((answer: SurgardAnswer) => void) | undefined;
  private failed: ((err: Error) => void) | undefined;
  private closed = false;

  constructor(private readonly opts: SurgardLinkOptions) {}

  /** Server role: starts listening; resolves once bound (rejects if the port is taken). */
  async listen(): Promise<void> {
    if (this.opts.role !== "server" || this.server) return;
    const server = createServer((socket) => this.adopt(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host || undefined, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", () => undefined);
    this.server = server;
  }

  get connected(): boolean {
    return !!this.socket && !this.socket.destroyed;
  }

  /** host:port of the automation software, when connected. */
  get remote(): string | undefined {
    return this.socket ? describe(this.socket) : undefined;
  }

  get where(): string {
    return this.opts.role === "server"
      ? `port ${this.opts.port} (waiting for the automation software to connect)`
      : `${this.opts.host}:${this.opts.port}`;
  }

  /** Sends one packet and resolves with the automation's one-byte answer. */
  async exchange(packet: Buffer, timeoutMs: number): Promise<SurgardAnswer> {
    const socket = await this.socketFor(timeoutMs);
    return new Promise<SurgardAnswer>((resolve, reject) => {
      const timer = setTimeout(() => finish(new SurgardLinkError(`no ACK within ${timeoutMs} ms`)), timeoutMs);
      const finish = (err: Error | undefined, answer?: SurgardAnswer) => {
        clearTimeout(timer);
        this.waiting = undefined;
        this.failed = undefined;
        if (err) reject(err);
        else resolve(answer as SurgardAnswer);
      };
      this.waiting = (answer) => finish(undefined, answer);
      this.failed = (err) => finish(err);
      socket.write(packet);
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
    this.server?.close();
    this.server = undefined;
    this.failed?.(new SurgardLinkError("line closed"));
  }

  private async socketFor(timeoutMs: number): Promise<Socket> {
    if (this.closed) throw new SurgardLinkError("line closed");
    if (this.socket && !this.socket.destroyed) return this.socket;
    if (this.opts.role === "server") throw new SurgardLinkError("no automation software connected");
    this.connecting ??= this.dial(timeoutMs).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private dial(timeoutMs: number): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.opts.host, port: this.opts.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SurgardLinkError(`connect to ${this.where} timed out`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        this.adopt(socket);
        resolve(socket);
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(new SurgardLinkError(`connect to ${this.where}: ${err.message}`));
      });
    });
  }

  // The newest connection wins: an automation that reconnects must not be answered on a dead line.
  private adopt(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const previous = this.socket;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    if (previous && previous !== socket) previous.destroy();
    const remote = describe(socket);
    socket.on("data", (chunk: Buffer) => {
      if (this.socket !== socket) return;
      // Anything but ACK/NAK (a stray CR, a banner) is not an answer.
      for (const byte of chunk) {
        if (byte === ACK) this.waiting?.("ACK");
        else if (byte === NAK) this.waiting?.("NAK");
      }
    });
    socket.on("error", () => undefined); // 'close' follows
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.failed?.(new SurgardLinkError(`connection to ${remote} lost`));
      this.opts.onDisconnected?.(remote);
    });
    this.opts.onConnected?.(remote);
  }
}

function describe(socket: Socket): string {
  return `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
}
