// Scenario 6, short: 50 emails of the hostile corpus, spread over every category, through the gateway.
import { it } from "node:test";
import { hostileCorpus } from "../../soak/hostile-corpus";
import { assertVerdict } from "../helpers/soak-report";

it("maps or rejects with a reason every one of 50 hostile emails, without crashing, in bounded memory", async (t) => {
  const result = await hostileCorpus({
    count: 50,
    bigMiB: 12,
    rssLimitMiB: 512,
    timeoutMs: 150_000,
    name: "ci-6-hostile",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
