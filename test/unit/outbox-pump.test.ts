// The pump between the durable outbox and a transmitter: order, the bound on outcomes not yet on
// disk (each one a possible repeat after a crash), and what a failed outcome write does.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OutboxPump } from "../../src/core/delivery/outbox-pump";
import { Outbox } from "../../src/core/outbox/outbox";
import { until } from "../helpers/until";
import { RUN_DIR } from "../standin/paths";

async function freshOutbox(name: string) {
  const dir = join(RUN_DIR, "pump-test", name);
  rmSync(dir, { recursive: true, force: true });
  return (await Outbox.open<number>({ dir })).outbox;
}

const delivered = (address = "r") => ({ kind: "delivered" as const, via: "primary", address, latencyMs: 0, sends: 1 });

describe("OutboxPump", () => {
  it("delivers in acceptance order, each once, with at most 4 outcomes not yet on disk", async () => {
    const outbox = await freshOutbox("order");
    const sent: number[] = [];
    const reported = new Set<number>();
    let worst = 0;
    const pump = new OutboxPump<number>({
      outbox,
      deliver: async (e) => {
        worst = Math.max(worst, sent.length - reported.size);
        sent.push(e.payload);
        return delivered();
      },
      onOutcome: (e) => reported.add(e.payload),
      onError: (m) => assert.fail(m),
    });
    pump.start();
    for (let i = 0; i < 300; i++) void outbox.accept(i, `k${i}`).then(() => pump.wake());
    await until(() => reported.size === 300, 10_000, "300 outcomes");
    await pump.stop();
    assert.deepEqual(
      sent,
      Array.from({ length: 300 }, (_, i) => i),
    );
    assert.ok(worst <= 4, `unrecorded outcomes while sending: at most ${worst}`);
    assert.equal(outbox.size, 0);
    await outbox.close();
  });

  // Sent again because its outcome could not be written, an alarm went out every 5 s for as long as the disk
  // stayed full, although the receiver had it (found reading the pump for scenario 5, disk full).
  it("retries only the outcome write when it fails, without sending the alarm again, and says so", async () => {
    const outbox = await freshOutbox("failed-write");
    const realFinish = outbox.finish.bind(outbox);
    let failOnce = true;
    outbox.finish = async (id, outcome) => {
      if (failOnce) {
        failOnce = false;
        throw new Error("EIO: disk trouble");
      }
      return realFinish(id, outcome);
    };
    const sent: number[] = [];
    const errors: string[] = [];
    const pump = new OutboxPump<number>({
      outbox,
      deliver: async (e) => {
        sent.push(e.payload);
        return delivered();
      },
      onOutcome: () => undefined,
      onError: (m) => errors.push(m),
      retryPauseMs: 50,
    });
    pump.start();
    await outbox.accept(1, "only");
    pump.wake();
    await until(() => outbox.size === 0, 5000, "the entry done");
    await sleep(100);
    await pump.stop();
    assert.deepEqual(sent, [1], "the receiver has it: not sent again");
    assert.match(errors.join("\n"), /EIO/);
    await outbox.close();
  });
});
