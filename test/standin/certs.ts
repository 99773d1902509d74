// A throw-away certificate authority and a leaf certificate for localhost/127.0.0.1,
// made with the openssl CLI. Stand-ins serve HTTPS/IMAPS with the leaf; clients trust
// the CA through the same settings real users have (NODE_EXTRA_CA_CERTS, an extra CA).
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  caPath: string;
  certPath: string;
  keyPath: string;
  ca: string;
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

/** Creates (or reuses) CA + localhost leaf in `dir`. Files are world-readable so Dovecot can read them. */
export function ensureTestCertificates(dir: string): TestCertificates {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const caPath = join(dir, "ca.pem");
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  if (!existsSync(caPath) || !existsSync(certPath) || !existsSync(keyPath)) {
    openssl(
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=alarm-gateway test CA"]
        .concat(["-keyout", "ca-key.pem", "-out", "ca.pem"])
        .concat(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
      dir,
    );
    openssl(
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr"],
      dir,
    );
    writeFileSync(
      join(dir, "leaf.ext"),
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "3650",
      ].concat(["-out", "cert.pem", "-extfile", "leaf.ext"]),
      dir,
    );
    for (const f of ["ca.pem", "cert.pem", "key.pem"]) chmodSync(join(dir, f), 0o644);
  }
  return {
    dir,
    caPath,
    certPath,
    keyPath,
    ca: readFileSync(caPath, "utf8"),
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
  };
}
