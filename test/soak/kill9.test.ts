// Scenario 1, short: a few kill -9 of the gateway during bursts; nothing lost, at most one repeat per kill.
import { it } from "node:test";
import { killNine } from "../../soak/kill9";
import { assertVerdict } from "../helpers/soak-report";

it("loses no alarm email when Node-RED is killed -9 during bursts (3 kills, 100 emails each)", async (t) => {
  const result = await killNine({ runs: 3, burst: 100, name: "ci-1-kill9", log: (l) => console.log(`# ${l}`) });
  assertVerdict(t, result);
});
