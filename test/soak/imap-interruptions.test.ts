// Scenario 3, short: one Dovecot restart during a burst, two connections cut mid-FETCH.
import { it } from "node:test";
import { imapInterruptions } from "../../soak/imap-interruptions";
import { assertVerdict } from "../helpers/soak-report";

it("reconnects within 5 s after a Dovecot restart and cuts mid-FETCH, losing nothing", async (t) => {
  const result = await imapInterruptions({
    restarts: 1,
    burst: 40,
    cuts: 2,
    name: "ci-3-imap-interruptions",
    log: (l) => console.log(`# ${l}`),
  });
  assertVerdict(t, result);
});
