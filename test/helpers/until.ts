// Polls a condition that a socket, a node or a child process will make true soon.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

export async function until(check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
