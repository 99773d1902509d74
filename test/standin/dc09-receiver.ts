// A real DC-09 receiver (the central-station side) for tests and benches: TCP and UDP on one host, with
// scriptable answers (ACK, NAK on clock skew, DUH, silence, corrupt CRC, connection reset or close), and the
// dialects of public receivers (dc09.md "Dialects observed in public receiver implementations").
import { createSocket, type RemoteInfo } from "node:dgram";
import { EventEmitter } from "node:events";
import { createServer, type Socket } from "node:net";
import {
  crc16ArcHex,
  type Dc09ResponseKind,
  type DecodedDc09Frame,
  decodeDc09Frame,
  encodeDc09Response,
  formatDc09Timestamp,
  splitDc09Frames,
} from "../../src/core/dc09";

export type ReceiverBehaviour = "ack" | "nak" | "duh" | "silent" | "bad-crc" | "reset" | "close-after-frame";

export interface ReceivedEvent {
  at: number;
  frame: DecodedDc09Frame;
  transport: "tcp" | "udp";
  remote: string;
}

/** A frame the receiver could not decode (bad CRC, wrong length, unknown key...): it got no answer. */
export interface RejectedFrame {
  at: number;
  bytes: Buffer;
  error: string;
  transport: "tcp" | "udp";
  remote: string;
}

/** What the receiver did with one decoded frame. */
export interface ReceiverAnswer {
  at: number;
  event: ReceivedEvent;
  behaviour: ReceiverBehaviour;
  /** The response sent, if any ("bad-crc" sends an ACK with a corrupted CRC: reported as ACK; "reset" none). */
  sent?: Dc09ResponseKind;
}

