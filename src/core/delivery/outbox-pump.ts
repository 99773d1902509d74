// Delivers a durable outbox in order through a transmitter, one alarm at a time, and records
// each outcome before reporting it. Knows nothing of Node-RED or of the wire protocol; a fence
// (shared mode) may hold an entry back or tell that another gateway delivers it.
import type { Outbox, OutboxEntry, OutboxOutcome } from "../outbox/outbox";

/**
 * "failed": the receiver refused the alarm (answered, but not with an ACK, also in the plainest form); the
 * outbox keeps it as refused, with the answer, until someone resends it.
 */
export type PumpOutcome =
  | { kind: "delivered"; via: string; address: string; latencyMs: number; sends: number; fallback?: string }
  | { kind: "failed"; via: string; address: string; reason: string; answer?: string };

/** What onOutcome hears: a delivery's outcome, or "taken-over": not sent, the fence said another gateway raises it. */
export type PumpReport = PumpOutcome | { kind: "taken-over" };

/** What the fence says of one entry: send it, pass over it for now, or drop it as delivered elsewhere. */
export type Clearance = "yes" | "wait" | "lost";

/** How the outbox records an entry that another gateway took over: done, like a delivered one. */
export const TAKEN_OVER_DETAIL = "taken over by another gateway";

export interface PumpOptions<T> {
  outbox: Outbox<T>;
  /** Sends one entry until it is acknowledged or refused; rejects only when stopped. */
  deliver(entry: OutboxEntry<T>): Promise<PumpOutcome>;
  onOutcome(entry: OutboxEntry<T>, outcome: PumpReport): void;
  onError(message: string): void;
  /** Pause after a failure to record an outcome (disk trouble). */
  retryPauseMs?: number;
  /**
   * Delivered entries whose outcome may still be on its way to disk while the next ones go out
   * (default 4). More is faster (their records share one fsync); each is one possible repeat after
   * a kill -9.
   */
  maxUnrecorded?: number;
  /**
   * Asked right before an entry is sent (default: always "yes"). "wait" passes over the entry (the
   * ones behind it go on) and asks again after `waitRetryMs`; "lost" finishes it unsent.
   */
  clearance?(entry: OutboxEntry<T>): Clearance;
  /** Default 1000 ms. */
  waitRetryMs?: number;
}

export class OutboxPump<T> {
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /** Delivered entries whose outcome is being written: the next one goes out meanwhile. */
  private readonly finishing = new Set<number>();
  /** Entries the fence told to wait: passed over until the retry timer clears them all. */
  private readonly waiting = new Set<number>();
  private waitTimer: NodeJS.Timeout | undefined;

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
    clearTimeout(this.waitTimer);
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

  /**
   * The outcome could not be written (full disk): the receiver has the alarm, so only the record
   * is retried, after a pause; the entry stays in `finishing` (not sent again) and counts against
   * the window, which stops delivery until the disk takes writes again. A kill meanwhile repeats it.
   */
  private finishFailed(entry: OutboxEntry<T>, outcome: PumpReport, record: OutboxOutcome, err: unknown): void {
    this.opts.onError(`outbox: outcome of alarm ${entry.id} not recorded (${String(err)}); retrying`);
    const retry = () => {
      if (this.stopped) return;
      this.opts.outbox.finish(entry.id, record).then(
        () => {
          this.finishing.delete(entry.id);
          this.wake();
          this.opts.onOutcome(entry, outcome);
        },
        (again: unknown) => this.finishFailed(entry, outcome, record, again),
      );
    };
    setTimeout(retry, this.opts.retryPauseMs ?? 5000);
  }

  // The outcome of one entry is written while the next is delivered (the outbox commits such
  // records in groups). A kill before it is on disk repeats the entry: a duplicate, never a loss.
  private async run(): Promise<void> {
    const { outbox } = this.opts;
    while (!this.stopped) {
      // Without waiting entries (always, outside shared mode) the skip set is `finishing` itself: no copy per alarm.
      const skip = this.waiting.size === 0 ? this.finishing : new Set([...this.finishing, ...this.waiting]);
      const entry = this.finishing.size < (this.opts.maxUnrecorded ?? 4) ? outbox.peek(skip) : undefined;
      if (!entry) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
        });
        continue;
      }
      const clearance = this.opts.clearance?.(entry) ?? "yes";
      if (clearance === "wait") {
        this.passOver(entry.id);
        continue;
      }
      let outcome: PumpReport;
      if (clearance === "lost") outcome = { kind: "taken-over" };
      else {
        try {
          outcome = await this.opts.deliver(entry);
        } catch {
          if (this.stopped) return;
          throw new Error("delivery failed unexpectedly");
        }
      }
      const record = recordOf(outcome, Date.now());
      this.finishing.add(entry.id);
      outbox.finish(entry.id, record).then(
        () => {
          this.finishing.delete(entry.id);
          this.wake();
          this.opts.onOutcome(entry, outcome);
        },
        (err: unknown) => this.finishFailed(entry, outcome, record, err),
      );
    }
  }

  private passOver(id: number): void {
    this.waiting.add(id);
    this.waitTimer ??= setTimeout(() => {
      this.waitTimer = undefined;
      this.waiting.clear();
      this.wake();
    }, this.opts.waitRetryMs ?? 1000);
  }
}

function recordOf(outcome: PumpReport, at: number): OutboxOutcome {
  switch (outcome.kind) {
    case "delivered":
      return { kind: "delivered", at, detail: outcome.address };
    case "taken-over":
      return { kind: "delivered", at, detail: TAKEN_OVER_DETAIL };
    case "failed":
      return {
        kind: "refused",
        at,
        reason: outcome.reason,
        ...(outcome.answer === undefined ? {} : { answer: outcome.answer }),
        ...(outcome.address ? { detail: `${outcome.via} ${outcome.address}` } : {}),
      };
  }
}
