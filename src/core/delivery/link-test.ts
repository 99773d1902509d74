// The line-driver editor's Test button: one link test to the receiver with the values in the
// dialog, reported as the receiver answered (ACK / NAK / DUH / nothing) with the round trip.
// DC-09 sends a NULL message (dc09.md "Link test"); Sur-Gard sends a heartbeat (surgard.md).
import { randomInt } from "node:crypto";
import { type Dc09Response, encodeDc09 } from "../dc09";
import { Dc09Link, Dc09LinkError, type LinkTransport, type ReceiverAddress } from "../dc09/link";
import type { AllowList } from "../surgard/allow-list";
import { heartbeatPacket, type SurgardLine } from "../surgard/packet";
import { SurgardLink } from "../surgard/surgard-link";

export type LinkTestAnswer = "ACK" | "NAK" | "DUH" | "RSP" | "none";

export interface LinkTestLine {
  /** Which receiver: "primary", "backup" or "automation". */
  receiver: string;
  address: string;
  answer: LinkTestAnswer;
  ok: boolean;
  /** Round trip from the send to the answer. */
  rttMs?: number;
  detail: string;
  fix?: string;
}

export interface LinkTestResult {
  ok: boolean;
  protocol: "dc09" | "surgard";
  lines: LinkTestLine[];
  /** Said instead of (or besides) a test, e.g. for a Sur-Gard line the automation dials in on. */
  note?: string;
}

export interface Dc09LinkTestOptions {
  address: ReceiverAddress;
  transport: LinkTransport;
  key?: Buffer;
  receiver?: string;
  prefix: string;
  /** Account of the NULL message: the line-driver's supervision account. */
  account: string;
  timeoutMs: number;
  /** Test label: "primary" or "backup". */
  role: string;
}

/** A NAK's time this close to the time we sent is not a clock problem (see the transmitter). */
const CLOCK_AGREES_MS = 2000;

/**
 * One NULL message; a NAK whose time differs from ours is answered as the line-driver does: resent once on the
 * receiver's time. A NAK whose time agrees with ours, or that has none, refuses the NULL itself: some receivers
 * refuse every NULL (dc09.md "Dialects"), which the result says, with what that means for supervision.
 */
export async function testDc09Receiver(o: Dc09LinkTestOptions): Promise<LinkTestLine> {
  const address = `${o.address.host}:${o.address.port} (${o.transport.toUpperCase()})`;
  const link = new Dc09Link(o.address, o.transport, o.key);
  const seq = randomInt(1, 10_000);
  let clockOffsetMs: number | undefined;
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      const timestamp = new Date(Date.now() + (clockOffsetMs ?? 0));
      const frame = encodeDc09(
        { id: "NULL", seq, receiver: o.receiver, prefix: o.prefix, account: o.account, timestamp },
        { key: o.key },
      );
      const started = performance.now();
      let response: Dc09Response;
      try {
        response = await link.exchange(frame, seq, o.timeoutMs);
      } catch (err) {
        const reason = plainReason(err);
        if (err instanceof Dc09LinkError && err.unreadable !== undefined) {
          return {
            receiver: o.role,
            address,
            answer: "none",
            ok: false,
            detail: `the receiver answered, but the answer cannot be read: ${err.unreadable}`,
            fix: o.key
              ? "Check the AES key and its form (hex or ASCII): an answer encrypted with another key cannot be read."
              : "The receiver answers in a form the gateway does not read; the line-driver treats such an answer as a refusal.",
          };
        }
        return {
          receiver: o.role,
          address,
          answer: "none",
          ok: false,
          detail: reason,
          fix: /refused|ENOTFOUND|EAI_AGAIN|timed out|unreachable/i.test(reason)
            ? "Check the host, port and transport (TCP/UDP), and that a firewall lets the gateway reach the receiver."
            : o.key
              ? "The receiver stayed silent: check the AES key and whether it is hex digits or ASCII characters (a receiver that cannot decrypt a frame does not answer), the receiver and line numbers, and the port."
              : "The receiver stayed silent: check the port and transport, the receiver and line numbers, and whether the receiver requires encryption.",
        };
      }
      const rttMs = Math.round(performance.now() - started);
      if (response.kind === "NAK" && response.timestamp && attempt === 0) {
        const skewMs = response.timestamp.getTime() - Math.floor(timestamp.getTime() / 1000) * 1000;
        if (Math.abs(skewMs) > CLOCK_AGREES_MS) {
          clockOffsetMs = skewMs;
          continue;
        }
      }
      const clockNote =
        clockOffsetMs === undefined
          ? ""
          : ` after a NAK: the receiver's clock differs from ours by ${Math.round(clockOffsetMs / 1000)} s, and the line-driver corrects its time stamps the same way`;
      return describeDc09Answer(response, o, address, rttMs, clockNote, clockOffsetMs !== undefined);
    }
    return { receiver: o.role, address, answer: "none", ok: false, detail: "no answer" };
  } finally {
    link.close();
  }
}

