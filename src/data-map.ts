// Node-RED adapter for the data-map node: compiles the rules once on deploy, maps each email
// to msg.alarm (output 1) or rejects it with the reason (output 2, settled as rejected).
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import {
  type CompiledDataMap,
  compileDataMap,
  DATA_MAP_PRESETS,
  type DataMapConfig,
  DataMapConfigError,
  defaultDataMapConfig,
  type MappableEmail,
  tryDataMap,
  tryDataMapOnRawEmail,
} from "./core/datamap";
import { DataMapHealth } from "./core/health/registry";
import { gatewayHealth, trace, traceKeyOf } from "./health";
import { settleEmail } from "./settle";

interface DataMapDef extends NodeDef {
  map: DataMapConfig;
}

interface RecentEmail {
  at: string;
  email: MappableEmail;
}

interface DataMapNode extends Node {
  recent: RecentEmail[];
}

/** Emails the Try-it panel can pick from: the last few this node saw, without attachment bytes. */
const RECENT_KEPT = 5;

module.exports = (RED: NodeAPI) => {
  function DataMap(this: DataMapNode, def: DataMapDef) {
    RED.nodes.createNode(this, def);
    this.recent = [];
    let compiled: CompiledDataMap | undefined;
    let problems: string[] = [];
    try {
      // A node dropped in and deployed without opening the editor maps the classic alarm email, with the
      // spoof check it was created with (new nodes require Authentication-Results).
      const classic = def.map?.spoofCheck ? { ...defaultDataMapConfig(), spoofCheck: def.map.spoofCheck } : null;
      compiled = compileDataMap(def.map?.rules?.length ? def.map : (classic ?? defaultDataMapConfig()));
      this.status({ fill: "grey", shape: "dot", text: `${compiled.ruleCount} rules ready` });
    } catch (err) {
      problems = err instanceof DataMapConfigError ? err.problems : [String(err)];
      this.status({ fill: "red", shape: "ring", text: problems[0] ?? "rules invalid" });
      this.error(`data-map rules invalid, nothing is mapped until they are fixed:\n${problems.join("\n")}`);
    }
    let mapped = 0;
    let rejected = 0;
    const nodeId = this.id;
    const health = new DataMapHealth(nodeId, def.name ?? "");
    gatewayHealth.dataMaps.set(nodeId, health);
    this.on("close", () => {
      if (gatewayHealth.dataMaps.get(nodeId) === health) gatewayHealth.dataMaps.delete(nodeId);
    });

    const handle = async (msg: NodeMessageInFlow, send: (m: (NodeMessageInFlow | null)[]) => void) => {
      if (!compiled) {
        // The rules are wrong, not the email: leave it unsettled so it is offered again after a fix.
        throw new Error(`data-map rules invalid: ${problems.join("; ")}`);
      }
      const email = (msg as { email?: MappableEmail }).email;
      if (!email || typeof email !== "object") {
        throw new Error("msg.email is missing: connect the data-map to an email-connector");
      }
      remember(this, email);
      const receivedAt =
        typeof (email as { receivedAt?: unknown }).receivedAt === "string"
          ? (email as { receivedAt: string }).receivedAt
          : new Date().toISOString();
      const result = await compiled.map({ email, msg: msg as unknown as Record<string, unknown>, receivedAt });
      const key = traceKeyOf(msg, email.messageId);
      const subject = typeof email.subject === "string" ? email.subject.slice(0, 200) : "";
      health.outcome(result.ok, result.ok ? "" : `${result.rule}: ${result.reason}`, subject);
      if (key)
        trace(RED, {
          stage: result.ok ? "mapped" : "rejected",
          key,
          node: nodeId,
          ...(email.messageId ? { messageId: email.messageId } : {}),
          ...(result.ok
            ? { account: result.alarm.account, detail: result.alarm.eventCode }
            : { detail: `${result.rule}: ${result.reason}` }),
        });
      if (result.ok) {
        mapped++;
        this.status({ fill: "green", shape: "dot", text: `mapped ${mapped}, rejected ${rejected}` });
        send([{ ...msg, alarm: result.alarm } as NodeMessageInFlow, null]);
        return;
      }
      rejected++;
      const error = `${result.rule}: ${result.reason}`;
      this.status({ fill: "yellow", shape: "ring", text: `rejected ${rejected}: ${error}`.slice(0, 80) });
      this.warn(`email ${email.messageId ?? "(no Message-ID)"} rejected by ${error}`);
      try {
        await settleEmail(RED, msg, "rejected");
      } catch (err) {
        // Stays in flight at the connector and comes back: better twice in review than lost.
        this.error(`could not settle the rejected email: ${String(err)}`);
      }
      const dataMap = { rule: result.rule, reason: result.reason, field: result.field, trace: result.trace };
      send([null, { ...msg, error, dataMap } as NodeMessageInFlow]);
    };

    // Whatever a message holds, it ends on an output or as a node error that Catch nodes see.
    this.on("input", (msg: NodeMessageInFlow, send, done) => {
      handle(msg, send).then(
        () => done(),
        (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  RED.nodes.registerType("data-map", DataMap);

  // Try-it panel: the rules being edited (not yet deployed) against a pasted email or one this
  // node saw recently. Nothing is sent or settled.
  RED.httpAdmin.post("/data-map/try", RED.auth.needsPermission("data-map.write"), async (req, res) => {
    const body = (req.body ?? {}) as { map?: DataMapConfig; raw?: string; node?: string; recent?: number };
    try {
      if (!body.map) {
        res.status(400).json({ error: "no rules given" });
        return;
      }
      // What a deploy does to the rules: ${NAME} constants read from the environment.
      const map = withEnvironment(body.map) as DataMapConfig;
      if (typeof body.raw === "string" && body.raw.trim()) {
        res.json(await tryDataMapOnRawEmail(map, body.raw));
        return;
      }
      const seen = body.node ? (RED.nodes.getNode(body.node) as DataMapNode | null)?.recent : undefined;
      const pick = seen?.[body.recent ?? 0];
      if (!pick) {
        res.status(400).json({ error: "paste an email, or deploy and let an email pass to pick it here" });
        return;
      }
      res.json(await tryDataMap(map, { email: pick.email, receivedAt: pick.at }));
    } catch (err) {
      RED.log.error(`data-map try failed: ${String(err)}`);
      res.status(500).json({ error: "the try could not run; see the Node-RED log" });
    }
  });

  RED.httpAdmin.get("/data-map/presets", RED.auth.needsPermission("data-map.read"), (_req, res) => {
    res.json(DATA_MAP_PRESETS.map((p) => ({ id: p.id, label: p.label, map: p.config() })));
  });

  RED.httpAdmin.get("/data-map/:id/recent", RED.auth.needsPermission("data-map.read"), (req, res) => {
    const node = RED.nodes.getNode(String(req.params.id)) as DataMapNode | null;
    res.json(
      (node?.recent ?? []).map((r, index) => ({
        index,
        at: r.at,
        subject: r.email.subject ?? "",
        from: r.email.from?.[0]?.address ?? "",
      })),
    );
  });
};

function remember(node: DataMapNode, email: MappableEmail): void {
  const attachments = Array.isArray(email.attachments) ? email.attachments : [];
  const light: MappableEmail = {
    ...email,
    attachments: attachments.map((a) => ({
      filename: a?.filename,
      contentType: a?.contentType,
      size: a?.size,
      contentId: a?.contentId,
      inline: a?.inline,
    })),
  };
  node.recent.unshift({ at: new Date().toISOString(), email: light });
  node.recent.length = Math.min(node.recent.length, RECENT_KEPT);
}

/** Node-RED replaces a property that is exactly ${NAME} with that environment variable when it deploys. */
function withEnvironment(value: unknown): unknown {
  if (typeof value === "string") {
    const name = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value)?.[1];
    return name !== undefined && process.env[name] !== undefined ? process.env[name] : value;
  }
  if (Array.isArray(value)) return value.map(withEnvironment);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withEnvironment(v)]));
  return value;
}
