// A private instance of the real Debian Dovecot IMAP server on loopback, standing in for
// Office 365 IMAP: XOAUTH2 with app-only tokens validated locally (oauth2 passdb), Exchange
// folder names, plus PLAIN users and an internal master user for fast test-side APPENDs.
// Needs root (Dovecot drops privileges itself). See /work/shared/standin.md for the recipe.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect as netConnect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { ImapFlow } from "imapflow";
import type { TestCertificates } from "./certs";
import { freePort } from "./ports";

export interface DovecotOptions {
  runDir: string;
  certs: TestCertificates;
  tenantId: string;
  /** More tenants whose tokens log in (a service provider's app consented in each customer's tenant). */
  moreTenantIds?: string[];
  audience: string;
  signingKeys: { kid: string; publicKeyPem: string }[];
  mailboxes: string[];
  passwordUsers?: { user: string; password: string }[];
  imapsPort?: number;
  imapPort?: number;
  extraFolders?: string[];
  /** Overrides the detected oauth2 setting name that checks `aud` (see oauth2AudienceSetting). */
  audienceSetting?: "audience" | "scope";
  /** Readiness timeout for start(), default 10 s. */
  startTimeoutMs?: number;
  /**
   * What CAPABILITY lists, before and after login. Default "exchange": Exchange Online's list, so a
   * client that relies on more (CONDSTORE, ESEARCH, ENABLE...) fails here as it would in Office 365;
   * "exchange-imap4rev2" adds `ENABLE IMAP4rev2`, as some tenants do since 2026; "dovecot": Dovecot's own.
   */
  capabilities?: "exchange" | "exchange-imap4rev2" | "dovecot";
  /** Records every logged-in IMAP session's traffic (Dovecot rawlog), read with protocolLog(). */
  protocolLog?: boolean;
}

export interface DovecotServer {
  host: "127.0.0.1";
  imapsPort: number;
  imapPort: number;
  logPath: string;
  audience: string;
  runDir: string;
  confPath: string;
  /** Which oauth2 setting carries the audience on this Dovecot build. */
  audienceSetting: "audience" | "scope";
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  append(mailbox: string, raw: string | Buffer, opts?: { folder?: string; flags?: string[] }): Promise<number>;
  resetUidValidity(mailbox: string, folder?: string): Promise<void>;
  list(
    mailbox: string,
    folder?: string,
  ): Promise<{ uid: number; flags: string[]; messageId?: string; subject?: string }[]>;
  /** Trusts one more RS256 key (key rotation tests); takes effect for new kids at once. */
  addSigningKey(kid: string, publicKeyPem: string): void;
  /** Last lines of the Dovecot log (and master stderr), for failure messages. */
  logTail(lines?: number): string;
  /**
   * Every IMAP session's traffic after login so far, in session order (empty unless started with
   * protocolLog): what the clients sent, and what the server answered (from the login's tagged OK on).
   */
  protocolLog(): { client: string; server: string };
}

const DOVECOT = "/usr/sbin/dovecot";
const DOVEADM = "/usr/bin/doveadm";
const AUTH_BINARY = "/usr/lib/dovecot/auth";
const DH_PEM = "/usr/share/dovecot/dh.pem";
const MASTER_USER = "standin-admin";
// Exchange Online's CAPABILITY after login, as public client logs show it (MailKit issues #1437 and
// #2016; before login MOVE and the Exchange-only names may be missing). Dovecot's login process adds
// the AUTH= mechanisms of auth_mechanisms itself; the Exchange-only names are never used by clients.
const EXCHANGE_CAPABILITIES =
  "IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION " +
  "BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+";
// Some tenants since 2026 (MailKit #2016): `... UNSELECT ENABLE IMAP4rev2 CLIENTACCESSRULES ...`.
const EXCHANGE_REV2_CAPABILITIES = EXCHANGE_CAPABILITIES.replace("UNSELECT", "UNSELECT ENABLE IMAP4rev2");

const EXCHANGE_FOLDERS: { name: string; specialUse: string }[] = [
  { name: "Sent Items", specialUse: "\\Sent" },
  { name: "Deleted Items", specialUse: "\\Trash" },
  { name: "Junk Email", specialUse: "\\Junk" },
  { name: "Drafts", specialUse: "\\Drafts" },
];

export function dovecotAvailable(): boolean {
  return existsSync(DOVECOT);
}

