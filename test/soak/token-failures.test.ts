// Scenario 4, short: the token endpoint answers 500, then invalid_client, for a few seconds each.
import { it } from "node:test";
import { tokenFailures } from "../../soak/token-failures";
import { assertVerdict } from "../helpers/soak-report";

it("survives a failing token endpoint, names the cause, and recovers when it heals", async (t) => {
  const result = await tokenFailures({
    failures: ["server-error", "invalid_client"],
    holdMs: 6000,
    name: "ci-4-token-failures",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
