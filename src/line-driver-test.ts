// The line-driver editor's Test button: POST /line-driver/test with the values in the dialog.
// An AES key the user did not retype comes from the stored credentials of the deployed node and is
// never sent back. `${VAR}` values are read from Node-RED's environment, as a deploy would.
import type { NodeAPI } from "node-red";
import { parseDc09Key } from "./core/dc09";
import {
  type LinkTestLine,
  type LinkTestResult,
  testDc09Receiver,
  testSurgardClient,
  testSurgardServer,
} from "./core/delivery/link-test";
import { type AllowList, parseAllowList } from "./core/surgard/allow-list";
import { checkSurgardLine } from "./core/surgard/packet";

/** Node-RED's placeholder for a password credential the user did not change in the editor. */
const UNCHANGED_PASSWORD = "__PWRD__";

interface LinkTestRequest {
  id?: string;
  protocol?: string;
  host?: string;
  port?: string | number;
  backupHost?: string;
  backupPort?: string | number;
  transport?: string;
  receiver?: string;
  prefix?: string;
  supervisionAccount?: string;
  keyForm?: string;
  ackTimeout?: string | number;
  sgRole?: string;
  sgHost?: string;
  sgPort?: string | number;
  sgAllow?: string;
  sgReceiver?: string | number;
  sgLine?: string | number;
  sgLineDigits?: string | number;
  sgAckTimeout?: string | number;
  /** Sur-Gard server role: how long to wait for the automation software to connect (1-30 s, default 10). */
  waitSeconds?: string | number;
  credentials?: { key?: string };
}

class BadRequest extends Error {}

/** What the route may know of the deployed node the dialog belongs to. */
export interface DeployedLineDriver {
  /** The account its link tests carry when the dialog leaves the field empty (the last alarm's account). */
  linkTestAccountOf(id: string): string | undefined;
  /** The receivers it was deployed with: its stored AES key is used with these only. */
  receiversOf(id: string): { host: string; port: number }[] | undefined;
}

export function registerLineDriverTest(RED: NodeAPI, deployed: DeployedLineDriver): void {
  RED.httpAdmin.post("/line-driver/test", RED.auth.needsPermission("line-driver.write"), async (req, res) => {
    const body = (req.body ?? {}) as LinkTestRequest;
    try {
      res.json(await runLinkTest(RED, body, deployed));
    } catch (err) {
      if (err instanceof BadRequest) {
        res.json({
          ok: false,
          protocol: body.protocol === "surgard" ? "surgard" : "dc09",
          lines: [],
          note: err.message,
        });
        return;
      }
      RED.log.error(`line-driver test failed: ${String(err)}`);
      res.status(500).json({ ok: false, lines: [], note: "The test could not run; see the Node-RED log." });
    }
  });
}