let detectedSetting: "audience" | "scope" | undefined;

/**
 * deb12u7 (CVE fix) added oauth2 `audience`; on deb12u6 that key is unknown (auth does not start)
 * and `scope` is what checks `aud`. The auth binary's setting table is the ground truth; the
 * package version is the fallback.
 */
export function oauth2AudienceSetting(): "audience" | "scope" {
  if (detectedSetting) return detectedSetting;
  let found: "audience" | "scope" | undefined;
  try {
    found = readFileSync(AUTH_BINARY).includes(Buffer.from("\0audience\0")) ? "audience" : "scope";
  } catch {
    try {
      const version = readFileSync("/var/lib/dpkg/status", "utf8")
        .split("\n\n")
        .find((block) => /^Package: dovecot-core$/m.test(block))
        ?.match(/^Version: (.*)$/m)?.[1];
      const u = version?.match(/\+deb12u(\d+)/);
      found = u && Number(u[1]) >= 7 ? "audience" : "scope";
    } catch {
      found = "audience";
    }
  }
  detectedSetting = found;
  return found;
}

// --- process helpers --------------------------------------------------------------------------

/** Live (non-zombie) processes of a process group; PID 1 here may not reap orphans. */
function liveGroupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") pids.push(Number(name));
  }
  return pids;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // group already gone
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(stepMs);
  }
}

function portClosed(port: number): Promise<boolean> {
  return new Promise((resolveClosed) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.setTimeout(500);
    socket.once("connect", () => {
      socket.destroy();
      resolveClosed(false);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolveClosed(false);
    });
    socket.once("error", () => resolveClosed(true));
  });
}

