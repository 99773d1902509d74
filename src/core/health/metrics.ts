// The registry in Prometheus's text exposition format (version 0.0.4: `# HELP`, `# TYPE`, one sample per
// line, label values escaped), with conventional names: `_total` counters, `_seconds` units, a histogram
// with cumulative `le` buckets. Written here rather than with prom-client: the figures already live in the
// registry, and the pack keeps to six runtime dependencies.
import { type GatewayHealth, LATENCY_BUCKETS_S } from "./registry";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Record<string, string>;

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string): this {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    const text = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
      .join(",");
    const number = Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
    this.lines.push(`${name}${text ? `{${text}}` : ""} ${number}`);
    return this;
  }

  toString(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

const CONNECTOR_STATES = ["connecting", "watching", "reconnecting", "throttled", "error", "stopped"] as const;

export function renderMetrics(health: GatewayHealth, now = Date.now()): string {
  const out = new Exposition();
  const connectors = [...health.connectors.values()];
  const connectorLabels = (c: (typeof connectors)[number]) => ({
    connector: c.id,
    name: c.name,
    mailbox: c.mailbox,
    transport: c.transport,
  });
  out.family("alarm_gateway_emails_received_total", "counter", "Emails the email-connector picked up.");
  for (const c of connectors) out.sample("alarm_gateway_emails_received_total", connectorLabels(c), c.received);
  out.family("alarm_gateway_connector_up", "gauge", "1 while the email-connector sees its mailbox, else 0.");
  for (const c of connectors)
    out.sample("alarm_gateway_connector_up", connectorLabels(c), c.blindSince === undefined ? 1 : 0);
  out.family("alarm_gateway_connector_state", "gauge", "The email-connector's state: 1 for the current one.");
  for (const c of connectors)
    for (const state of CONNECTOR_STATES)
      out.sample("alarm_gateway_connector_state", { connector: c.id, state }, c.state === state ? 1 : 0);
  out.family("alarm_gateway_emails_in_flight", "gauge", "Emails offered to the flow and not yet settled.");
  for (const c of connectors) out.sample("alarm_gateway_emails_in_flight", { connector: c.id }, c.inFlight);

  const maps = [...health.dataMaps.values()];
  out.family("alarm_gateway_emails_mapped_total", "counter", "Emails the data-map turned into an alarm.");
  for (const d of maps) out.sample("alarm_gateway_emails_mapped_total", { data_map: d.id, name: d.name }, d.mapped);
  out.family("alarm_gateway_emails_unmatched_total", "counter", "Emails the data-map rejected (second output).");
  for (const d of maps)
    out.sample("alarm_gateway_emails_unmatched_total", { data_map: d.id, name: d.name }, d.unmatched);

  const lines = [...health.lineDrivers.values()];
  const ld = (l: (typeof lines)[number]) => ({ line_driver: l.id, name: l.name, protocol: l.protocol });
  out.family("alarm_gateway_alarms_accepted_total", "counter", "Alarms written to the line-driver's outbox.");
  for (const l of lines) out.sample("alarm_gateway_alarms_accepted_total", ld(l), l.accepted);
  out.family("alarm_gateway_alarms_delivered_total", "counter", "Alarms the receiver acknowledged.");
  for (const l of lines) out.sample("alarm_gateway_alarms_delivered_total", ld(l), l.delivered);
  out.family("alarm_gateway_alarms_failed_total", "counter", "Alarms the receiver refused (kept as refused).");
  for (const l of lines) out.sample("alarm_gateway_alarms_failed_total", ld(l), l.failed);
  out.family("alarm_gateway_outbox_depth", "gauge", "Alarms in the outbox not yet delivered.");
  const boxes = lines.map((l) => ({ l, box: l.outbox() }));
  for (const { l, box } of boxes) out.sample("alarm_gateway_outbox_depth", ld(l), box.depth);
  out.family("alarm_gateway_outbox_oldest_age_seconds", "gauge", "Age of the oldest undelivered alarm; 0 when none.");
  for (const { l, box } of boxes)
    out.sample(
      "alarm_gateway_outbox_oldest_age_seconds",
      ld(l),
      box.oldestAcceptedAt === undefined ? 0 : Math.max(0, (now - box.oldestAcceptedAt) / 1000),
    );
  out.family("alarm_gateway_line_up", "gauge", "1 while the line to the receiver works, 0 while it fails.");
  for (const l of lines) if (l.lineOk !== undefined) out.sample("alarm_gateway_line_up", ld(l), l.lineOk ? 1 : 0);
  out.family("alarm_gateway_delivery_latency_seconds", "histogram", "From sending an alarm to the receiver's ACK.");
  for (const l of lines) {
    LATENCY_BUCKETS_S.forEach((le, i) => {
      out.sample("alarm_gateway_delivery_latency_seconds_bucket", { ...ld(l), le: String(le) }, l.buckets[i] ?? 0);
    });
    const count = l.buckets[LATENCY_BUCKETS_S.length] ?? 0;
    out.sample("alarm_gateway_delivery_latency_seconds_bucket", { ...ld(l), le: "+Inf" }, count);
    out.sample("alarm_gateway_delivery_latency_seconds_sum", ld(l), Number(l.latencySumS.toFixed(6)));
    out.sample("alarm_gateway_delivery_latency_seconds_count", ld(l), count);
  }

  const tokens = [...health.tokens.values()];
  const tl = (t: (typeof tokens)[number]) => ({ oauth_config: t.id, name: t.name, tenant: t.tenant });
  out.family("alarm_gateway_token_refreshes_total", "counter", "Access tokens Entra ID issued (not from cache).");
  for (const t of tokens) out.sample("alarm_gateway_token_refreshes_total", tl(t), t.refreshes);
  out.family("alarm_gateway_token_failures_total", "counter", "Token requests Entra ID refused or that failed.");
  for (const t of tokens) out.sample("alarm_gateway_token_failures_total", tl(t), t.failures);
  out.family("alarm_gateway_token_expiry_timestamp_seconds", "gauge", "When the current token expires (Unix time).");
  for (const t of tokens)
    for (const [resource, at] of t.expiresAt)
      out.sample("alarm_gateway_token_expiry_timestamp_seconds", { ...tl(t), resource }, Math.round(at / 1000));
  return out.toString();
}
