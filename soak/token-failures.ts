// Scenario 4: the token endpoint fails for a while (HTTP 500, no answer, invalid_client after a
// secret rotation) just when the connector needs a new token. Node-RED must not crash, the
// connector's status must name the cause, and it must recover by itself once the endpoint heals,
// delivering what arrived meanwhile.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { DC09_KEY, Gateway, NODE, SOAK_DIR } from "../test/helpers/soak-gateway";
import { appendEmails, soakAccount, soakAlarmEmail } from "../test/helpers/soak-mail";
import { type ScenarioResult, seconds, Verdict, waitForDelivery } from "../test/helpers/soak-report";
import { startDc09Receiver } from "../test/standin/dc09-receiver";

export type TokenFailure = "server-error" | "timeout" | "invalid_client";

export interface TokenFailuresOptions {
  failures: TokenFailure[];
  /** How long each failure lasts. */
  holdMs: number;
  /** Emails arriving during each failure. */
  emails?: number;
  name?: string;
  log?: (line: string) => void;
}

/** What the connector's status must say for each failure. */
const CAUSE: Record<TokenFailure, RegExp> = {
  "server-error": /AADSTS50000|internal error/i,
  timeout: /no answer from/i,
  invalid_client: /invalid client secret|AADSTS7000215/i,
};

function inject(stack: MailStack, failure: TokenFailure | undefined, secret: string): void {
  stack.tenant.entra.failWith(failure === "server-error" || failure === "timeout" ? { kind: failure } : undefined);
  // A rotated secret: the gateway still sends the old one and Entra ID answers invalid_client.
  stack.tenant.app.secret = failure === "invalid_client" ? `${secret}-rotated` : secret;
}

export async function tokenFailures(o: TokenFailuresOptions): Promise<ScenarioResult> {
  const v = new Verdict(4, `token endpoint failing ${seconds(o.holdMs)} each: ${o.failures.join(", ")}`);
  const log = o.log ?? (() => {});
  const name = o.name ?? "4-token-failures";
  const dir = join(SOAK_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  // Tokens live 5 s, so every login asks Entra ID (MSAL renews 5 minutes before expiry).
  const stack = await startMailStack(name, { viaProxy: true, lifetimeSeconds: 5 });
  const secret = stack.tenant.app.secret ?? "";
  const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
  let gateway: Gateway | undefined;
  try {
    gateway = await Gateway.start({ dir, stack, receiverPort: receiver.tcpPort });
    await gateway.comms.waitForStatus(NODE.connector, /^watching/, { timeoutMs: 30_000 });
    const expected: string[] = [];
    for (const [i, failure] of o.failures.entries()) {
      await sleep(5500); // the login token has expired: the next login needs a new one
      const since = Date.now();
      inject(stack, failure, secret);
      stack.proxy?.cutAll(); // the connection drops, as Exchange does every so often
      const accounts = Array.from({ length: o.emails ?? 5 }, (_, n) => soakAccount(`A${i}`, n));
      expected.push(...accounts);
      await appendEmails(stack, (n) => soakAlarmEmail(accounts[n]!), accounts.length);
      await sleep(o.holdMs);
      const shown = gateway.comms.statusesOf(NODE.connector, since).map((s) => s.text);
      const named = shown.find((t) => CAUSE[failure].test(t));
      v.check(
        named !== undefined,
        `${failure}: no status named the cause (statuses: ${[...new Set(shown)].join(" | ")})`,
      );
      v.check(
        !shown.some((t) => /^watching/.test(t)),
        `${failure}: the connector said it was watching while no token could be had`,
      );
      const requests = stack.tenant.entra.requests.filter((r) => r.status !== 200).length;
      const healedAt = Date.now();
      inject(stack, undefined, secret);
      const back = await gateway.comms
        .waitForStatus(NODE.connector, /^watching/, { since: healedAt, timeoutMs: 90_000 })
        .catch(() => undefined);
      const recoveryMs = back ? back.at - healedAt : Number.POSITIVE_INFINITY;
      const t = await waitForDelivery(() => [receiver], accounts, 60_000);
      log(
        `${failure}: status "${named ?? "?"}"; recovered ${seconds(recoveryMs)} after healing; lost ${t.lost.length}`,
      );
      v.numbers[`${failure}: status`] = named ? `"${named.slice(0, 70)}"` : "none";
      v.numbers[`${failure}: recovered after heal`] = seconds(recoveryMs);
      // Backoff of the connector tops out at 60 s.
      v.check(recoveryMs <= 75_000, `${failure}: no recovery within 75 s of healing`);
      v.check(t.lost.length === 0, `${failure}: ${t.lost.length} emails from the failure not delivered after recovery`);
      v.note(`${failure}: ${requests} failed token requests so far`);
    }
    const t = await waitForDelivery(() => [receiver], expected, 30_000);
    v.numbers.emails = expected.length;
    v.numbers.lost = t.lost.length;
    v.numbers.duplicates = t.duplicates;
    v.check(gateway.alive && gateway.starts === 1, "Node-RED did not survive");
    v.check(!/Uncaught|unhandled/i.test(gateway.logs()), "an uncaught exception or unhandled rejection in the log");
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await receiver.close();
    await stack.stop();
  }
  return v.result();
}
