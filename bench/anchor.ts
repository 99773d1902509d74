// The official node-red-node-email, the node users compare us with. Installed on demand into
// .run/anchor for benches only: it is not a dependency of the pack (its bundled dependencies
// also break `npm ci` when it sits in the lock file).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { RUN_DIR } from "../test/standin/paths";

export const ANCHOR_VERSION = "5.2.5";

export function ensureAnchorInstalled(): { name: string; dir: string } {
  const prefix = join(RUN_DIR, "anchor");
  const dir = join(prefix, "node_modules", "node-red-node-email");
  if (!existsSync(join(dir, "package.json"))) {
    mkdirSync(prefix, { recursive: true });
    execFileSync(
      "npm",
      ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, `node-red-node-email@${ANCHOR_VERSION}`],
      {
        stdio: "inherit",
      },
    );
  }
  return { name: "node-red-node-email", dir };
}
