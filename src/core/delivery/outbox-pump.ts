// Delivers a durable outbox in order through a transmitter, one alarm at a time, and records
// each outcome before reporting it. Knows nothing of Node-RED or of the wire protocol.
import type { Outbox, OutboxEntry } from "../outbox/outbox";

export type PumpOutcome =
  | { kind: "delivered"; via: string; address: string; latencyMs: number; sends: number }
  | { kind: "failed"; via: string; address: string; reason: string };

export interface PumpOptions<T> {
  outbox: Outbox<T>;
  /** Sends one entry until it is acknowledged or refused; rejects only when stopped. */
  deliver(entry: OutboxEntry<T>): Promise<PumpOutcome>;
  onOutcome(entry: OutboxEntry<T>, outcome: PumpOutcome): void;
  onError(message: string): void;
  /** Pause after a failure to record an outcome (disk trouble). */
  retryPauseMs?: number;
}

export class OutboxPump<T> {
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: PumpOptions<T>) {}

  start(): void {
    this.running ??= this.runForever();
  }

  /** Something was accepted: deliver it. */
  wake(): void {
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    await this.running;
  }

  // A disk error while recording an outcome must not stop delivery: the entry stays pending
  // (it may be sent again, never lost) and the pump resumes after a pause.
  private async runForever(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.run();
      } catch (err) {
        this.opts.onError(`outbox: ${String(err)}; retrying`);
        await new Promise((r) => setTimeout(r, this.opts.retryPauseMs ?? 5000));
      }
    }
  }

  private async run(): Promise<void> {
    const { outbox } = this.opts;
    while (!this.stopped) {
      const entry = outbox.peek();
      if (!entry) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
        });
        continue;
      }
      let outcome: PumpOutcome;
      try {
        outcome = await this.opts.deliver(entry);
      } catch {
        if (this.stopped) return;
        throw new Error("delivery failed unexpectedly");
      }
      const at = Date.now();
      await outbox.finish(
        entry.id,
        outcome.kind === "delivered"
          ? { kind: "delivered", at, detail: outcome.address }
          : { kind: "failed", at, reason: outcome.reason },
      );
      this.opts.onOutcome(entry, outcome);
    }
  }
}
