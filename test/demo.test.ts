// The README's start command: `npm start` (scripts/demo.ts) brings up Node-RED with the pack and
// the stand-ins, and a dropped sample alarm email is ACKed by the local DC-09 receiver. Run with
// the Graph mailbox stand-in, the one that needs nothing but Node, and with Dovecot when present.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { dovecotAvailable } from "./standin/dovecot";
import { REPO_ROOT, RUN_DIR } from "./standin/paths";
import { freePort } from "./standin/ports";

async function runDemo(mode: "graph" | "imap"): Promise<void> {
  const userDir = join(RUN_DIR, `demo-test-${mode}`);
  rmSync(userDir, { recursive: true, force: true });
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", "demo.ts")], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), DEMO_MAILBOX: mode, DEMO_USER_DIR: userDir },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const seen = (pattern: RegExp, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${pattern}; output:\n${output}`)),
        timeoutMs,
      );
      const check = () => {
        if (pattern.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
        check();
      });
      child.stderr?.on("data", (d: Buffer) => {
        output += d.toString();
      });
      check();
    });
  try {
    await seen(/Click 'Drop a sample alarm email'/, 60_000);
    // What the inject node in the demo flow does: ask the demo's page to drop an alarm email.
    const res = await fetch("http://127.0.0.1:18080/send-alarm", { method: "POST" });
    assert.equal(res.status, 200, await res.text());
    await seen(/DC-09 receiver: SIA-DCS #123588 \[#123588\|Nri1\/BA01\] → ACK/, 30_000);
    assert.doesNotMatch(output, /Xq8~secret/, "the client secret never reaches the console");
  } finally {
    try {
      process.kill(-(child.pid ?? 0), "SIGTERM");
    } catch {
      // already gone
    }
    await new Promise((r) => child.once("exit", r).once("error", r));
  }
}

describe("npm start (the demo)", () => {
  it("with the Graph mailbox stand-in (nothing but Node): a dropped alarm email is ACKed by the receiver", async () => {
    await runDemo("graph");
  });

  it("with the Dovecot IMAP stand-in: a dropped alarm email is ACKed by the receiver", {
    skip: !dovecotAvailable() && "Dovecot not installed",
  }, async () => {
    await runDemo("imap");
  });
});
