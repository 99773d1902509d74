// Runs a real Node-RED as a child process with its own user directory, the way users run it,
// and talks to it over its admin HTTP API. Used by tests, the demo and benches.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { CERT_DIR, REPO_ROOT } from "../standin/paths";

export interface NodeRedOptions {
  userDir: string;
  port?: number;
  /** Link this repository into userDir/node_modules (like `npm install <path>`); false when a tarball was installed. */
  linkPack?: boolean;
  adminAuth?: { username: string; password: string };
  env?: Record<string, string>;
  /** Keep flows and credentials of an earlier run in userDir. */
  keepUserDir?: boolean;
  /** Node-RED's -v: lists each node module it loads. */
  verbose?: boolean;
  /** Options for node itself, before red.js: V8 flags NODE_OPTIONS does not allow (benches' experiments). */
  nodeArgs?: string[];
  /** Other node modules to make available, by name and the folder they are installed in. */
  linkModules?: { name: string; dir: string }[];
  /** Also write Node-RED's output to this file (for post-mortems of benches). */
  logFile?: string;
  /** More settings.js entries (JSON values). */
  settings?: Record<string, unknown>;
  /** Another Node.js and Node-RED than this repository's (default: process.execPath, node_modules/node-red). */
  runtime?: { node: string; redJs: string };
}

export interface NodeRedProcess {
  url: string;
  log: () => string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Admin API request, with the bearer token when adminAuth is on. */
  api(
    method: string,
    path: string,
    body?: unknown,
    opts?: { anonymous?: boolean },
  ): Promise<{ status: number; body: any }>;
  deploy(flows: object[]): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL, like a crash or an OOM kill; resolves once the process is gone. */
  kill(): Promise<void>;
  child: ChildProcess;
}

export const CREDENTIAL_SECRET = "test-credential-secret";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export async function startNodeRed(opts: NodeRedOptions): Promise<NodeRedProcess> {
  const port = opts.port ?? (await freePort());
  if (!opts.keepUserDir) rmSync(opts.userDir, { recursive: true, force: true });
  mkdirSync(opts.userDir, { recursive: true });
  if (opts.linkPack ?? true) {
    const target = join(opts.userDir, "node_modules", "@alarm-gateway", "node-red-o365");
    mkdirSync(dirname(target), { recursive: true });
    rmSync(target, { recursive: true, force: true });
    symlinkSync(REPO_ROOT, target, "dir");
    writeFileSync(join(opts.userDir, "package.json"), JSON.stringify({ name: "node-red-project", private: true }));
  }
  for (const { name, dir } of opts.linkModules ?? []) {
    const target = join(opts.userDir, "node_modules", name);
    mkdirSync(dirname(target), { recursive: true });
    rmSync(target, { recursive: true, force: true });
    symlinkSync(dir, target, "dir");
  }
  const settings = {
    uiPort: port,
    uiHost: "127.0.0.1",
    flowFile: "flows.json",
    credentialSecret: CREDENTIAL_SECRET,
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { tours: false },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    ...opts.settings,
  };
  const adminAuth = opts.adminAuth
    ? `adminAuth: { type: "credentials", users: [{ username: ${JSON.stringify(opts.adminAuth.username)}, password: require("bcryptjs").hashSync(${JSON.stringify(opts.adminAuth.password)}, 8), permissions: "*" }] },`
    : "";
  writeFileSync(
    join(opts.userDir, "settings.js"),
    `module.exports = { ${adminAuth} ...${JSON.stringify(settings)} };\n`,
  );
  const redJs = opts.runtime?.redJs ?? join(REPO_ROOT, "node_modules", "node-red", "red.js");
  const child = spawn(
    opts.runtime?.node ?? process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      redJs,
      "-u",
      opts.userDir,
      "-s",
      join(opts.userDir, "settings.js"),
      ...(opts.verbose ? ["-v"] : []),
    ],
    {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: join(CERT_DIR, "ca.pem"),
        NODE_PATH: join(REPO_ROOT, "node_modules"),
        ...opts.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const waiters: (() => void)[] = [];
  const logStream = opts.logFile ? createWriteStream(opts.logFile) : undefined;
  const onData = (d: Buffer) => {
    output += d.toString();
    logStream?.write(d);
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  let exited = false;
  child.on("exit", (code, signal) => {
    exited = true;
    logStream?.end(`\n[node-red exited: code ${code} signal ${signal}]\n`);
    for (const w of waiters.splice(0)) w();
  });

  const url = `http://127.0.0.1:${port}`;
  let bearer: string | undefined;

  const waitForLog = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<string>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`timed out waiting for ${pattern}; log:\n${output}`)),
        timeoutMs,
      );
      const check = () => {
        const m = pattern.exec(output);
        if (m) {
          clearTimeout(deadline);
          resolve(m[0]);
        } else if (exited) {
          clearTimeout(deadline);
          reject(new Error(`Node-RED exited while waiting for ${pattern}; log:\n${output}`));
        } else waiters.push(check);
      };
      check();
    });

  const api: NodeRedProcess["api"] = async (method, path, body, o = {}) => {
    const headers: Record<string, string> = { "Node-RED-API-Version": "v2", Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (bearer && !o.anonymous) headers.Authorization = `Bearer ${bearer}`;
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed };
  };

  await waitForLog(/Server now running at/);
  if (opts.adminAuth) {
    const res = await fetch(`${url}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-admin",
        grant_type: "password",
        scope: "*",
        username: opts.adminAuth.username,
        password: opts.adminAuth.password,
      }),
    });
    bearer = ((await res.json()) as { access_token: string }).access_token;
  }

  return {
    url,
    child,
    log: () => output,
    waitForLog,
    api,
    async deploy(flows) {
      const res = await api("POST", "/flows", { flows });
      if (res.status !== 200) throw new Error(`deploy failed: ${res.status} ${JSON.stringify(res.body)}`);
    },
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    },
    kill() {
      if (exited) return Promise.resolve();
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      return gone;
    },
  };
}
