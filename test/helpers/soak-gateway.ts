// The gateway as a user runs it, for the soak harness: a Node-RED child with the example flow
// (email-connector → data-map → line-driver, with its debug nodes), pointed at the stand-ins, a
// DC-09 AES key as the line-driver's credential, and a few observation points added: a recorder
// of what leaves data-map output 2 and the line-driver's output (GET /soak/records), the /comms
// websocket (statuses, debug messages) and Node-RED's log, each start in its own file.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { demoFlow } from "../../scripts/demo-flow";
import { RUN_DIR } from "../standin/paths";
import type { MailStack } from "./mail-stack";
import { type NodeRedProcess, startNodeRed } from "./node-red-process";
import { type Comms, connectComms } from "./soak-comms";
import { MAILBOX } from "./tenant";

/** Everything the soak harness writes: logs, comms captures, user directories (git-ignored). */
export const SOAK_DIR = join(RUN_DIR, "soak");

/** AES-256 key of the line-driver (a credential): it must never show up anywhere. */
export const DC09_KEY = "9f1c5e7a2b4d6f8091a3c5e7f9b1d3e5a7c9e1f3b5d7f9a1c3e5a7b9d1f3e5a7";

/** The editor login when adminAuth is on. */
export const SOAK_ADMIN = { username: "operator", password: "soak-operator-password" };

/** Node ids of the example flow. */
export const NODE = {
  config: "demo-o365",
  connector: "demo-connector",
  map: "demo-map",
  line: "demo-line",
} as const;

export interface FlowRecord {
  at: number;
  /** rejected: data-map output 2; delivered / failed / refused: the line-driver's output. */
  kind: "rejected" | "delivered" | "failed" | "refused";
  messageId: string | null;
  account: string | null;
  reason: string | null;
}

export interface GatewayOptions {
  /** Folder for this gateway's logs and comms captures (and its user directory by default). */
  dir: string;
  stack: MailStack;
  receiverPort: number;
  backupPort?: number;
  /** null: no encryption. */
  key?: string | null;
  /** Overrides of the email-connector's settings (the example's, plus the Review folder). */
  connector?: Record<string, unknown>;
  /** Overrides of the line-driver's settings. */
  lineDriver?: Record<string, unknown>;
  adminAuth?: { username: string; password: string };
  userDir?: string;
  /** The user directory exists already (a mount point): keep it. */
  keepUserDir?: boolean;
  env?: Record<string, string>;
  /** Let the harness ask the process for a full GC and its memory after it (gcAndMeasure). */
  gcHook?: boolean;
  /**
   * A tap on the email-connector's output: each message it emits is also reported as a UDP datagram
   * of JSON {m: msg.email.messageId, t: Date.now()} to 127.0.0.1:tapUdpPort (bench/shared-mode.ts).
   */
  tapUdpPort?: number;
}

// Loaded into the Node-RED child with --require when gcHook is on: SIGWINCH collects garbage and
// writes process.memoryUsage() to SOAK_MEM_FILE (SIGUSR2 would not do: Node-RED stops on it, for nodemon).
const GC_HOOK = `process.on("SIGWINCH", () => {
  global.gc();
  global.gc();
  require("node:fs").writeFileSync(process.env.SOAK_MEM_FILE, JSON.stringify(process.memoryUsage()));
});
`;

const RECORDERS = [
  {
    id: "soak-rec-rejected",
    func:
      "const r = global.get('soakRecords') || []; const e = msg.email || {};" +
      "r.push({ at: Date.now(), kind: 'rejected', messageId: e.messageId || null, account: null, reason: String(msg.error) });" +
      "global.set('soakRecords', r); return null;",
  },
  {
    id: "soak-rec-line",
    func:
      "const r = global.get('soakRecords') || []; const p = msg.payload || {}; const a = msg.alarm || {};" +
      "r.push({ at: Date.now(), kind: p.status, messageId: (a.source && a.source.messageId) || null, account: a.account || null, reason: p.reason || null });" +
      "global.set('soakRecords', r); return null;",
  },
];

/** The example flow (scripts/demo-flow.ts) as a user would have edited it for this site, plus the recorders. */
export function gatewayFlow(o: GatewayOptions): object[] {
  const nodes = demoFlow({
    tenant: o.stack.tenant,
    mailbox: MAILBOX,
    receiverPort: o.receiverPort,
    sendAlarmUrl: "",
  }).filter((n) => !["demo-inject", "demo-send"].includes((n as { id: string }).id)) as Record<string, any>[];
  const z = "demo-tab";
  for (const n of nodes) {
    if (n.id === NODE.connector) {
      Object.assign(n, { reviewFolder: "Review" }, o.connector);
      if (o.tapUdpPort) n.wires = [[...n.wires[0], "soak-tap"]];
    }
    if (n.id === NODE.map) n.wires = [n.wires[0], [...n.wires[1], "soak-rec-rejected"]];
    if (n.id === NODE.line) {
      Object.assign(
        n,
        o.backupPort ? { backupHost: "127.0.0.1", backupPort: o.backupPort } : {},
        o.lineDriver,
        o.key === null ? {} : { credentials: { key: o.key ?? DC09_KEY } },
      );
      n.wires = [[...n.wires[0], "soak-rec-line"]];
    }
  }
  return [
    ...nodes,
    ...RECORDERS.map((r, i) => ({ ...r, type: "function", z, outputs: 1, x: 900, y: 400 + 40 * i, wires: [] })),
    {
      id: "soak-rec-in",
      type: "http in",
      z,
      url: "/soak/records",
      method: "get",
      x: 120,
      y: 500,
      wires: [["soak-rec-read"]],
    },
    {
      id: "soak-rec-read",
      type: "function",
      z,
      func: "msg.payload = global.get('soakRecords') || []; return msg;",
      outputs: 1,
      x: 320,
      y: 500,
      wires: [["soak-rec-out"]],
    },
    { id: "soak-rec-out", type: "http response", z, statusCode: "", headers: {}, x: 520, y: 500, wires: [] },
    ...(o.tapUdpPort ? tapNodes(o.tapUdpPort) : []),
  ];
}

