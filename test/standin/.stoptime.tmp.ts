import { join } from "node:path";
import { ensureTestCertificates } from "/work/main/test/standin/certs";
import { startDovecot } from "/work/main/test/standin/dovecot";
(async () => {
  const base = "/tmp/stoptime";
  const certs = ensureTestCertificates(join(base, "certs"));
  const s = await startDovecot({ runDir: join(base, "run"), certs, tenantId: "t", audience: "https://x", signingKeys: [], mailboxes: ["a@b.test"] });
  for (const withAdmin of [false, true]) {
    if (withAdmin) await s.append("a@b.test", "Subject: x\r\n\r\nx\r\n");
    const t = Date.now(); await s.stop(); console.log("stop", withAdmin, Date.now() - t);
    const t2 = Date.now(); await s.start(); console.log("start", Date.now() - t2);
  }
  await s.stop();
})();
