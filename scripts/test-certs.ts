// Creates the test CA before any test process starts: Node reads NODE_EXTRA_CA_CERTS only at start-up.
import { chmodSync, mkdirSync } from "node:fs";
import { ensureTestCertificates } from "../test/standin/certs";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";

mkdirSync(RUN_DIR, { recursive: true });
chmodSync(RUN_DIR, 0o755);
console.log(ensureTestCertificates(CERT_DIR).caPath);
