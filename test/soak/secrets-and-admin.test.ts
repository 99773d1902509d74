// Scenarios 7 and 8: no secret anywhere the soak wrote, and no admin endpoint without its permission.
import { it } from "node:test";
import { adminPermissions } from "../../soak/admin-permissions";
import { secrets } from "../../soak/secrets";
import { assertVerdict } from "../helpers/soak-report";

it("never shows the client secret or the DC-09 key in flows, logs, admin responses or debug messages", async (t) => {
  const result = await secrets({ name: "ci-7-secrets", log: (l) => console.log(`# ${l}`) });
  assertVerdict(t, result);
});

it("refuses every admin endpoint to callers without its permission", async (t) => {
  const result = await adminPermissions({ name: "ci-8-admin" });
  assertVerdict(t, result);
});
