// The id a gateway goes by in the shared mailbox (its lease and its claim folder). Kept in the
// Node-RED user directory, so that a restart resumes its own claim folder; a copied user
// directory gives two processes the same id, which the shared watcher detects and renews.
import { randomBytes } from "node:crypto";
import { open, readFile, rename } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { PRIVATE_FILE_MODE, privateDir, privateFile } from "../private-files";

const FILE = "instance-id";
const VALID = /^[A-Za-z0-9-]{1,64}$/;

/** `<hostname, [A-Za-z0-9-] only, at most 20 chars>-<6 random hex>`: readable in a folder list, unique. */
export function newIdentity(host: string = hostname()): string {
  const name =
    host
      .replace(/[^A-Za-z0-9-]+/g, "-")
      .slice(0, 20)
      .replace(/^-+|-+$/g, "") || "gateway";
  return `${name}-${randomBytes(3).toString("hex")}`;
}

/** Reads `<dir>/instance-id`, or creates it (0600, in a 0700 directory) when missing or invalid. */
export async function loadOrCreateIdentity(dir: string): Promise<string> {
  await privateDir(dir);
  const known = await readFile(join(dir, FILE), "utf8").then(
    (text) => text.trim(),
    () => "",
  );
  if (VALID.test(known)) return known;
  return renewIdentity(dir);
}

/** Writes a fresh id in place of the old one (atomically) and returns it. */
export async function renewIdentity(dir: string): Promise<string> {
  await privateDir(dir);
  const id = newIdentity();
  const path = join(dir, FILE);
  const temp = `${path}.${process.pid}.tmp`;
  const file = await open(temp, "w", PRIVATE_FILE_MODE);
  try {
    await privateFile(file);
    await file.writeFile(`${id}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  return id;
}
