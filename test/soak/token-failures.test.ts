// Scenario 4, short: a rotated secret (invalid_client) for a few seconds (test/editor/gateway-panel.test.ts
// has another, with the mailbox down and the gateway's own trouble event). The token endpoint answering 500
// (MSAL then holds requests back for 60 s) runs in the full soak (`npm run soak`) and in TokenProvider's
// unit tests.
import { it } from "node:test";
import { tokenFailures } from "../../soak/token-failures";
import { assertVerdict } from "../helpers/soak-report";

it("survives a failing token endpoint, names the cause, and recovers when it heals", async (t) => {
  const result = await tokenFailures({
    failures: ["invalid_client"],
    holdMs: 6000,
    name: "ci-4-token-failures",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