/** The tap of tapUdpPort: a function node that timestamps the email, and a `udp out` node. */
function tapNodes(port: number): object[] {
  const z = "demo-tab";
  return [
    {
      id: "soak-tap",
      type: "function",
      z,
      func: "return { payload: JSON.stringify({ m: (msg.email && msg.email.messageId) || null, t: Date.now() }) };",
      outputs: 1,
      x: 420,
      y: 580,
      wires: [["soak-tap-udp"]],
    },
    {
      id: "soak-tap-udp",
      type: "udp out",
      z,
      addr: "127.0.0.1",
      port: String(port),
      ipv: "udp4",
      outport: "",
      base64: false,
      multicast: "false",
      iface: "",
      x: 620,
      y: 580,
      wires: [],
    },
  ];
}

export class Gateway {
  red!: NodeRedProcess;
  comms!: Comms;
  /** Number of Node-RED processes started so far. */
  starts = 0;
  readonly userDir: string;
  /** Highest VmHWM seen of the processes started so far (bytes). */
  private peakOfEarlier = 0;

  private constructor(readonly o: GatewayOptions) {
    this.userDir = o.userDir ?? join(o.dir, "userdir");
  }

  /** First start: a fresh user directory (unless kept) and the flow deployed. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    mkdirSync(o.dir, { recursive: true });
    const gateway = new Gateway(o);
    await gateway.launch(o.keepUserDir ?? false);
    await gateway.red.deploy(gatewayFlow(o));
    return gateway;
  }

  /** Starts Node-RED again on the same user directory (after kill or stop). */
  async restart(): Promise<void> {
    await this.launch(true);
  }

  private get memFile(): string {
    return join(this.o.dir, "memory.json");
  }

  private async launch(keepUserDir: boolean): Promise<void> {
    this.starts++;
    let env = this.o.env;
    if (this.o.gcHook) {
      const hook = join(this.o.dir, "gc-hook.js");
      writeFileSync(hook, GC_HOOK);
      env = { ...env, NODE_OPTIONS: `--expose-gc --require ${hook}`, SOAK_MEM_FILE: this.memFile };
    }
    this.red = await startNodeRed({
      userDir: this.userDir,
      keepUserDir,
      adminAuth: this.o.adminAuth,
      env,
      logFile: join(this.o.dir, `node-red-${this.starts}.log`),
    });
    this.comms = await connectComms(this.red.url, {
      token: this.o.adminAuth ? await this.token("*") : undefined,
      file: join(this.o.dir, `comms-${this.starts}.jsonl`),
    });
  }

  /** An admin API token with the given scope ("*", "read", ...), as the editor would get at login. */
  async token(scope: string): Promise<string> {
    const auth = this.o.adminAuth;
    if (!auth) throw new Error("adminAuth is off");
    const res = await fetch(`${this.red.url}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: "node-red-admin", grant_type: "password", scope, ...auth }),
    });
    if (!res.ok) throw new Error(`login with scope ${scope} refused: ${res.status}`);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  get alive(): boolean {
    return this.red.child.exitCode === null && this.red.child.signalCode === null;
  }

  /** SIGKILL, like a crash or the OOM killer. */
  async kill(): Promise<void> {
    this.notePeak();
    this.comms.close();
    await this.red.kill();
  }

  async stop(): Promise<void> {
    this.notePeak();
    this.comms?.close();
    await this.red?.stop();
  }

  /** What left data-map output 2 and the line-driver since this process started. */
  async records(): Promise<FlowRecord[]> {
    const res = await fetch(`${this.red.url}/soak/records`);
    if (!res.ok) throw new Error(`recorder answered ${res.status}`);
    return (await res.json()) as FlowRecord[];
  }

  /** Peak resident memory (kernel high-water mark) of the Node-RED processes so far, in bytes. */
  peakRss(): number {
    this.notePeak();
    return this.peakOfEarlier;
  }

  /** Resident memory of the running Node-RED process now (bytes), 0 when it is gone. */
  rss(): number {
    try {
      const status = readFileSync(`/proc/${this.red.child.pid}/status`, "utf8");
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  }

  /** A full GC in the Node-RED process (gcHook on), then its memory as it reports it. */
  async gcAndMeasure(): Promise<NodeJS.MemoryUsage> {
    rmSync(this.memFile, { force: true });
    this.red.child.kill("SIGWINCH");
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 25));
      try {
        if (statSync(this.memFile).size > 0)
          return JSON.parse(readFileSync(this.memFile, "utf8")) as NodeJS.MemoryUsage;
      } catch {
        // not written yet, or caught mid-write
      }
    }
    throw new Error("the Node-RED process did not answer the GC request");
  }

  /** Node-RED's log of every start so far. */
  logs(): string {
    let all = "";
    for (let i = 1; i <= this.starts; i++) {
      try {
        all += readFileSync(join(this.o.dir, `node-red-${i}.log`), "utf8");
      } catch {
        // not written yet
      }
    }
    return all;
  }

  private notePeak(): void {
    const pid = this.red?.child.pid;
    if (!pid || !this.alive) return;
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      this.peakOfEarlier = Math.max(this.peakOfEarlier, hwm);
    } catch {
      // gone
    }
  }
}
