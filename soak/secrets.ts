// Scenario 7: the client secret and the DC-09 key never leave the credentials store. A gateway
// with adminAuth runs alarms (mapped and rejected), a rotated secret (invalid_client errors in the
// log), the editor's Test buttons with stored credentials, and answers every admin GET the editor
// uses; then everything the soak wrote is searched: flows.json and the rest of each user directory,
// every Node-RED log, every admin response, every comms frame (statuses and debug messages).
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startMailStack } from "../test/helpers/mail-stack";
import { DC09_KEY, Gateway, NODE, SOAK_ADMIN, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import { type ScenarioResult, Verdict, waitForDelivery } from "../test/helpers/soak-report";
import { CLIENT_SECRET } from "../test/helpers/tenant";
import { startDc09Receiver } from "../test/standin/dc09-receiver";
import { RUN_DIR } from "../test/standin/paths";

export interface SecretsOptions {
  /** Folders to search (default: everything the soak wrote). */
  roots?: string[];
  name?: string;
  log?: (line: string) => void;
}

/** The forms a secret could leak in. Hex keys are searched without regard to case. */
function needles(): { what: string; bytes: Buffer; caseless: boolean }[] {
  const key = Buffer.from(DC09_KEY, "hex");
  return [
    { what: "client secret", bytes: Buffer.from(CLIENT_SECRET), caseless: false },
    {
      what: "client secret (base64)",
      bytes: Buffer.from(Buffer.from(CLIENT_SECRET).toString("base64")),
      caseless: false,
    },
    { what: "client secret (URL-encoded)", bytes: Buffer.from(encodeURIComponent(CLIENT_SECRET)), caseless: false },
    { what: "DC-09 key (hex)", bytes: Buffer.from(DC09_KEY.toLowerCase()), caseless: true },
    { what: "DC-09 key (base64)", bytes: Buffer.from(key.toString("base64")), caseless: false },
  ];
}

/** Every regular file below `dir`, symbolic links not followed (a user directory links the whole repository). */
function filesBelow(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) continue;
    if (stat.isDirectory()) filesBelow(path, out);
    else if (stat.isFile()) out.push(path);
  }
  return out;
}

export interface Leak {
  file: string;
  what: string;
  at: number;
}

/** Searches files for the secrets; returns where they were found (never the secret itself). */
export function searchForSecrets(roots: string[]): { files: number; bytes: number; leaks: Leak[] } {
  const forms = needles();
  const leaks: Leak[] = [];
  let files = 0;
  let bytes = 0;
  for (const file of roots.flatMap((r) => filesBelow(r))) {
    const content = readFileSync(file);
    files++;
    bytes += content.length;
    const lower = forms.some((f) => f.caseless)
      ? Buffer.from(content.toString("latin1").toLowerCase(), "latin1")
      : content;
    for (const f of forms) {
      const at = (f.caseless ? lower : content).indexOf(f.bytes);
      if (at >= 0) leaks.push({ file, what: f.what, at });
    }
  }
  return { files, bytes, leaks };
}

