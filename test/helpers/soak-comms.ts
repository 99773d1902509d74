// Listens to a Node-RED child the way its editor does: the /comms websocket, subscribed to node
// statuses and debug messages. Every frame is also appended to a file, so that the secrets check
// can read exactly what an editor would have received.
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";

interface WsLike {
  on(event: "open" | "close", listener: () => void): void;
  on(event: "message", listener: (data: Buffer | string) => void): void;
  on(event: "error", listener: (err: Error) => void): void;
  send(text: string): void;
  close(): void;
  terminate(): void;
}

// Node 20 has no global WebSocket; `ws` is what Node-RED's own comms server is built on.
const requireFromEditorApi = createRequire(require.resolve("@node-red/editor-api"));
const WebSocket = requireFromEditorApi("ws") as new (url: string) => WsLike;

export interface NodeStatus {
  at: number;
  id: string;
  text: string;
  fill?: string;
  shape?: string;
}

export interface DebugMessage {
  at: number;
  /** The debug node's id. */
  id: string;
  /** What the editor shows: the message (or property) as Node-RED encoded it. */
  msg: string;
}

export interface Comms {
  statuses: NodeStatus[];
  debug: DebugMessage[];
  /** Resolves with the first status of `nodeId` at or after `since` whose text matches. */
  waitForStatus(nodeId: string, pattern: RegExp, opts?: { since?: number; timeoutMs?: number }): Promise<NodeStatus>;
  statusesOf(nodeId: string, since?: number): NodeStatus[];
  close(): void;
}

export async function connectComms(url: string, opts: { token?: string; file?: string } = {}): Promise<Comms> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/comms`);
  const statuses: NodeStatus[] = [];
  const debug: DebugMessage[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const subscribe = () => {
    ws.send(JSON.stringify({ subscribe: "status/#" }));
    ws.send(JSON.stringify({ subscribe: "debug" }));
    ws.send(JSON.stringify({ subscribe: "notification/#" }));
  };
  ws.on("message", (data) => {
    const text = data.toString();
    if (opts.file) appendFileSync(opts.file, `${text}\n`);
    let frames: unknown;
    try {
      frames = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(frames)) {
      if ((frames as { auth?: string }).auth === "ok") subscribe();
      return;
    }
    const at = Date.now();
    for (const f of frames as { topic?: string; data?: any }[]) {
      if (f.topic?.startsWith("status/")) {
        statuses.push({
          at,
          id: f.topic.slice(7),
          text: String(f.data?.text ?? ""),
          fill: f.data?.fill,
          shape: f.data?.shape,
        });
      } else if (f.topic === "debug") {
        debug.push({ at, id: String(f.data?.id ?? ""), msg: String(f.data?.msg ?? "") });
      }
    }
    for (const w of [...waiters]) w();
  });
  ws.on("error", () => undefined); // 'close' follows
  ws.on("close", () => {
    closed = true;
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.on("open", () => resolve());
    ws.on("error", reject);
  });
  if (opts.token) ws.send(JSON.stringify({ auth: opts.token }));
  else subscribe();

  const statusesOf = (nodeId: string, since = 0) => statuses.filter((s) => s.id === nodeId && s.at >= since);
  return {
    statuses,
    debug,
    statusesOf,
    waitForStatus(nodeId, pattern, { since = 0, timeoutMs = 10_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = statusesOf(nodeId, since).find((s) => pattern.test(s.text));
          if (found) done(undefined, found);
          else if (closed) done(new Error(`comms closed while waiting for status ${pattern} of ${nodeId}`));
        };
        const timer = setTimeout(() => {
          const seen = statusesOf(nodeId, since)
            .map((s) => s.text)
            .join(" | ");
          done(new Error(`no status ${pattern} of ${nodeId} within ${timeoutMs} ms (seen: ${seen || "none"})`));
        }, timeoutMs);
        const done = (err: Error | undefined, status?: NodeStatus) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(status as NodeStatus);
        };
        waiters.add(check);
        check();
      });
    },
    close() {
      closed = true;
      ws.terminate();
    },
  };
}
