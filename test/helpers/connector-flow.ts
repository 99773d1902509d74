// Loads o365-oauth-config + email-connector into node-red-node-test-helper and records what
// the connector sends and shows, for tests against the real Dovecot.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import helper from "node-red-node-test-helper";
import { RUN_DIR } from "../standin/paths";
import { emailConnectorDef } from "./flows";
import type { MailStack } from "./mail-stack";
import { CLIENT_SECRET } from "./tenant";

const configNode = require("../../nodes/o365-oauth-config.js");
const connectorNode = require("../../nodes/email-connector.js");

helper.init(require.resolve("node-red"));
// Nodes keep progress files, outboxes and the alarm trace under userDir: never the checkout's own directory,
// even in a test that does not ask for a fresh one.
helper.settings({ userDir: join(RUN_DIR, "nr-helper", `default-${process.pid}`) });

export interface SentMessage {
  at: number;
  msg: any;
}

export interface LoadedConnector {
  id: string;
  sent: SentMessage[];
  statuses: { at: number; fill?: string; text?: string }[];
  node: any;
  /** Settles the email of a sent message, as line-driver and data-map do. */
  settle(msg: any, outcome?: "accepted" | "rejected" | "retry"): Promise<boolean>;
  waitForSent(count: number, timeoutMs?: number): Promise<SentMessage[]>;
  waitForStatus(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/** A fresh Node-RED user directory (progress files live there) for the next load. */
export function useUserDir(name: string): string {
  const userDir = join(RUN_DIR, "nr-helper", name);
  rmSync(userDir, { recursive: true, force: true });
  mkdirSync(userDir, { recursive: true });
  helper.settings({ userDir });
  return userDir;
}

export async function loadConnector(
  stack: MailStack,
  props: Record<string, unknown>,
  opts: { id?: string; configFields?: Record<string, unknown> } = {},
): Promise<LoadedConnector> {
  const id = opts.id ?? "conn";
  const flow = [
    { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields, ...opts.configFields },
    { id, ...emailConnectorDef({ oauth: "cfg", ...props }), wires: [["out"]] },
    { id: "out", type: "helper" },
  ];
  const sent: SentMessage[] = [];
  const statuses: LoadedConnector["statuses"] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  await helper.load([configNode, connectorNode], flow, { cfg: { clientSecret: CLIENT_SECRET } });
  const node: any = helper.getNode(id);
  const out = helper.getNode("out");
  out.on("input", (msg: any) => {
    sent.push({ at: Date.now(), msg });
    notify();
  });
  const record = (s: { fill?: string; text?: string }) => {
    statuses.push({ at: Date.now(), ...s });
    notify();
  };
  // Status calls made during load happened before we could listen: take them from the spy.
  if (node) {
    // Node-RED's test helper spies on the shared Node prototype: keep this node's calls only.
    for (const call of node.status.getCalls()) if (call.thisValue === node) record(call.firstArg);
    node.on("call:status", (call: { firstArg: { fill?: string; text?: string } }) => record(call.firstArg));
  }
  const waitUntil = <T>(check: () => T | undefined, timeoutMs: number, what: () => string) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(test);
        reject(new Error(`timed out waiting for ${what()}`));
      }, timeoutMs);
      const test = () => {
        const v = check();
        if (v !== undefined) {
          clearTimeout(timer);
          waiters.delete(test);
          resolve(v);
        }
      };
      waiters.add(test);
      test();
    });
  return {
    id,
    sent,
    statuses,
    node,
    settle: (msg, outcome = "accepted") => node.settle(msg.emailRef, outcome),
    waitForSent: (count, timeoutMs = 10_000) =>
      waitUntil(
        () => (sent.length >= count ? sent.slice(0, count) : undefined),
        timeoutMs,
        () => `${count} messages (got ${sent.length})`,
      ),
    waitForStatus: (pattern, timeoutMs = 10_000) =>
      waitUntil(
        () => statuses.find((s) => pattern.test(s.text ?? ""))?.text,
        timeoutMs,
        () => `status ${pattern} (seen: ${statuses.map((s) => s.text).join(" | ")})`,
      ),
  };
}

/** Calls this node made to one of its spied methods (status, warn, error, ...). */
export function callsOf(node: any, method: string): unknown[] {
  return node[method]
    .getCalls()
    .filter((c: { thisValue: unknown }) => c.thisValue === node)
    .map((c: { firstArg: unknown }) => c.firstArg);
}

export { helper };
