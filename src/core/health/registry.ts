// What the gateway knows of itself, per node, for the live panel, the metrics and self-supervision: the
// adapters write into it as things happen (an assignment or a counter each), readers take snapshots.
// One per process (the module is loaded once for every node of the pack).
import { HourCounter, HourSamples } from "./rolling";

/** Upper bounds (seconds) of the delivery-latency histogram: receivers ACK in tens of ms, outages take minutes. */
export const LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

export type ConnectorStateKind = "connecting" | "watching" | "reconnecting" | "throttled" | "error" | "stopped";

export class ConnectorHealth {
  state: ConnectorStateKind = "connecting";
  reason = "";
  /** When the connector last started to be unable to see its mailbox; undefined while it sees it. */
  blindSince: number | undefined;
  stateSince = Date.now();
  inFlight = 0;
  lastEmailAt: number | undefined;
  received = 0;
  tokenExpiresAt: number | undefined;
  readonly receivedLastHour = new HourCounter();

  constructor(
    readonly id: string,
    readonly name: string,
    readonly mailbox: string,
    readonly transport: "imap" | "graph",
    readonly folder: string,
    readonly shared: boolean,
    readonly oauthConfig: string,
  ) {}

  setState(kind: ConnectorStateKind, reason: string, inFlight: number, now = Date.now()): void {
    if (kind !== this.state) this.stateSince = now;
    this.state = kind;
    this.reason = reason;
    this.inFlight = inFlight;
    // Watching (or throttled, which is Graph telling us to wait while it holds the mail) is seeing the mailbox.
    const sees = kind === "watching" || kind === "throttled";
    if (sees) this.blindSince = undefined;
    else this.blindSince ??= now;
  }

  emailed(now = Date.now()): void {
    this.received++;
    this.lastEmailAt = now;
    this.receivedLastHour.add(now);
  }
}

export class DataMapHealth {
  mapped = 0;
  unmatched = 0;
  lastUnmatched: { at: number; reason: string; subject: string } | undefined;
  readonly mappedLastHour = new HourCounter();
  readonly unmatchedLastHour = new HourCounter();

  constructor(
    readonly id: string,
    readonly name: string,
  ) {}

  outcome(ok: boolean, reason: string, subject: string, now = Date.now()): void {
    if (ok) {
      this.mapped++;
      this.mappedLastHour.add(now);
    } else {
      this.unmatched++;
      this.unmatchedLastHour.add(now);
      this.lastUnmatched = { at: now, reason, subject };
    }
  }
}

export class LineDriverHealth {
  /** Set by the adapter: what the outbox holds now. */
  outbox: () => { depth: number; oldestAcceptedAt: number | undefined; refused: number } = () => ({
    depth: 0,
    oldestAcceptedAt: undefined,
    refused: 0,
  });
  lineOk: boolean | undefined;
  lineReason = "";
  via = "";
  address = "";
  lastAckAt: number | undefined;
  lastProblem: { at: number; text: string } | undefined;
  accepted = 0;
  delivered = 0;
  failed = 0;
  readonly latency = new HourSamples();
  /** Cumulative counts per LATENCY_BUCKETS_S bound, then +Inf; and the sum, for the Prometheus histogram. */
  readonly buckets = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
  latencySumS = 0;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly protocol: "dc09" | "surgard",
  ) {}

  deliveredIn(latencyMs: number, via: string, address: string, now = Date.now()): void {
    this.delivered++;
    this.via = via;
    this.address = address;
    this.lastAckAt = now;
    this.latency.add(now, latencyMs);
    const s = latencyMs / 1000;
    this.latencySumS += s;
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++)
      if (s <= (LATENCY_BUCKETS_S[i] ?? 0)) this.buckets[i] = (this.buckets[i] ?? 0) + 1;
    this.buckets[LATENCY_BUCKETS_S.length] = (this.buckets[LATENCY_BUCKETS_S.length] ?? 0) + 1;
  }

  problem(text: string, now = Date.now()): void {
    this.lastProblem = { at: now, text };
  }
}

export class TokenHealth {
  refreshes = 0;
  failures = 0;
  lastFailure: { at: number; text: string } | undefined;
  readonly expiresAt = new Map<string, number>();

  constructor(
    readonly id: string,
    readonly name: string,
    readonly tenant: string,
  ) {}
}

/** Everything the panel shows, as plain data (JSON for the admin route). */
export interface HealthSnapshot {
  at: number;
  connectors: {
    id: string;
    name: string;
    mailbox: string;
    transport: string;
    folder: string;
    shared: boolean;
    state: ConnectorStateKind;
    reason: string;
    stateSince: number;
    blindSince: number | null;
    lastEmailAt: number | null;
    inFlight: number;
    receivedLastHour: number;
    tokenExpiresAt: number | null;
  }[];
  lineDrivers: {
    id: string;
    name: string;
    protocol: string;
    lineOk: boolean | null;
    lineReason: string;
    via: string;
    address: string;
    lastAckAt: number | null;
    outboxDepth: number;
    oldestUndeliveredAt: number | null;
    refused: number;
    ackP50: number | null;
    ackP99: number | null;
    acksLastHour: number;
    lastProblem: { at: number; text: string } | null;
  }[];
  dataMaps: {
    id: string;
    name: string;
    mappedLastHour: number;
    unmatchedLastHour: number;
    lastUnmatched: { at: number; reason: string; subject: string } | null;
  }[];
}

export class GatewayHealth {
  readonly connectors = new Map<string, ConnectorHealth>();
  readonly dataMaps = new Map<string, DataMapHealth>();
  readonly lineDrivers = new Map<string, LineDriverHealth>();
  readonly tokens = new Map<string, TokenHealth>();

  snapshot(now = Date.now()): HealthSnapshot {
    return {
      at: now,
      connectors: [...this.connectors.values()].map((c) => ({
        id: c.id,
        name: c.name,
        mailbox: c.mailbox,
        transport: c.transport,
        folder: c.folder,
        shared: c.shared,
        state: c.state,
        reason: c.reason,
        stateSince: c.stateSince,
        blindSince: c.blindSince ?? null,
        lastEmailAt: c.lastEmailAt ?? null,
        inFlight: c.inFlight,
        receivedLastHour: c.receivedLastHour.total(now),
        tokenExpiresAt:
          this.tokens.get(c.oauthConfig)?.expiresAt.get(c.transport === "graph" ? "graph" : "outlook") ?? null,
      })),
      lineDrivers: [...this.lineDrivers.values()].map((l) => {
        const box = l.outbox();
        const ack = l.latency.percentiles(now);
        return {
          id: l.id,
          name: l.name,
          protocol: l.protocol,
          lineOk: l.lineOk ?? null,
          lineReason: l.lineReason,
          via: l.via,
          address: l.address,
          lastAckAt: l.lastAckAt ?? null,
          outboxDepth: box.depth,
          oldestUndeliveredAt: box.oldestAcceptedAt ?? null,
          refused: box.refused,
          ackP50: ack ? Math.round(ack.p50) : null,
          ackP99: ack ? Math.round(ack.p99) : null,
          acksLastHour: ack?.count ?? 0,
          lastProblem: l.lastProblem ?? null,
        };
      }),
      dataMaps: [...this.dataMaps.values()].map((d) => ({
        id: d.id,
        name: d.name,
        mappedLastHour: d.mappedLastHour.total(now),
        unmatchedLastHour: d.unmatchedLastHour.total(now),
        lastUnmatched: d.lastUnmatched ?? null,
      })),
    };
  }
}

/** The process's one registry. */
export const gatewayHealth = new GatewayHealth();
