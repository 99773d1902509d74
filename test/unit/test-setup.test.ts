// `npm test` on a fresh machine: what the set-up step does with and without the Debian packages, as
// root and not. The machine here already has them, so a host where they are missing is simulated; the
// script itself also runs for real (nothing missing, as root: it must do nothing and pass).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { POLICY_RC_D, type SetupHost, setUpTests } from "../../scripts/test-setup";
import { REPO_ROOT } from "../standin/paths";

interface FakeHost extends SetupHost {
  files: Set<string>;
  ran: string[];
  lines: string[];
  /** Whether policy-rc.d forbade service starts while apt-get install ran. */
  policyDuringInstall?: boolean;
}

function fakeHost(opts: { files: string[]; isRoot: boolean; aptInstalls?: string[] }): FakeHost {
  const host: FakeHost = {
    files: new Set(opts.files),
    ran: [],
    lines: [],
    path: "/usr/local/bin:/usr/bin:/bin",
    isRoot: opts.isRoot,
    exists: (p) => host.files.has(p),
    run(command, args, env) {
      host.ran.push(
        `${Object.entries(env)
          .map(([k, v]) => `${k}=${v} `)
          .join("")}${command} ${args.join(" ")}`,
      );
      if (args[0] === "install") {
        host.policyDuringInstall = host.files.has(POLICY_RC_D);
        for (const f of opts.aptInstalls ?? []) host.files.add(f);
      }
    },
    writeFile(path) {
      host.files.add(path);
    },
    remove(path) {
      host.files.delete(path);
    },
    log(line) {
      host.lines.push(line);
    },
  };
  return host;
}

const EVERYTHING = [
  "/usr/bin/openssl",
  "/usr/sbin/dovecot",
  "/usr/bin/doveadm",
  "/usr/bin/chromium",
  "/usr/bin/apt-get",
  "/usr/bin/git",
];

describe("npm test set-up (scripts/test-setup.ts)", () => {
  it("a fresh Debian machine as root: installs dovecot-imapd and chromium without starting a Dovecot", () => {
    const host = fakeHost({
      files: ["/usr/bin/openssl", "/usr/bin/apt-get", "/usr/bin/git"],
      isRoot: true,
      aptInstalls: ["/usr/sbin/dovecot", "/usr/bin/doveadm", "/usr/bin/chromium"],
    });
    assert.equal(setUpTests(host), 0);
    assert.deepEqual(host.ran, [
      "DEBIAN_FRONTEND=noninteractive apt-get update -qq",
      "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd chromium",
    ]);
    assert.equal(host.policyDuringInstall, true, "services may not start while the packages install");
    assert.equal(host.files.has(POLICY_RC_D), false, "the temporary policy-rc.d is gone afterwards");
  });

  it("keeps an administrator's own policy-rc.d", () => {
    const host = fakeHost({
      files: ["/usr/bin/openssl", "/usr/bin/apt-get", "/usr/bin/chromium", "/usr/bin/git", POLICY_RC_D],
      isRoot: true,
      aptInstalls: ["/usr/sbin/dovecot", "/usr/bin/doveadm"],
    });
    assert.equal(setUpTests(host), 0);
    assert.equal(host.files.has(POLICY_RC_D), true);
  });

  it("not root: prints the exact apt-get command, installs nothing and stops", () => {
    const host = fakeHost({ files: ["/usr/bin/apt-get", "/usr/bin/chromium", "/usr/bin/git"], isRoot: false });
    assert.equal(setUpTests(host), 1);
    assert.deepEqual(host.ran, []);
    assert.ok(
      host.lines.includes(
        "    sudo apt-get update && sudo apt-get install -y --no-install-recommends openssl dovecot-imapd",
      ),
      host.lines.join("\n"),
    );
  });

  it("not root with everything installed: says the Dovecot tests need root and stops", () => {
    const host = fakeHost({ files: EVERYTHING, isRoot: false });
    assert.equal(setUpTests(host), 1);
    assert.match(host.lines.join("\n"), /needs root/);
  });

  it("a package that apt-get did not provide fails the set-up", () => {
    const host = fakeHost({
      files: ["/usr/bin/openssl", "/usr/bin/apt-get", "/usr/bin/chromium", "/usr/bin/git"],
      isRoot: true,
    });
    assert.equal(setUpTests(host), 1);
    assert.match(host.lines.join("\n"), /still missing after apt-get: \/usr\/sbin\/dovecot/);
  });

  it("on this machine (root, packages installed) the real script does nothing and passes", () => {
    const out = execFileSync(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", "test-setup.ts")], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    assert.equal(out, "");
  });
});

describe(".ci/run", () => {
  it("runs npm ci and the README's test command, and stops no process by name", async () => {
    const { readFileSync } = await import("node:fs");
    const script = readFileSync(join(REPO_ROOT, ".ci", "run"), "utf8");
    const commands = script
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#") && !l.startsWith("set ") && !l.startsWith("cd "));
    assert.deepEqual(commands, ["npm ci --no-audit --no-fund", "npm test"]);
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    assert.match(readme, /^ {4}npm test\b/m, "the README's test command is npm test");
  });
});