function describeDc09Answer(
  response: Dc09Response,
  o: Dc09LinkTestOptions,
  address: string,
  rttMs: number,
  clockNote: string,
  afterClockFix: boolean,
): LinkTestLine {
  const base = { receiver: o.role, address, answer: response.kind, rttMs };
  const said = ` (answer ${JSON.stringify(response.raw)})`;
  switch (response.kind) {
    case "ACK":
    case "RSP":
      return { ...base, ok: true, detail: `${response.kind} in ${rttMs} ms${clockNote}` };
    case "DUH":
      return {
        ...base,
        ok: false,
        detail: `DUH in ${rttMs} ms: the receiver does not accept this message${said}`,
        fix: `Check the receiver number (R${o.receiver ?? ""}), line prefix (L${o.prefix}) and the link-test account (${o.account}) the receiver expects, and whether it requires encryption.`,
      };
    case "NAK": {
      const why = afterClockFix
        ? "NAK again, also with the receiver's own time"
        : response.timestamp
          ? "NAK, and its time agrees with ours: not a clock problem"
          : "NAK without the receiver's time";
      return {
        ...base,
        ok: false,
        detail: `the receiver refuses the link test (NULL, account ${o.account}): ${why}, in ${rttMs} ms${said}`,
        fix:
          `Check that the receiver knows account ${o.account} (enter one it knows as the link-test account, or leave ` +
          "it empty to use the last alarm's), the AES key and its form, and the receiver and line numbers. Some " +
          "receivers refuse every NULL message (alarms still go through): the line-driver then logs it once; set " +
          "the link test interval to 0 if the receiver cannot be made to accept it.",
      };
    }
  }
}

export interface SurgardClientTestOptions {
  host: string;
  port: number;
  line: SurgardLine;
  timeoutMs: number;
}

/** Client role: connect to the automation software and send one heartbeat. */
export async function testSurgardClient(o: SurgardClientTestOptions): Promise<LinkTestLine> {
  const link = new SurgardLink({ role: "client", host: o.host, port: o.port });
  const address = `${o.host}:${o.port}`;
  try {
    return await heartbeatOver(link, o.line, o.timeoutMs, address);
  } finally {
    link.close();
  }
}

export interface SurgardServerTestOptions {
  host: string;
  port: number;
  /** Who may connect, as the deployed node would allow (default loopback only). */
  allow?: AllowList;
  line: SurgardLine;
  timeoutMs: number;
  /** How long to wait for the automation software to connect to our port. */
  waitMs: number;
}

/**
 * Server role: the automation software dials in. If the port is free (not deployed yet), listen
 * for a while; when the automation connects, send it one heartbeat. If the deployed line-driver
 * holds the port, the live line is its own: report that, and the editor shows the node's status.
 */
