// The byte line to the automation software: one packet out, one byte back (ACK 0x06 / NAK 0x15).
// As a TCP server (the automation connects, like to a System III/5 receiver) or as a TCP client
// (we connect to the automation's listening port). One packet outstanding at a time is the
// caller's rule; this only moves bytes and times the answer.
import { connect, createServer, type Server, type Socket } from "node:net";
import { type AllowList, listenAddress, parseAllowList, plainAddress } from "./allow-list";

export type SurgardRole = "server" | "client";

export interface SurgardLinkOptions {
  role: SurgardRole;
  /** server: address to listen on ("" = see listenAddress); client: the automation's host. */
  host: string;
  port: number;
  /** server: who may take the line (default: loopback only). Anyone else is closed at once, unheard. */
  allow?: AllowList;
  /**
   * server: asked when an allowed newcomer connects while a line is live: does the live line still
   * answer (e.g. ACKs a heartbeat within the ACK timeout)? If so the newcomer is refused; otherwise it
   * takes the line. Without it a live line is never replaced by a newcomer.
   */
  stillAnswering?(): Promise<boolean>;
  /** A new connection arrived (server) or was made (client): a waiting sender may try now. `replaced`: the silent line it took over. */
  onConnected?(remote: string, replaced?: string): void;
  onDisconnected?(remote: string): void;
  /** server: a connection was closed without being given the line, and why ("not-allowed" or "line-held"). */
  onRefused?(remote: string, reason: string, kind: "not-allowed" | "line-held"): void;
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
  /** server: an allowed newcomer waiting while the live line is checked. */
  private candidate: Socket | undefined;
  private readonly allow: AllowList;
  /** server: the address actually listened on (undefined = all interfaces). */
  readonly listenHost: string | undefined;

  constructor(private readonly opts: SurgardLinkOptions) {
    this.allow = opts.allow ?? parseAllowList("");
    this.listenHost = listenAddress(opts.host, this.allow);
  }

  /** Server role: starts listening; resolves once bound (rejects if the port is taken). */
  async listen(): Promise<void> {
    if (this.opts.role !== "server" || this.server) return;
    const server = createServer((socket) => this.arrive(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.listenHost, () => {
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
      ? `${this.listening} (waiting for the automation software to connect)`
      : `${this.opts.host}:${this.opts.port}`;
  }

  /** server: "127.0.0.1 port 1025" or "all interfaces port 1025". */
  get listening(): string {
    return `${this.listenHost ?? "all interfaces"} port ${this.opts.port}`;
  }

  /** server: who may connect, as the user wrote it. */
  get allowed(): string {
    return this.allow.text;
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
    this.candidate?.destroy();
    this.candidate = undefined;
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

  // Server role. Whoever holds the line receives every alarm and can ACK it as delivered: only an
  // allowed address may connect, and a live line that still answers is not handed to a newcomer.
  // A newcomer does get it when the live line is silent: an automation that reconnects after its
  // end of the old connection died (half-open TCP) must not wait for keepalive to notice.
  private arrive(socket: Socket): void {
    const remote = describe(socket);
    socket.on("error", () => undefined);
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (!this.allow.allows(socket.remoteAddress)) {
      socket.destroy();
      this.opts.onRefused?.(
        remote,
        `not an allowed automation address (allowed: ${this.allow.text}); if it is the automation software, add its address to the allowed ones`,
        "not-allowed",
      );
      return;
    }
    if (!this.connected) {
      this.adopt(socket);
      return;
    }
    const live = this.remote ?? "?";
    if (this.candidate || !this.opts.stillAnswering) {
      socket.destroy();
      this.opts.onRefused?.(remote, `the automation software at ${live} holds the line`, "line-held");
      return;
    }
    this.candidate = socket;
    this.opts.stillAnswering().then(
      (answering) => this.decide(socket, remote, live, answering),
      () => this.decide(socket, remote, live, false),
    );
  }

  private decide(socket: Socket, remote: string, live: string, answering: boolean): void {
    if (this.candidate === socket) this.candidate = undefined;
    if (this.closed || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (answering && this.connected) {
      socket.destroy();
      this.opts.onRefused?.(remote, `the automation software at ${live} holds the line and still answers`, "line-held");
      return;
    }
    this.adopt(socket);
  }

  private adopt(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const previous = this.socket !== socket && !this.socket?.destroyed ? this.socket : undefined;
    const replaced = previous ? describe(previous) : undefined;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    if (previous) {
      previous.destroy();
      // Its 'close' no longer concerns the line: end a send still waiting on it here.
      this.failed?.(new SurgardLinkError(`connection to ${replaced} replaced`));
    }
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
    this.opts.onConnected?.(remote, replaced);
  }
}

function describe(socket: Socket): string {
  return `${plainAddress(socket.remoteAddress)}:${socket.remotePort ?? "?"}`;
}
