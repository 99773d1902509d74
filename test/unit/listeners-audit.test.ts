// Every place the pack listens or takes datagrams, known and reviewed (issue #20 point 2: "look at every
// socket and route the pack opens"). Admin routes have their own check (soak/admin-permissions.ts); this one
// fails when a new listener appears, so whoever adds it decides who may reach it and says so in SECURITY.md.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { it } from "node:test";
import { REPO_ROOT } from "../standin/paths";

/** What opens a port or receives from the network without having dialled a chosen peer. */
const LISTENING =
  /\bcreateServer\(|\bcreateSocket\(|\.listen\(|\bhttpNode\b|\bRED\.server\b|WebSocketServer|\bcreateSecureServer\(/g;

/** file → what it does there, and why that is safe. */
const REVIEWED: Record<string, { calls: string[]; why: string }> = {
  "src/core/surgard/surgard-link.ts": {
    calls: ["createServer(", ".listen("],
    why: "Sur-Gard server role: loopback unless addresses are allowed; others closed unheard; a live line that answers is kept",
  },
  "src/core/surgard/surgard-transmitter.ts": { calls: [".listen("], why: "starts the SurgardLink above" },
  "src/core/delivery/link-test.ts": {
    calls: [".listen("],
    why: "the editor's Test (line-driver.write): the SurgardLink above, same allow-list, for at most 30 s",
  },
  "src/core/media/media-server.ts": {
    calls: [".listen("],
    why: "alarm evidence: a bind address the centre sets (no default of all interfaces), GET/HEAD of signed, expiring links only; no listing",
  },
  "src/alarm-gateway-panel.ts": {
    calls: ["httpNode"],
    why: "metrics on Node-RED's HTTP server only when settings.js asks for it (alarmGateway.metricsOnHttpNode), behind httpNodeAuth",
  },
  "src/core/dc09/link.ts": {
    calls: ["createSocket("],
    why: "DC-09 over UDP: a connected socket, the kernel passes up only the receiver's datagrams",
  },
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

it("listens only where reviewed: the Sur-Gard server role, its Test, and the DC-09 UDP socket", () => {
  const found: Record<string, string[]> = {};
  for (const path of sources(join(REPO_ROOT, "src"))) {
    const calls = [...readFileSync(path, "utf8").matchAll(LISTENING)].map((m) => m[0]);
    if (calls.length > 0) found[relative(REPO_ROOT, path)] = [...new Set(calls)].sort();
  }
  const expected = Object.fromEntries(Object.entries(REVIEWED).map(([file, r]) => [file, [...r.calls].sort()]));
  assert.deepEqual(
    found,
    expected,
    "a listener was added or removed: decide who may reach it, update REVIEWED here and the table in SECURITY.md",
  );
});