export async function testSurgardServer(o: SurgardServerTestOptions): Promise<LinkTestResult> {
  let connected: (remote: string) => void = () => undefined;
  const arrived = new Promise<string>((resolve) => {
    connected = resolve;
  });
  // Per address, not per connection: a host that keeps dialling is one line of the answer.
  const refused = new Map<string, { reason: string; times: number }>();
  const link = new SurgardLink({
    role: "server",
    host: o.host,
    port: o.port,
    allow: o.allow,
    onConnected: (r) => connected(r),
    onRefused: (r, reason) => {
      const ip = r.slice(0, r.lastIndexOf(":"));
      const seen = refused.get(ip);
      if (seen) seen.times++;
      else if (refused.size < 5) refused.set(ip, { reason, times: 1 });
    },
  });
  const where = link.listening;
  const refusals = () =>
    refused.size
      ? ` Refused meanwhile: ${[...refused].map(([ip, { reason, times }]) => `${ip} (${times}×): ${reason}`).join("; ")}.`
      : "";
  let timer: NodeJS.Timeout | undefined;
  try {
    try {
      await link.listen();
    } catch (err) {
      const code = (err as { code?: string }).code;
      return {
        ok: code === "EADDRINUSE",
        protocol: "surgard",
        lines: [],
        note:
          code === "EADDRINUSE"
            ? `Port ${o.port} is in use, normally by the deployed line-driver: the automation software connects to us, so test the line from its side (its Sur-Gard line driver should show the line up and our heartbeats acknowledged).`
            : `Cannot listen on ${where}: ${(err as Error).message}`,
      };
    }
    const remote = await Promise.race([
      arrived,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), o.waitMs);
      }),
    ]);
    if (remote === undefined) {
      return {
        ok: false,
        protocol: "surgard",
        lines: [
          {
            receiver: "automation",
            address: where,
            answer: "none",
            ok: false,
            detail: `no automation software connected to ${where} within ${Math.round(o.waitMs / 1000)} s`,
            fix: `The automation software connects to us: point its Sur-Gard line driver at this machine, port ${o.port}, and test from its side; or check a firewall in between.${refusals()}`,
          },
        ],
      };
    }
    const line = await heartbeatOver(link, o.line, o.timeoutMs, `${remote} (connected to ${where})`);
    return { ok: line.ok, protocol: "surgard", lines: [line] };
  } finally {
    clearTimeout(timer);
    link.close();
  }
}

async function heartbeatOver(
  link: SurgardLink,
  line: SurgardLine,
  timeoutMs: number,
  address: string,
): Promise<LinkTestLine> {
  const started = performance.now();
  try {
    const answer = await link.exchange(heartbeatPacket(line), timeoutMs);
    const rttMs = Math.round(performance.now() - started);
    return answer === "ACK"
      ? { receiver: "automation", address, answer, ok: true, rttMs, detail: `heartbeat ACK in ${rttMs} ms` }
      : {
          receiver: "automation",
          address,
          answer,
          ok: false,
          rttMs,
          detail: `heartbeat NAK in ${rttMs} ms`,
          fix: "The automation software reads the line but refuses our heartbeat: check the receiver number (RR), the line number and the 1- or 3-digit line setting its driver expects.",
        };
  } catch (err) {
    const reason = plainReason(err);
    return {
      receiver: "automation",
      address,
      answer: "none",
      ok: false,
      detail: reason,
      fix: /connect/i.test(reason)
        ? "Check the automation software's host and port, that its Sur-Gard line driver listens, and the firewall."
        : "Connected, but the heartbeat got no ACK: check that this port belongs to a Sur-Gard (System III/5 or MLR2) line driver.",
    };
  }
}

/** A socket error as a sentence, keeping the system code for whoever searches it. */
function plainReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const known: [RegExp, string][] = [
    [/ECONNREFUSED/, "connection refused: nothing listens on that port"],
    [/ENOTFOUND|EAI_AGAIN/, "host name not found"],
    [/EHOSTUNREACH|ENETUNREACH/, "host unreachable"],
    [/ECONNRESET/, "connection reset by the peer"],
  ];
  const hit = known.find(([pattern]) => pattern.test(message));
  return hit
    ? `${message.replace(/: connect E[A-Z]+ .*$/, "")}: ${hit[1]} (${/E[A-Z_]{4,}/.exec(message)?.[0]})`
    : message;
}