async function runLinkTest(RED: NodeAPI, body: LinkTestRequest, deployed: DeployedLineDriver): Promise<LinkTestResult> {
  if (body.protocol === "surgard") {
    const role = body.sgRole === "client" ? "client" : "server";
    const port = portOf(body.sgPort, "port", role === "server" ? 1025 : undefined);
    const lineDigits = Number(body.sgLineDigits) === 1 ? 1 : 3;
    const line = { receiver: whole(body.sgReceiver, 1), line: whole(body.sgLine, 1), lineDigits } as const;
    try {
      checkSurgardLine(line);
    } catch (err) {
      throw new BadRequest((err as Error).message);
    }
    const timeoutMs = seconds(body.sgAckTimeout, 4, 10) * 1000;
    if (role === "server") {
      let allow: AllowList;
      try {
        allow = parseAllowList(text(body.sgAllow));
      } catch (err) {
        throw new BadRequest(`Allowed automation addresses: ${(err as Error).message}`);
      }
      return testSurgardServer({
        host: text(body.sgHost),
        port,
        allow,
        line,
        timeoutMs,
        waitMs: seconds(body.waitSeconds, 10, 30) * 1000,
      });
    }
    const host = text(body.sgHost);
    if (!host) throw new BadRequest("Enter the automation software's host.");
    const result = await testSurgardClient({ host, port, line, timeoutMs });
    return { ok: result.ok, protocol: "surgard", lines: [result] };
  }

  const host = text(body.host);
  if (!host) throw new BadRequest("Enter the receiver's host.");
  const transport = body.transport === "udp" ? "udp" : "tcp";
  const targets = [{ role: "primary", host, port: portOf(body.port, "port") }];
  const backupHost = text(body.backupHost);
  if (backupHost) targets.push({ role: "backup", host: backupHost, port: portOf(body.backupPort, "backup port") });
  let key: Buffer | undefined;
  const typed = body.credentials?.key;
  const useStored = typed === undefined || typed === UNCHANGED_PASSWORD;
  const storedKey =
    useStored && body.id ? (RED.nodes.getCredentials(body.id) as { key?: string } | undefined)?.key : undefined;
  if (storedKey) {
    // A stored key encrypts only towards the receivers it was saved for: a request naming another host would
    // otherwise have the gateway send frames under the centre's key to wherever the request points.
    const saved = deployed.receiversOf(body.id ?? "") ?? [];
    const foreign = targets.find((t) => !saved.some((s) => sameReceiver(s, t)));
    if (foreign) {
      throw new BadRequest(
        `The stored AES key is used only with the receivers this line-driver was deployed with; ` +
          `${foreign.host}:${foreign.port} is not one of them. Type the key again to test it, or deploy first.`,
      );
    }
  }
  const keyText = useStored ? storedKey : typed;
  let keyNote: string | undefined;
  if (keyText) {
    const form = body.keyForm === "hex" || body.keyForm === "ascii" ? body.keyForm : "auto";
    try {
      const parsed = parseDc09Key(keyText, form);
      key = parsed.key;
      keyNote = `AES key read as ${parsed.form === "hex" ? "hex digits" : "ASCII characters"} (AES-${parsed.bits}).`;
    } catch (err) {
      throw new BadRequest(`AES key: ${(err as Error).message}`);
    }
  }
  const common = {
    transport,
    key,
    receiver: text(body.receiver) || undefined,
    prefix: text(body.prefix) || "0",
    account: text(body.supervisionAccount) || (body.id ? deployed.linkTestAccountOf(body.id) : undefined) || "0000",
    timeoutMs: seconds(body.ackTimeout, 5, 30) * 1000,
  } as const;
  const lines: LinkTestLine[] = [];
  // One after the other, as the line-driver uses them; a receiver that is down costs one timeout.
  for (const t of targets) {
    lines.push(await testDc09Receiver({ ...common, role: t.role, address: { host: t.host, port: t.port } }));
  }
  return { ok: lines[0]?.ok === true, protocol: "dc09", lines, ...(keyNote ? { note: keyNote } : {}) };
}

/** A `${VAR}` value is read from the environment, as Node-RED does on deploy. */
function text(value: unknown): string {
  const s = String(value ?? "").trim();
  const env = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(s);
  return env ? (process.env[env[1]!] ?? "").trim() : s;
}

function portOf(value: unknown, name: string, fallback?: number): number {
  const t = text(value);
  const n = t === "" && fallback !== undefined ? fallback : Number(t);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new BadRequest(`The ${name} "${t}" is not a port number (1-65535).`);
  return n;
}

function whole(value: unknown, fallback: number): number {
  const t = text(value);
  if (t === "") return fallback;
  const n = Number(t);
  if (!Number.isInteger(n) || n < 0) throw new BadRequest(`"${t}" is not a whole number.`);
  return n;
}

function seconds(value: unknown, fallback: number, max: number): number {
  const n = Number(text(value));
  return Number.isFinite(n) && n > 0 ? Math.min(n, max) : fallback;
}

function sameReceiver(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return a.host.toLowerCase() === b.host.toLowerCase() && a.port === b.port;
}
