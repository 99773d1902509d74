// Scenario 5, short: the user directory's disk full for a few seconds.
import { it } from "node:test";
import { diskFull } from "../../soak/disk-full";
import { assertVerdict } from "../helpers/soak-report";

it("does not take an alarm it cannot store on a full disk, says so, and delivers it once space returns", async (t) => {
  const result = await diskFull({
    maxEmails: 12,
    fullMs: 5000,
    redeliverAfterS: 10,
    name: "ci-5-disk-full",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
