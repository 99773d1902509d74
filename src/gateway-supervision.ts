// Node-RED adapter for `gateway-supervision`: the gateway's own trouble and restore events (a mailbox it cannot
// see, alarms it cannot deliver, a site's late periodic test) as alarms on its output, to wire into a
// line-driver. Its input takes the data-map's alarms, which tell it when each supervised site was last heard.
import { join } from "node:path";
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { AlarmEvent } from "./core/datamap/types";
import { DurableJson } from "./core/durable-json";
import {
  DEFAULT_CODES,
  type ExpectedSite,
  type SupervisionState,
  Supervisor,
  type TroubleCodes,
} from "./core/health/supervisor";
import { gatewayHealth } from "./health";

interface GatewaySupervisionDef extends NodeDef {
  account: string;
  format: "SIA" | "CID";
  mailboxMinutes: string | number;
  backlogMinutes: string | number;
  codes?: Partial<Record<keyof typeof DEFAULT_CODES, Partial<TroubleCodes>>>;
  /** One site per line: "<account> <hours>", e.g. "1234 24". */
  sites: string;
}

const ACCOUNT = /^[0-9A-Fa-f]{3,16}$/;

/** "1234 24" lines → sites; throws naming the line that is not one. */
export function parseSites(text: string): ExpectedSite[] {
  return String(text ?? "")
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*$/, "").trim())
    .filter(Boolean)
    .map((line, i) => {
      const [account, hours, ...rest] = line.split(/[\s,;]+/);
      const every = Number(hours);
      if (!account || !ACCOUNT.test(account) || !(every > 0) || rest.length > 0)
        throw new Error(`expected emails, line ${i + 1} "${line}": write "<account> <hours>", e.g. "1234 24"`);
      return { account: account.toUpperCase(), everyHours: every };
    });
}

module.exports = (RED: NodeAPI) => {
  function GatewaySupervision(this: Node, def: GatewaySupervisionDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    let sites: ExpectedSite[];
    try {
      if (!ACCOUNT.test(def.account?.trim() ?? "")) throw new Error("enter the gateway's account (3-16 hex digits)");
      sites = parseSites(def.sites);
    } catch (err) {
      node.status({ fill: "red", shape: "ring", text: (err as Error).message.slice(0, 80) });
      node.error(`gateway-supervision not started: ${(err as Error).message}`);
      return;
    }
    const codes = { ...DEFAULT_CODES };
    for (const kind of Object.keys(DEFAULT_CODES) as (keyof typeof DEFAULT_CODES)[])
      codes[kind] = { ...DEFAULT_CODES[kind], ...(def.codes?.[kind] ?? {}) };
    const minutes = (v: string | number, fallback: number) => {
      const n = Number(v);
      return v === "" || v === undefined || !Number.isFinite(n) || n < 0 ? fallback : n;
    };
    const settings = {
      account: def.account.trim().toUpperCase(),
      format: def.format === "CID" ? ("CID" as const) : ("SIA" as const),
      mailboxMinutes: minutes(def.mailboxMinutes, 5),
      backlogMinutes: minutes(def.backlogMinutes, 10),
      codes,
      sites,
    };
    const file = new DurableJson<SupervisionState>(
      join(RED.settings.userDir ?? process.cwd(), "alarm-gateway", `supervision-${node.id}.json`),
      () => ({ raised: {}, lastSeen: {}, startedAt: Date.now() }),
      (p) => ({ raised: p.raised ?? {}, lastSeen: p.lastSeen ?? {}, startedAt: p.startedAt ?? Date.now() }),
    );
    let supervisor: Supervisor | undefined;
    const ready = file.load().then(({ progress, problem }) => {
      if (problem) node.warn(problem);
      supervisor = new Supervisor(settings, progress);
    });

    /** The supervisor changed its state (it owns the object DurableJson keeps): written, writes coalescing. */
    function persist(): void {
      file.update(() => {});
      file.save().catch((err: unknown) => node.warn(`supervision state not saved: ${String(err)}`));
    }

    function emit(events: AlarmEvent[]): void {
      if (events.length === 0) return;
      persist();
      for (const alarm of events) {
        const raised = alarm.qualifier === "new";
        (raised ? node.warn : node.log).call(node, `${raised ? "trouble" : "restore"}: ${alarm.text}`);
        node.send({ topic: raised ? "trouble" : "restore", payload: alarm.text, alarm } as never);
      }
      showStatus();
    }

    function showStatus(): void {
      const open = Object.values(supervisor?.state.raised ?? {});
      node.status(
        open.length > 0
          ? { fill: "red", shape: "dot", text: `${open.length} trouble: ${open[0]?.text ?? ""}`.slice(0, 80) }
          : { fill: "green", shape: "dot", text: "no trouble" },
      );
    }

    // Checked often enough for the shortest threshold set (at least every 5 s).
    const shortest = Math.min(
      ...[settings.mailboxMinutes, settings.backlogMinutes].filter((m) => m > 0).map((m) => m * 60_000),
      ...sites.map((s) => s.everyHours * 3_600_000),
      20_000,
    );
    const timer = setInterval(
      () => {
        if (supervisor) emit(supervisor.evaluate(gatewayHealth.snapshot(), Date.now()));
      },
      Math.max(250, Math.min(5000, shortest / 4)),
    );
    ready.then(showStatus, (err: unknown) => node.error(`supervision state not read: ${String(err)}`));

    node.on("input", (msg: NodeMessageInFlow, _send, done) => {
      const account = (msg as { alarm?: Partial<AlarmEvent> }).alarm?.account;
      ready
        .then(() => {
          if (typeof account === "string" && supervisor) {
            const events = supervisor.heard(account, Date.now());
            // Kept across restarts: a restart must not forget that the site was heard (emit writes when it sends).
            // Only a supervised site's time changes: other accounts' alarms write nothing.
            const supervised = sites.some((site) => site.account === account.toUpperCase());
            if (supervised && events.length === 0) persist();
            emit(events);
          }
          done();
        })
        .catch((err: Error) => done(err));
    });

    node.on("close", (done: () => void) => {
      clearInterval(timer);
      file.update(() => {});
      file.save().then(done, done);
    });
  }

  RED.nodes.registerType("gateway-supervision", GatewaySupervision);
};