/** Connects with TLS (verifying against the test CA) and waits for the "* OK" greeting. */
function greeting(port: number, ca: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveOk) => {
    let buffer = "";
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolveOk(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      if (buffer.includes("\r\n")) done(buffer.startsWith("* OK"));
    });
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(file, args, { timeout: 15000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(" ")} failed: ${stderr || error.message}`));
      else resolveRun(stdout);
    });
  });
}

// Kill leftover instances at process exit: the master runs detached in its own group.
const runningGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const pgid of runningGroups) signalGroup(pgid, "SIGKILL");
  });
}

// --- config -----------------------------------------------------------------------------------

function checkName(what: string, value: string, pattern: RegExp): void {
  if (!pattern.test(value)) throw new Error(`dovecot stand-in: unsupported ${what} ${JSON.stringify(value)}`);
}

/** Dovecot (user dovecot, mail user nobody) must traverse every parent of the run dir. */
function makeTraversable(dir: string): void {
  let current = resolve(dir);
  for (;;) {
    const mode = statSync(current).mode;
    if ((mode & 0o001) === 0) chmodSync(current, (mode & 0o7777) | 0o011);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
}

function nobodyIds(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("nobody:"));
  const parts = line?.split(":") ?? [];
  return { uid: Number(parts[2] ?? 65534), gid: Number(parts[3] ?? 65534) };
}

interface Layout {
  run: string;
  conf: string;
  log: string;
  stderr: string;
  base: string;
  keys: string;
}

function layoutOf(runDir: string): Layout {
  const run = resolve(runDir);
  return {
    run,
    conf: join(run, "dovecot.conf"),
    log: join(run, "dovecot.log"),
    stderr: join(run, "dovecot.stderr"),
    base: join(run, "base"),
    keys: join(run, "oauth2-keys", "default", "RS256"),
  };
}

function mainConfig(o: {
  l: Layout;
  instance: string;
  certs: TestCertificates;
  imapPort: number;
  imapsPort: number;
  mailboxes: string[];
  folders: { name: string; specialUse?: string }[];
  capabilities: NonNullable<DovecotOptions["capabilities"]>;
  protocolLog: boolean;
}): string {
  const { l } = o;
  const capability =
    o.capabilities === "dovecot"
      ? ""
      : `imap_capability = ${o.capabilities === "exchange" ? EXCHANGE_CAPABILITIES : EXCHANGE_REV2_CAPABILITIES}\n`;
  // %{auth_user} is who authenticated: the stand-in's own master-user sessions would land in
  // rawlog/<master user>/, which does not exist, so Dovecot records only the clients under test.
  const rawlog = o.protocolLog ? `  rawlog_dir = ${join(l.run, "rawlog")}/%{auth_user}\n` : "";
  // Only XOAUTH2 logins for configured mailboxes pass; others fail like Exchange.
  const deny = o.mailboxes.length > 0 ? `  username_filter = ${o.mailboxes.map((m) => `!${m}`).join(" ")}\n` : "";
  const folders = o.folders
    .map((f) => {
      const special = f.specialUse ? `    special_use = ${f.specialUse}\n` : "";
      return `  mailbox "${f.name}" {\n${special}    auto = subscribe\n  }\n`;
    })
    .join("");
  return `# Generated by test/standin/dovecot.ts: Office 365 IMAP stand-in. Do not edit.
instance_name = ${o.instance}
base_dir = ${l.base}
state_dir = ${join(l.run, "state")}
log_path = ${l.log}
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
login_greeting = The Microsoft Exchange IMAP4 service is ready.
${capability}ssl = yes
ssl_cert = <${o.certs.certPath}
ssl_key = <${o.certs.keyPath}
ssl_dh = <${DH_PEM}
disable_plaintext_auth = no
auth_mechanisms = xoauth2 plain login
auth_failure_delay = 0
auth_verbose = yes
auth_master_user_separator = *
mail_location = maildir:${l.run}/mail/%d/%n/Maildir
mail_uid = nobody
mail_gid = nogroup

namespace inbox {
  inbox = yes
  separator = /
${folders}}

passdb {
  driver = static
  mechanisms = xoauth2
${deny}  deny = yes
}
passdb {
  driver = oauth2
  mechanisms = xoauth2
  args = ${join(l.run, "dovecot-oauth2.conf.ext")}
}
passdb {
  driver = passwd-file
  master = yes
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u ${join(l.run, "master-users")}
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u ${join(l.run, "passwd")}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${join(l.run, "users")}
  default_fields = home=${l.run}/mail/%d/%n
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${o.imapPort}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${o.imapsPort}
    ssl = yes
  }
}
# Exchange takes connections from hundreds of mailboxes at once; Dovecot's default of 100 processes per
# service would refuse a service provider's gateway before Exchange would.
default_process_limit = 1000
default_client_limit = 5000
# No 2-15 s auth penalty after failed logins: tests provoke many.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
protocol imap {
  mail_max_userip_connections = 50
${rawlog}}
`;
}

// --- the server -------------------------------------------------------------------------------

type ListedMessage = { uid: number; flags: string[]; messageId?: string; subject?: string };

class DovecotInstance implements DovecotServer {
  readonly host = "127.0.0.1" as const;
  imapsPort = 0;
  imapPort = 0;
  readonly logPath: string;
  readonly audience: string;
  readonly runDir: string;
  readonly confPath: string;
  readonly audienceSetting: "audience" | "scope";
  private readonly l: Layout;
  private readonly instance: string;
  private readonly masterPassword = randomBytes(12).toString("hex");
  private readonly mailboxes: string[];
  private readonly folders: { name: string; specialUse?: string }[];
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private admins = new Map<string, Promise<ImapFlow>>();

  constructor(private readonly o: DovecotOptions) {
    this.l = layoutOf(o.runDir);
    this.runDir = this.l.run;
    this.confPath = this.l.conf;
    this.logPath = this.l.log;
    this.audience = o.audience;
    this.audienceSetting = o.audienceSetting ?? oauth2AudienceSetting();
    this.instance = `o365-standin-${randomBytes(4).toString("hex")}`;
    this.mailboxes = o.mailboxes.map((m) => m.toLowerCase());
    this.folders = [...EXCHANGE_FOLDERS, ...(o.extraFolders ?? []).map((name) => ({ name }))];
    this.imapPort = o.imapPort ?? 0;
    this.imapsPort = o.imapsPort ?? 0;
  }

  /** Wipes the run dir and writes config, keys, users. Called once, before the first start. */
  async prepare(): Promise<void> {
    const { l, o } = this;
    for (const m of this.mailboxes) checkName("mailbox", m, /^[a-z0-9._+-]+@[a-z0-9.-]+$/);
    for (const f of this.folders) checkName("folder", f.name, /^[^"\\/*%\r\n]+$/);
    for (const u of o.passwordUsers ?? []) {
      checkName("password user", u.user.toLowerCase(), /^[a-z0-9._+-]+(@[a-z0-9.-]+)?$/);
      checkName("password", u.password, /^[^:\r\n]+$/);
    }
    checkName("tenant id", o.tenantId, /^[A-Za-z0-9.-]+$/);
    killStale(l);
    rmSync(l.run, { recursive: true, force: true });
    mkdirSync(l.run, { recursive: true });
    makeTraversable(l.run);
    chmodSync(l.run, 0o755);
    mkdirSync(join(l.run, "state"), { recursive: true });
    const mail = join(l.run, "mail");
    mkdirSync(mail);
    const nobody = nobodyIds();
    chownSync(mail, nobody.uid, nobody.gid);
    if (o.protocolLog) {
      // Written by the imap process, which runs as the mail user.
      for (const m of this.mailboxes) {
        mkdirSync(join(this.rawlogDir, m), { recursive: true });
        chownSync(join(this.rawlogDir, m), nobody.uid, nobody.gid);
      }
    }
    mkdirSync(l.keys, { recursive: true, mode: 0o755 });
    for (const dir of [join(l.run, "oauth2-keys"), join(l.run, "oauth2-keys", "default"), l.keys]) {
      chmodSync(dir, 0o755); // read by the auth process as user dovecot
    }
    for (const k of o.signingKeys) this.addSigningKey(k.kid, k.publicKeyPem);

    writeFileSync(
      join(l.run, "dovecot-oauth2.conf.ext"),
      [
        "introspection_mode = local",
        `local_validation_key_dict = fs:posix:prefix=${join(l.run, "oauth2-keys")}/`,
        // Space separated: every tenant whose tokens this server takes.
        `issuers = ${[o.tenantId, ...(o.moreTenantIds ?? [])].map((t) => `https://sts.windows.net/${t}/`).join(" ")}`,
        `${this.audienceSetting} = ${o.audience}`,
        // App-only tokens name no mailbox: accept any user= once the token is valid.
        "username_attribute = tid",
        "username_format = app-only-token",
        "active_attribute =",
        "active_value =",
        "",
      ].join("\n"),
      { mode: 0o644 },
    );
    const passwordUsers = (o.passwordUsers ?? []).map((u) => ({ user: u.user.toLowerCase(), password: u.password }));
    writeFileSync(join(l.run, "passwd"), passwordUsers.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(""), {
      mode: 0o644,
    });
    writeFileSync(join(l.run, "master-users"), `${MASTER_USER}:{PLAIN}${this.masterPassword}\n`, { mode: 0o644 });
    const users = new Set([...this.mailboxes, ...passwordUsers.map((u) => u.user)]);
    writeFileSync(join(l.run, "users"), [...users].map((u) => `${u}::::::\n`).join(""), { mode: 0o644 });
    await this.pickPorts();
  }

  addSigningKey(kid: string, publicKeyPem: string): void {
    checkName("kid", kid, /^[A-Za-z0-9_-]+$/);
    writeFileSync(join(this.l.keys, kid), publicKeyPem, { mode: 0o644 });
  }

  /** Picks the ports not given in the options and writes dovecot.conf. */
  private async pickPorts(): Promise<void> {
    const { imapPort, imapsPort } = this.o;
    if (imapPort && imapPort === imapsPort) throw new Error("dovecot stand-in: imapPort equals imapsPort");
    this.imapPort = imapPort || (await freePort());
    this.imapsPort = imapsPort || (await freePort());
    while (this.imapsPort === this.imapPort) {
      if (imapsPort) this.imapPort = await freePort();
      else this.imapsPort = await freePort();
    }
    writeFileSync(
      this.l.conf,
      mainConfig({
        l: this.l,
        instance: this.instance,
        certs: this.o.certs,
        imapPort: this.imapPort,
        imapsPort: this.imapsPort,
        mailboxes: this.mailboxes,
        folders: this.folders,
        capabilities: this.o.capabilities ?? "exchange",
        protocolLog: this.o.protocolLog ?? false,
      }),
      { mode: 0o644 },
    );
  }

  private get rawlogDir(): string {
    return join(this.l.run, "rawlog");
  }

  protocolLog(): { client: string; server: string } {
    const dirs = this.mailboxes.map((m) => join(this.rawlogDir, m)).filter((d) => existsSync(d));
    // <date>-<time>.<pid>.<n>.in holds what a client sent, .out what the server answered.
    const files = dirs.flatMap((d) => readdirSync(d).map((f) => ({ d, f }))).sort((a, b) => (a.f < b.f ? -1 : 1));
    const read = (suffix: string) =>
      files
        .filter(({ f }) => f.endsWith(suffix))
        .map(({ d, f }) => readFileSync(join(d, f), "utf8"))
        .join("");
    return { client: read(".in"), server: read(".out") };
  }

  logTail(lines = 30): string {
    const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8").trimEnd().split("\n") : []);
    return [...read(this.l.stderr).slice(-10), ...read(this.l.log).slice(-lines)].join("\n");
  }

  async start(): Promise<void> {
    if (this.child) return;
    for (let attempt = 0; ; attempt++) {
      const conflict = await this.spawnOnce();
      if (conflict === undefined) return;
      // A port we picked ourselves was taken meanwhile: pick again, but only before the first
      // successful start (restarts must keep their ports).
      const picked = conflict !== this.o.imapPort && conflict !== this.o.imapsPort;
      if (!picked || this.everStarted || attempt >= 3) {
        throw new Error(`dovecot stand-in: port ${conflict} is in use:\n${this.logTail()}`);
      }
      await this.pickPorts();
    }
  }

  private everStarted = false;

  /** Starts the master and waits for the greeting. Returns the conflicting port if a listen failed. */
  private async spawnOnce(): Promise<number | undefined> {
    rmSync(this.l.base, { recursive: true, force: true }); // stale sockets/pid after kill()
    const errFd = openSync(this.l.stderr, "a");
    const errStart = statSync(this.l.stderr).size;
    let child: ChildProcess;
    try {
      // -F keeps the master as our child; detached gives it its own process group for kill().
      child = spawn(DOVECOT, ["-F", "-c", this.l.conf], { detached: true, stdio: ["ignore", errFd, errFd] });
    } finally {
      closeSync(errFd);
    }
    const pgid = child.pid;
    if (pgid === undefined) throw new Error("dovecot stand-in: spawn failed");
    child.unref();
    installExitHook();
    runningGroups.add(pgid);
    this.child = child;
    let gone = false;
    this.exited = new Promise<void>((resolveExit) => {
      child.once("exit", () => {
        gone = true;
        resolveExit();
      });
      child.once("error", () => {
        gone = true;
        resolveExit();
      });
    });
    // Startup errors reach the master's stderr; fail fast instead of waiting out Dovecot's listen retries.
    const startupErrors = () => readFileSync(this.l.stderr).subarray(errStart).toString("utf8");
    const failed = (text: string) => /Fatal:|Address already in use/.test(text);
    const ready = await waitUntil(
      async () => gone || failed(startupErrors()) || (await greeting(this.imapsPort, this.o.certs.ca, 1000)),
      this.o.startTimeoutMs ?? 10000,
      50,
    );
    const errors = startupErrors();
    if (ready && !gone && !failed(errors)) {
      this.everStarted = true;
      return undefined;
    }
    await this.terminate("SIGKILL", false); // the ports may belong to someone else
    const inUse = errors.match(/listen\(127\.0\.0\.1, (\d+)\) failed: Address already in use/);
    if (inUse) return Number(inUse[1]);
    throw new Error(`dovecot stand-in did not become ready on port ${this.imapsPort}:\n${this.logTail()}`);
  }

  private async closeAdmins(hard: boolean): Promise<void> {
    const clients = [...this.admins.values()];
    this.admins.clear();
    await Promise.all(
      clients.map(async (pending) => {
        try {
          const client = await pending;
          if (hard) client.close();
          else await Promise.race([client.logout(), sleep(1000)]).finally(() => client.close());
        } catch {
          // login failed earlier or connection already gone
        }
      }),
    );
  }

  private async terminate(signal: "SIGTERM" | "SIGKILL", waitForPorts = true): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    const pgid = child.pid;
    if (signal === "SIGTERM") child.kill("SIGTERM");
    else signalGroup(pgid, "SIGKILL");
    const exited = await Promise.race([this.exited?.then(() => true), sleep(5000).then(() => false)]);
    if (!exited) signalGroup(pgid, "SIGKILL");
    await this.exited;
    // Children die with the master; make sure, then wait for the listener to disappear.
    if (!(await waitUntil(() => liveGroupMembers(pgid).length === 0, 3000))) signalGroup(pgid, "SIGKILL");
    await waitUntil(() => liveGroupMembers(pgid).length === 0, 3000);
    if (waitForPorts) {
      await waitUntil(async () => (await portClosed(this.imapsPort)) && (await portClosed(this.imapPort)), 3000);
    }
    runningGroups.delete(pgid);
    this.child = undefined;
    this.exited = undefined;
  }

  async stop(): Promise<void> {
    await this.closeAdmins(false);
    await this.terminate("SIGTERM");
  }

  async kill(): Promise<void> {
    await this.closeAdmins(true);
    await this.terminate("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** One persistent master-user session per mailbox, over the cleartext port (loopback). */
  private admin(mailbox: string): Promise<ImapFlow> {
    const key = mailbox.toLowerCase();
    const existing = this.admins.get(key);
    if (existing) return existing;
    const pending = (async () => {
      if (!this.child) throw new Error("dovecot stand-in is not running");
      const client = new ImapFlow({
        host: this.host,
        port: this.imapPort,
        secure: false,
        doSTARTTLS: false,
        auth: { user: `${key}*${MASTER_USER}`, pass: this.masterPassword },
        disableAutoIdle: true,
        logger: false,
      });
      // A dead session (restart, kill) is replaced on the next call.
      const forget = () => {
        if (this.admins.get(key) === pending) this.admins.delete(key);
      };
      client.on("error", forget);
      client.on("close", forget);
      try {
        await client.connect();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`dovecot stand-in: admin login for ${mailbox} failed (${message}); is it configured?`);
      }
      return client;
    })();
    pending.catch(() => this.admins.delete(key));
    this.admins.set(key, pending);
    return pending;
  }

  async append(
    mailbox: string,
    raw: string | Buffer,
    opts: { folder?: string; flags?: string[] } = {},
  ): Promise<number> {
    const client = await this.admin(mailbox);
    const result = await client.append(opts.folder ?? "INBOX", raw, opts.flags ?? []);
    if (!result || typeof result.uid !== "number") throw new Error("dovecot stand-in: APPEND returned no APPENDUID");
    return result.uid;
  }

  async list(mailbox: string, folder = "INBOX"): Promise<ListedMessage[]> {
    const client = await this.admin(mailbox);
    const lock = await client.getMailboxLock(folder, { readOnly: true });
    try {
      if (client.mailbox === false || client.mailbox.exists === 0) return [];
      const messages = await client.fetchAll("1:*", { uid: true, flags: true, envelope: true });
      return messages.map((m) => ({
        uid: m.uid,
        flags: [...(m.flags ?? [])],
        messageId: m.envelope?.messageId,
        subject: m.envelope?.subject,
      }));
    } finally {
      lock.release();
      // Leave nothing selected, so resetUidValidity never yanks a mailbox from under us.
      await client.mailboxClose().catch(() => false);
    }
  }

  async resetUidValidity(mailbox: string, folder = "INBOX"): Promise<void> {
    const client = await this.admin(mailbox);
    const before = await client.status(folder, { uidValidity: true });
    const old = before ? Number(before.uidValidity ?? 0) : 0;
    const next = Math.max(old + 1, Math.floor(Date.now() / 1000)) % 0x100000000 || 1;
    await run(DOVEADM, [
      "-c",
      this.l.conf,
      "mailbox",
      "update",
      "-u",
      mailbox.toLowerCase(),
      "--uid-validity",
      `${next}`,
      folder,
    ]);
    const after = await client.status(folder, { uidValidity: true });
    if (!after || Number(after.uidValidity ?? 0) === old) {
      throw new Error(`dovecot stand-in: UIDVALIDITY of ${folder} did not change (${old})`);
    }
  }
}

/** Kills an instance left running in this run dir by an earlier, crashed process. */
function killStale(l: Layout): void {
  const pidFile = join(l.base, "master.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!pid) return;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (cmdline.includes(l.conf)) {
      signalGroup(pid, "SIGKILL");
      process.kill(pid, "SIGKILL");
    }
  } catch {
    // not running
  }
}

export async function startDovecot(opts: DovecotOptions): Promise<DovecotServer> {
  if (!dovecotAvailable())
    throw new Error("dovecot stand-in: /usr/sbin/dovecot missing (apt-get install dovecot-imapd)");
  if (process.getuid?.() !== 0) throw new Error("dovecot stand-in: must run as root (Dovecot drops privileges itself)");
  const server = new DovecotInstance(opts);
  await server.prepare();
  await server.start();
  return server;
}
