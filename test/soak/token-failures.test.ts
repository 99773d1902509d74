// Scenario 4, short: a rotated secret (invalid_client) for a few seconds. The token endpoint answering 500
// is the CI's other token outage: test/editor/gateway-panel.test.ts (with the mailbox down, the gateway's
// own trouble event); the full soak (`npm run soak`) runs both here.
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