export async function secrets(o: SecretsOptions = {}): Promise<ScenarioResult> {
  const v = new Verdict(7, "secrets never in flows.json, logs, admin responses, debug messages");
  const log = o.log ?? (() => {});
  const name = o.name ?? "7-secrets";
  const dir = join(SOAK_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  const stack = await startMailStack(name, { viaProxy: true, lifetimeSeconds: 5 });
  const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
  let gateway: Gateway | undefined;
  try {
    gateway = await Gateway.start({ dir, stack, receiverPort: receiver.tcpPort, adminAuth: SOAK_ADMIN });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    // Alarms, and an email the data-map rejects: both reach debug nodes.
    const accounts = [soakAccount("7A", 0), soakAccount("7A", 1)];
    await appendEmails(stack, (i) => (i < 2 ? soakAlarmEmail(accounts[i]!) : soakAlarmEmail("not an account")), 3);
    await waitForDelivery(() => [receiver], accounts, 30_000);
    // The secret rotated in Entra ID: invalid_client errors, as the log shows them.
    await sleep(5500);
    const secret = stack.tenant.app.secret;
    stack.tenant.app.secret = `${secret}-rotated`;
    stack.proxy?.cutAll();
    await gateway.comms
      .waitForStatus(NODE.connector, /invalid client secret/, { since: Date.now() - 1000 })
      .catch(() => undefined);
    stack.tenant.app.secret = secret;

    const full = await gateway.token("*");
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${gateway!.red.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${full}`, "Content-Type": "application/json", Accept: "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(40_000),
      });
      return { method, path, status: res.status, body: await res.text() };
    };
    const responses = [
      await admin("GET", "/flows"),
      await admin("GET", "/settings"),
      await admin("GET", "/nodes"),
      await admin("GET", "/nodes/@alarm-gateway/node-red-o365"),
      await admin("GET", `/credentials/o365-oauth-config/${NODE.config}`),
      await admin("GET", `/credentials/line-driver/${NODE.line}`),
      await admin("GET", "/context/global"),
      await admin("GET", "/data-map/presets"),
      await admin("GET", `/data-map/${NODE.map}/recent`),
      await admin("POST", "/data-map/try", { node: NODE.map, recent: 0, map: { rules: [] } }),
      // The Test buttons with the stored credentials (the editor sends a placeholder for unchanged secrets).
      await admin("POST", "/o365-oauth-config/test", {
        id: NODE.config,
        ...stack.tenant.fields,
        credentials: { clientSecret: "__PWRD__" },
      }),
      await admin("POST", "/o365-oauth-config/test", {
        ...stack.tenant.fields,
        credentials: { clientSecret: "wrong" },
      }),
      await admin("POST", "/line-driver/test", {
        id: NODE.line,
        protocol: "dc09",
        host: "127.0.0.1",
        port: receiver.tcpPort,
        transport: "tcp",
        receiver: "1",
        prefix: "1",
        ackTimeout: 2,
        credentials: { key: "__PWRD__" },
      }),
    ];
    writeFileSync(join(dir, "admin-responses.jsonl"), `${responses.map((r) => JSON.stringify(r)).join("\n")}\n`);
    const credentialsShown = responses.filter((r) => r.path.startsWith("/credentials/")).map((r) => r.body);
    v.check(
      credentialsShown.every((b) => !/"(clientSecret|key)"\s*:/.test(b)),
      `a credentials response carried a value: ${credentialsShown.join(" ")}`,
    );
    v.numbers["admin responses"] = responses.length;
    v.numbers["debug messages"] = gateway.comms.debug.length;
    log(`admin: ${responses.map((r) => `${r.method} ${r.path} ${r.status}`).join(", ")}`);
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await receiver.close();
    await stack.stop();
  }
  // The search itself is checked first: a planted copy of each secret must be found.
  const canary = join(RUN_DIR, "soak-canary");
  rmSync(canary, { recursive: true, force: true });
  mkdirSync(canary, { recursive: true });
  writeFileSync(join(canary, "planted.log"), `x ${CLIENT_SECRET} y ${DC09_KEY.toUpperCase()} z`);
  const planted = searchForSecrets([canary]).leaks.map((l) => l.what);
  rmSync(canary, { recursive: true, force: true });
  v.check(
    planted.includes("client secret") && planted.includes("DC-09 key (hex)"),
    `the search does not find planted secrets (${planted.join(", ")})`,
  );
  const found = searchForSecrets(o.roots ?? [SOAK_DIR]);
  v.numbers["files searched"] = found.files;
  v.numbers["MiB searched"] = (found.bytes / 1024 / 1024).toFixed(0);
  v.numbers.occurrences = found.leaks.length;
  v.check(
    found.leaks.length === 0,
    `secrets found: ${found.leaks
      .slice(0, 10)
      .map((l) => `${l.what} in ${l.file} at byte ${l.at}`)
      .join("; ")}`,
  );
  return v.result();
}
