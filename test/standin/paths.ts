// Where stand-ins keep generated files: inside the repo, git-ignored, traversable by Dovecot.
import { join } from "node:path";

export const REPO_ROOT = join(__dirname, "..", "..");
export const RUN_DIR = join(REPO_ROOT, ".run");
export const CERT_DIR = join(RUN_DIR, "certs");
