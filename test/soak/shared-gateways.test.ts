// Scenarios 9-13, short (issue #16): real Node-RED gateways sharing one mailbox. The full sizes
// run with `npm run soak` (soak/shared-gateways.ts); these keep every path in `npm test`.
import { it } from "node:test";
import { sharedBursts, sharedCut, sharedKills, sharedRestartAndOutage } from "../../soak/shared-gateways";
import { assertVerdict } from "../helpers/soak-report";

const log = (line: string) => console.log(`# ${line}`);

it("2 gateways share a burst over IMAP and over Graph: each alarm once, the work split", async (t) => {
  const result = await sharedBursts({
    burst: 60,
    cases: [
      { transport: "imap", gateways: 2 },
      { transport: "graph", gateways: 2 },
    ],
    log,
  });
  assertVerdict(t, result);
});

it("a gateway killed with its disk lost: its emails are taken over, none lost", async (t) => {
  assertVerdict(t, await sharedKills({ scenario: 10, transport: "imap", runs: 1, burst: 60, log }));
});

it("a gateway cut from the mailbox while it reaches the receiver: none lost, repeats bounded", async (t) => {
  assertVerdict(t, await sharedCut({ cutMs: 10_000, burst: 60, log }));
});

it("both gateways restarted together, then the receiver down: none lost, none twice", async (t) => {
  assertVerdict(t, await sharedRestartAndOutage({ burst: 30, outageMs: 8_000, log }));
});
