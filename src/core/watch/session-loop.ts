// One loop for every watcher: open a session, work until it ends, back off, try again. What is
// transport-specific is only how a failure is read (permanent? throttled? a token outage?);
// the backoff, the log line and the status the user sees are the same for IMAP, Graph and
// shared mode.

import { type BackoffPolicy, backoffDelay } from "../backoff";
import { Pause } from "../pause";
import type { WatcherState } from "./watcher";

/** How a transport reads the error that ended a session. */
export interface Failure {
  /** Configuration or credentials: retried slowly, shown in red. */
  permanent?: boolean;
  /** The server asked us to wait this long (Graph 429 Retry-After): no backoff, no error. */
  throttledForMs?: number;
  /** Use this policy instead of the watcher's (e.g. a shorter ceiling while the token endpoint fails). */
  policy?: BackoffPolicy;
  /** Appended to the reason in the log only (a hint at the fix). */
  hint?: string;
}

/** Why a session ended without an error; `at once` starts the next without a pause. */
export type SessionEnd = { reason: string; atOnce?: boolean } | undefined;

export type LoopState = WatcherState | { kind: "throttled"; retryInMs: number };

export interface SessionLoopOptions {
  backoff: BackoffPolicy;
  /** One session: resolves when it ends; calls `working()` once it works, which resets the backoff. */
  session(working: () => void): Promise<SessionEnd>;
  /** After every session, ended or failed. */
  cleanup?(): Promise<void> | void;
  classify(err: unknown): Failure;
  onState(state: LoopState): void;
  log(level: "info" | "warn" | "error", message: string): void;
  /** The log's word for the next attempt: "reconnecting" (a connection) or "retrying" (requests). */
  verb?: string;
}

export class SessionLoop {
  private stopping = false;
  private readonly pausing = new Pause();
  private running: Promise<void> | undefined;

  constructor(private readonly opts: SessionLoopOptions) {}

  get stopped(): boolean {
    return this.stopping;
  }

  start(): Promise<void> {
    this.running ??= this.run();
    return this.running;
  }

  /** Ends a pause at once; the caller ends the session its own way (closing its connection). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pausing.wake();
    await this.running;
  }

  private async run(): Promise<void> {
    const verb = this.opts.verb ?? "reconnecting";
    let attempt = 0;
    while (!this.stopping) {
      this.opts.onState({ kind: "connecting" });
      let reason: string;
      let failure: Failure = {};
      let atOnce = false;
      try {
        const end = await this.opts.session(() => {
          attempt = 0;
        });
        reason = end?.reason ?? "connection closed";
        atOnce = end?.atOnce === true;
      } catch (err) {
        reason = describe(err);
        failure = this.stopping ? {} : this.opts.classify(err);
      } finally {
        await this.opts.cleanup?.();
      }
      if (this.stopping) break;
      if (atOnce) continue;
      if (failure.throttledForMs !== undefined) {
        const inMs = failure.throttledForMs;
        this.opts.log("warn", `${reason}; ${verb} in ${Math.ceil(inMs / 1000)} s`);
        this.opts.onState({ kind: "throttled", retryInMs: inMs });
        await this.pausing.for(inMs);
        continue;
      }
      const inMs = backoffDelay(attempt++, failure.policy ?? this.opts.backoff);
      const hint = failure.hint ? ` (${failure.hint})` : "";
      this.opts.log(failure.permanent ? "error" : "warn", `${reason}${hint}; ${verb} in ${Math.round(inMs / 1000)} s`);
      this.opts.onState(failure.permanent ? { kind: "error", reason, inMs } : { kind: "reconnecting", reason, inMs });
      await this.pausing.for(inMs);
    }
  }
}

/**
 * Retries while the token endpoint fails are capped low: they cost the mail server nothing, and
 * after an HTTP 5xx MSAL answers every request from its own 60 s throttle anyway, so a full
 * backoff (up to a minute) would only add to the time the gateway stays offline once Entra ID is
 * back.
 */
export function tokenRetryPolicy(policy: BackoffPolicy): BackoffPolicy {
  return { ...policy, maxMs: Math.min(policy.maxMs, policy.initialMs * 10) };
}

export function describe(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const e = err as { name?: string; statusText?: string; message?: string };
    if (e.name === "AbortError") return "stopped";
    return e.statusText ?? e.message ?? String(err);
  }
  return String(err);
}
