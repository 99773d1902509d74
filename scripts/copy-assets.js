// Node-RED looks for icons in icons/ beside each registered .js: copy the sources there.
const { cpSync, mkdirSync, rmSync } = require("node:fs");
const { join } = require("node:path");

const root = join(__dirname, "..");
const target = join(root, "nodes", "icons");
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
cpSync(join(root, "icons"), target, { recursive: true });
