// `npm test` starts here (pretest): the suite needs Debian's openssl (test CA), dovecot-imapd (a private
// Dovecot per test plays Exchange IMAP), chromium (editor tests) and git, and root (Dovecot drops privileges
// itself). As root, missing packages are installed with apt-get; otherwise the exact command is printed
// and the run stops. Nothing already running is stopped: the tests start private Dovecots on free ports
// with their own base_dir, so a system Dovecot does not get in their way.
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";

export interface Requirement {
  /** What the tests use it for. */
  why: string;
  /** Files that must exist; a bare name is looked up on PATH. */
  files: string[];
  /** The Debian package that provides them. */
  debianPackage: string;
}

export const REQUIREMENTS: Requirement[] = [
  { why: "test certificate authority", files: ["openssl"], debianPackage: "openssl" },
  {
    why: "Exchange IMAP stand-in (a private Dovecot per test)",
    files: ["/usr/sbin/dovecot", "/usr/bin/doveadm"],
    debianPackage: "dovecot-imapd",
  },
  { why: "editor tests (headless Chromium)", files: ["/usr/bin/chromium"], debianPackage: "chromium" },
  { why: "the clean-checkout npm pack test (git ls-files)", files: ["git"], debianPackage: "git" },
];

/** Debian's policy-rc.d hook: exit 101 forbids maintainer scripts to start services (invoke-rc.d(8)). */
export const POLICY_RC_D = "/usr/sbin/policy-rc.d";

export interface SetupHost {
  exists(path: string): boolean;
  /** PATH of the environment the tests run in. */
  path: string;
  isRoot: boolean;
  run(command: string, args: string[], env: Record<string, string>): void;
  writeFile(path: string, text: string, mode: number): void;
  remove(path: string): void;
  log(line: string): void;
}

function present(host: SetupHost, file: string): boolean {
  if (file.includes("/")) return host.exists(file);
  return host.path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => host.exists(join(dir, file)));
}

export function missingRequirements(host: SetupHost, requirements = REQUIREMENTS): Requirement[] {
  return requirements.filter((r) => !r.files.every((f) => present(host, f)));
}

export function installCommand(packages: string[]): string {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages.join(" ")}`;
}

/**
 * Makes the machine ready for the suite. Returns the exit code: 0 ready, 1 the user has something to do
 * (said on the log).
 */
export function setUpTests(host: SetupHost, requirements = REQUIREMENTS): number {
  const missing = missingRequirements(host, requirements);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((r) => r.debianPackage))];
    for (const r of missing) host.log(`test set-up: ${r.debianPackage} is missing (${r.why})`);
    if (!host.isRoot) {
      host.log("test set-up: install it and run the tests again:");
      host.log(`    ${installCommand(packages)}`);
      return 1;
    }
    if (!host.exists("/usr/bin/apt-get")) {
      host.log(`test set-up: no apt-get here; install the Debian packages ${packages.join(", ")} or their equivalent`);
      return 1;
    }
    host.log(`test set-up: apt-get install ${packages.join(" ")}`);
    // dovecot-imapd's maintainer script would start the system Dovecot; the tests need only the binaries.
    // An administrator's own policy stays as it is.
    const ownPolicy = !host.exists(POLICY_RC_D);
    if (ownPolicy)
      host.writeFile(POLICY_RC_D, "#!/bin/sh\n# written by npm test set-up, removed after apt-get\nexit 101\n", 0o755);
    try {
      const env = { DEBIAN_FRONTEND: "noninteractive" };
      host.run("apt-get", ["update", "-qq"], env);
      host.run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], env);
    } finally {
      if (ownPolicy) host.remove(POLICY_RC_D);
    }
    const still = missingRequirements(host, requirements);
    if (still.length > 0) {
      host.log(`test set-up: still missing after apt-get: ${still.map((r) => r.files.join(", ")).join("; ")}`);
      return 1;
    }
  }
  if (!host.isRoot) {
    host.log("test set-up: the IMAP tests start private Dovecot servers, which needs root (Dovecot drops");
    host.log("privileges itself): run the tests as root, e.g. `sudo npm test` or in a container.");
    return 1;
  }
  return 0;
}

export const realHost: SetupHost = {
  exists: existsSync,
  path: process.env.PATH ?? "",
  isRoot: process.getuid?.() === 0,
  run(command, args, env) {
    execFileSync(command, args, { stdio: "inherit", env: { ...process.env, ...env } });
  },
  writeFile(path, text, mode) {
    writeFileSync(path, text, { mode, flag: "wx" });
  },
  remove(path) {
    rmSync(path, { force: true });
  },
  log(line) {
    console.log(line);
  },
};

if (require.main === module) process.exitCode = setUpTests(realHost);
