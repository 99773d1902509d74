// Scenario 2, short: the receiver away for a few seconds during a burst; failover to a backup and back.
import { it } from "node:test";
import { receiverOutage } from "../../soak/receiver-outage";
import { assertVerdict } from "../helpers/soak-report";

it("delivers every alarm in order after a receiver outage, and fails over to the backup in time", async (t) => {
  const result = await receiverOutage({
    outageMs: 10_000,
    burst: 50,
    ackTimeoutS: 1,
    attempts: 2,
    name: "ci-2-receiver-outage",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
