// Node-RED plugin of the pack: the "alarm gateway" sidebar (its editor half is nodes/alarm-gateway-panel.html)
// and the admin routes behind it, each behind the `alarm-gateway.read` permission: the live figures of every
// connector, line-driver and data-map, the alarm trace, and the Prometheus metrics. With settings.js
// `alarmGateway: { metricsOnHttpNode: true }` (or a path) the metrics are also served on Node-RED's HTTP
// server at /metrics (Prometheus's default path), where `httpNodeAuth` (the user's choice) protects them.
import type { NodeAPI } from "node-red";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./core/health/metrics";
import { gatewayHealth, gatewaySettings, traceLogOf } from "./health";

module.exports = (RED: NodeAPI) => {
  (RED as unknown as { plugins: { registerPlugin(id: string, def: object): void } }).plugins.registerPlugin(
    "alarm-gateway-panel",
    { type: "alarm-gateway-panel" },
  );
  RED.httpAdmin.get("/alarm-gateway/health", RED.auth.needsPermission("alarm-gateway.read"), (_req, res) => {
    res.json(gatewayHealth.snapshot());
  });

  RED.httpAdmin.get("/alarm-gateway/trace", RED.auth.needsPermission("alarm-gateway.read"), (req, res) => {
    const q = typeof req.query.q === "string" ? req.query.q.slice(0, 200) : "";
    traceLogOf(RED)
      .search(q)
      .then(
        (emails) => res.json({ query: q, emails }),
        (err: unknown) => res.status(500).json({ error: `trace not read: ${String(err)}` }),
      );
  });

  // Written as is: Express's send() would reorder the media type's parameters.
  const metrics = (_req: unknown, res: { setHeader(n: string, v: string): void; end(body: string): void }) => {
    res.setHeader("Content-Type", METRICS_CONTENT_TYPE);
    res.end(renderMetrics(gatewayHealth));
  };
  RED.httpAdmin.get("/alarm-gateway/metrics", RED.auth.needsPermission("alarm-gateway.read"), metrics);
  const onHttpNode = gatewaySettings(RED).metricsOnHttpNode;
  if (onHttpNode) RED.httpNode.get(typeof onHttpNode === "string" ? onHttpNode : "/metrics", metrics);
};