export interface Dc09Receiver {
  tcpPort: number;
  udpPort: number;
  /** Every decodable frame received (NULL too), in order. */
  received: ReceivedEvent[];
  /** Frames answered with a valid ACK. */
  acked: ReceivedEvent[];
  rejected: RejectedFrame[];
  answers: ReceiverAnswer[];
  /** Settable at any time; a function decides per frame. */
  behaviour: ReceiverBehaviour | ((f: DecodedDc09Frame) => ReceiverBehaviour);
  /**
   * Receiver clock minus real clock, in ms. A NAK carries the receiver's time; with "nak" behaviour frames whose
   * timestamp is outside -40 s/+20 s of the receiver clock get a NAK, the others (and untimed ones) an ACK.
   */
  clockOffsetMs: number;
  /** Resolves once predicate(received) holds (checked after each answer); rejects after timeoutMs (5 s). */
  waitFor(predicate: (r: ReceivedEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * How a receiver deviates from the plain standard. Each knob is one observed behaviour; `dialect` presets:
 * - "pysiaalarm" (eavanvalkenburg/pysiaalarm, Home Assistant's SIA integration): NAK written
 *   `"NAK"0000L0R0A0[]_<time>` (event.py NAKEvent.create_response); reads SIA modifiers only as `id` before `ri`
 *   (utils/regexes.py sia_content_regex: ti, id, ri in that order, so `ri1/id3/OP03` reads "id" as the code:
 *   DUH, base_server.py "Code not found, replying with DUH"); ADM-CID content takes at most one extended block
 *   (adm_content_regex), two are a format error: NAK; a key is used as its UTF-8 bytes (account.py key_b).
 * - "iobroker" (schmupu/ioBroker.sia, src/lib/sia.ts): ends the TCP connection after every answer
 *   (`sock.end(ack)`); NULL is refused with NAK because its message regex needs a character before `]`
 *   (parseSIA "Required SIA fields missing"); NAK written `"NAK"0000R0L0A0[]<ts>` (createNACK).
 */
export interface Dc09Dialect {
  /** How a NAK is written: "R-first" (standard), "L-first" (pysiaalarm), "bare" (`"NAK"` without LF/CRC/CR). */
  nakForm?: "R-first" | "L-first" | "bare";
  /** Write every NAK twice, then close the TCP connection (a third form seen in the wild). */
  doubleNak?: boolean;
  /** DUH for SIA data with `ri` before `id`. */
  idBeforeRiOnly?: boolean;
  /** NAK for ADM-CID frames with more extended blocks than this. */
  maxAdmCidExtended?: number;
  /** NAK every NULL frame. */
  nakNull?: boolean;
  /** End the TCP connection after every answer. */
  endAfterAnswer?: boolean;
  /** Known accounts; a frame for another one gets a NAK (in nakForm). Default: all accounts are known. */
  accounts?: readonly string[];
}

export const DC09_DIALECTS: Record<"pysiaalarm" | "iobroker", Dc09Dialect> = {
  pysiaalarm: { nakForm: "L-first", idBeforeRiOnly: true, maxAdmCidExtended: 1 },
  iobroker: { nakForm: "R-first", nakNull: true, endAfterAnswer: true },
};

export interface Dc09ReceiverOptions {
  dialect?: Dc09Dialect;
  key?: Buffer;
  tcpPort?: number;
  udpPort?: number;
  host?: string;
  behaviour?: ReceiverBehaviour | ((f: DecodedDc09Frame) => ReceiverBehaviour);
  /** Receiver number (hex) for NAKs and for ACKs to frames without R; default "0". */
  receiver?: string;
  /** Line prefix (hex) for NAKs; default "0". */
  prefix?: string;
}

// Acceptance window of real receivers around their own clock (dc09.md "Responses and timing").
const EARLIEST_MS = -40_000;
const LATEST_MS = 20_000;

type Reply = (bytes: Buffer, after?: "reset" | "end") => void;

export async function startDc09Receiver(opts: Dc09ReceiverOptions = {}): Promise<Dc09Receiver> {
  const host = opts.host ?? "127.0.0.1";
  const changes = new EventEmitter();
  const sockets = new Set<Socket>();

  type Answer = { kind: Dc09ResponseKind; bytes: Buffer; end?: boolean };
  const dialect = opts.dialect ?? {};

  const nakBytes = (now: Date): Buffer => {
    if (dialect.nakForm === "bare") return Buffer.from('"NAK"', "latin1");
    if (dialect.nakForm !== "L-first") {
      return encodeDc09Response({ kind: "NAK", seq: 0, receiver: opts.receiver, prefix: opts.prefix, timestamp: now });
    }
    const region = Buffer.from(`"NAK"0000L0R0A0[]${formatDc09Timestamp(now)}`, "latin1");
    const head = `${crc16ArcHex(region)}0${region.length.toString(16).toUpperCase().padStart(3, "0")}`;
    return Buffer.concat([Buffer.of(0x0a), Buffer.from(head, "latin1"), region, Buffer.of(0x0d)]);
  };

  /** The dialect's own answer to a frame a standard receiver would take, if it differs. */
  const dialectAnswer = (f: DecodedDc09Frame, now: Date): Answer | undefined => {
    const nak = (): Answer => {
      const once = nakBytes(now);
      return dialect.doubleNak
        ? { kind: "NAK", bytes: Buffer.concat([once, once]), end: true }
        : { kind: "NAK", bytes: once };
    };
    if (dialect.accounts && !dialect.accounts.includes(f.account)) return nak();
    if (f.id === "NULL" && dialect.nakNull) return nak();
    if (f.id === "ADM-CID" && (f.extended?.length ?? 0) > (dialect.maxAdmCidExtended ?? Number.POSITIVE_INFINITY))
      return nak();
    if (f.id === "SIA-DCS" && dialect.idBeforeRiOnly && /\|[NO]ri\d+\/id\d+\//.test(f.data ?? "")) {
      const address = {
        seq: f.seq,
        receiver: f.receiver ?? opts.receiver ?? "0",
        prefix: f.prefix,
        account: f.account,
      };
      return { kind: "DUH", bytes: encodeDc09Response({ kind: "DUH", ...address }) };
    }
    return undefined;
  };

  const answerFor = (f: DecodedDc09Frame, behaviour: ReceiverBehaviour, now: Date): Answer | undefined => {
    const address = { seq: f.seq, receiver: f.receiver ?? opts.receiver ?? "0", prefix: f.prefix, account: f.account };
    // An encrypted frame gets "*ACK" with the same key (and the timestamp encryption requires).
    const ack = (): Answer => ({
      kind: "ACK",
      bytes: encodeDc09Response(
        { kind: "ACK", ...address, timestamp: f.encrypted ? now : undefined },
        { key: f.encrypted ? opts.key : undefined },
      ),
    });
    switch (behaviour) {
      case "silent":
        return undefined;
      case "duh":
        return { kind: "DUH", bytes: encodeDc09Response({ kind: "DUH", ...address }) };
      case "nak": {
        const skew = f.timestamp ? f.timestamp.getTime() - now.getTime() : 0;
        if (skew >= EARLIEST_MS && skew <= LATEST_MS) return dialectAnswer(f, now) ?? ack();
        return { kind: "NAK", bytes: nakBytes(now) };
      }
      case "bad-crc": {
        const answer = ack();
        answer.bytes[1] = answer.bytes[1] === 0x30 ? 0x31 : 0x30; // first CRC digit
        return answer;
      }
      default:
        return dialectAnswer(f, now) ?? ack();
    }
  };

  const handle = (bytes: Buffer, transport: "tcp" | "udp", remote: string, reply: Reply): void => {
    const at = Date.now();
    let frame: DecodedDc09Frame;
    try {
      frame = decodeDc09Frame(bytes, { key: opts.key });
    } catch (err) {
      receiver.rejected.push({ at, bytes: Buffer.from(bytes), error: (err as Error).message, transport, remote });
      changes.emit("change");
      return;
    }
    const event: ReceivedEvent = { at, frame, transport, remote };
    receiver.received.push(event);
    const b = receiver.behaviour;
    const behaviour = typeof b === "function" ? b(frame) : b;
    const answer = answerFor(frame, behaviour, new Date(at + receiver.clockOffsetMs));
    if (answer && behaviour === "reset") {
      // Half an ACK, then RST: the transmitter must not take it for an answer.
      if (transport === "tcp") reply(answer.bytes.subarray(0, answer.bytes.length >> 1), "reset");
      receiver.answers.push({ at, event, behaviour });
    } else {
      const end = behaviour === "close-after-frame" || answer?.end || dialect.endAfterAnswer;
      if (answer) reply(answer.bytes, end ? "end" : undefined);
      if (answer?.kind === "ACK" && behaviour !== "bad-crc") receiver.acked.push(event);
      receiver.answers.push({ at, event, behaviour, sent: answer?.kind });
    }
    changes.emit("change");
  };

  const tcp = createServer((socket) => {
    sockets.add(socket);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    let pending = Buffer.alloc(0);
    let closing = false;
    const reply: Reply = (bytes, after) => {
      if (socket.destroyed) return;
      closing = after !== undefined;
      if (after === "end") socket.end(bytes);
      else socket.write(bytes);
      // Reset from a timer: on Node 20 a reset issued right after the write (even from its callback or
      // setImmediate) reached the client as a FIN, not an RST.
      if (after === "reset") setTimeout(() => socket.destroyed || socket.resetAndDestroy(), 5).unref();
    };
    socket.on("data", (chunk: Buffer) => {
      if (closing) return;
      const { frames, rest } = splitDc09Frames(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const frame of frames) {
        if (closing || socket.destroyed) break;
        handle(frame, "tcp", remote, reply);
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  });

  const udp = createSocket("udp4");
  udp.on("message", (datagram: Buffer, rinfo: RemoteInfo) => {
    // One datagram is one frame; there is no connection to reset or close.
    handle(datagram, "udp", `${rinfo.address}:${rinfo.port}`, (bytes) => udp.send(bytes, rinfo.port, rinfo.address));
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.tcpPort ?? 0, host, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(opts.udpPort ?? 0, host, () => {
        udp.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    tcp.close();
    throw err;
  }

  const receiver: Dc09Receiver = {
    tcpPort: (tcp.address() as { port: number }).port,
    udpPort: udp.address().port,
    received: [],
    acked: [],
    rejected: [],
    answers: [],
    behaviour: opts.behaviour ?? "ack",
    clockOffsetMs: 0,
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
            if (predicate(receiver.received)) done();
          } catch (err) {
            done(err as Error);
          }
        };
        const timer = setTimeout(() => {
          const seen = receiver.received.map((r) => `${r.frame.id} ${r.frame.seq}`).join(", ") || "nothing";
          done(new Error(`DC-09 receiver: condition not met within ${timeoutMs} ms (received: ${seen})`));
        }, timeoutMs);
        changes.on("change", check);
        check();
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => tcp.close(() => resolve())),
        new Promise<void>((resolve) => udp.close(() => resolve())),
      ]);
    },
  };
  return receiver;
}
