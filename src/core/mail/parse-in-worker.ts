// parseEmail for whole emails (Buffers) on a worker thread shared by every connector in the process,
// for bursts: while hundreds of emails wait, they are parsed on a second core while the main thread
// runs IMAP and the flow. The worker is started by a burst (its first emails are parsed here until it
// is ready) and ended 10 minutes after its last email, which gives its memory (30-40 MB) back when
// bursts are rare. Not sooner: a new worker is a new V8 isolate that loads mailparser and compiles
// it again, which cost more CPU than parsing a burst of 1000 alarm emails on a warm one (300-600 ms
// against ~90 ms, bench/burst.ts --warm; docs/burst-cpu.md), and bursts come in runs (an outage
// ends, a second mailbox catches up, a camera fires for minutes).
// It is an optimisation only: if it cannot start or dies, emails are parsed here.
import { extname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { type ParsedEmail, type ParseEmailOptions, parseEmail, UnreadableEmailError } from "./parse-email";
import type { ParseReply, ParseRequest } from "./parse-worker";

interface Waiting {
  resolve(email: ParsedEmail): void;
  reject(err: Error): void;
}

/** Bursts are over when the worker got nothing for this long: it ends and gives its memory back. */
const IDLE_END_MS = 10 * 60_000;

let worker: Worker | undefined;
let ready = false;
let idleTimer: NodeJS.Timeout | undefined;
const waiting = new Map<number, Waiting>();
let nextId = 1;
/** Requests not yet sent: the emails of one socket read go to the worker in one message. */
let outgoing: ParseRequest[] = [];
/**
 * At most this many emails per message, so the first of a large read come back while the rest are
 * parsed. A message costs each side about as much as parsing one small email.
 */
const MAX_BATCH = 32;

/** Parses one whole email, on the worker thread once it is ready; the same result and errors as parseEmail. */
export async function parseInWorker(source: Buffer, options: ParseEmailOptions): Promise<ParsedEmail> {
  const thread = started();
  if (!thread || !ready) return parseEmail(source, options);
  const id = nextId++;
  const reply = new Promise<ParsedEmail>((resolve, reject) => waiting.set(id, { resolve, reject }));
  if (waiting.size === 1) thread.ref(); // an answer is awaited: keep the process up for it
  // A copy of just these bytes (a Buffer may view a larger pool, which would all be cloned), moved over.
  const bytes = new Uint8Array(source);
  outgoing.push({ id, source: bytes, options });
  // The emails of one socket read go in one message, sent once this turn of the event loop is over.
  if (outgoing.length === 1) setImmediate(flush);
  else if (outgoing.length >= MAX_BATCH) flush();
  try {
    return await reply;
  } catch (err) {
    if (err instanceof UnreadableEmailError) throw err;
    return parseEmail(source, options); // the worker failed, not the email's MIME
  }
}

/** Sends the requests gathered so far in one message, their bytes moved, not copied. */
function flush(): void {
  if (outgoing.length === 0) return;
  const batch = outgoing;
  outgoing = [];
  // Gone since these were asked for: fail() has answered them already (on the main thread).
  if (!worker) return;
  // Each source is a copy of its own (new Uint8Array in parseInWorker): its whole ArrayBuffer moves over.
  worker.postMessage(
    batch,
    batch.map((r) => r.source.buffer as ArrayBuffer),
  );
}

/** Starts the worker ahead of a burst (it takes a moment to load mailparser). */
export function startParseWorker(): void {
  started();
}

/** Starts the worker if needed and resolves once it takes emails (false if it cannot start). */
export function parseWorkerReady(): Promise<boolean> {
  const thread = started();
  if (!thread) return Promise.resolve(false);
  if (ready) return Promise.resolve(true);
  thread.ref(); // awaited: keep the process up for it
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (m !== "ready") return;
      thread.off("message", onMessage);
      thread.off("exit", onExit);
      if (waiting.size === 0) thread.unref();
      resolve(true);
    };
    const onExit = () => {
      thread.off("message", onMessage);
      resolve(false);
    };
    thread.on("message", onMessage);
    thread.on("exit", onExit);
  });
}

/** Whether emails go to the worker now (it is running and loaded). */
export function parseWorkerRunning(): boolean {
  return worker !== undefined && ready;
}

/** Ends the worker; emails being parsed on it are parsed on the main thread instead. */
export async function stopParseWorker(): Promise<void> {
  await worker?.terminate();
}

function armIdleEnd(): void {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (waiting.size > 0)
      armIdleEnd(); // a long email is still being parsed
    else void stopParseWorker();
  }, IDLE_END_MS).unref();
}

/** The worker, starting it if needed; undefined if it cannot be started. */
function started(): Worker | undefined {
  armIdleEnd();
  if (worker) return worker;
  let thread: Worker;
  try {
    // Built: parse-worker.js beside this file; under tsx (tests), the .ts, loaded through the inherited --import.
    thread = new Worker(join(__dirname, `parse-worker${extname(__filename)}`));
  } catch {
    return undefined;
  }
  thread.unref(); // never what keeps Node-RED from exiting
  ready = false;
  thread.on("message", (replies: ParseReply[] | "ready") => {
    if (replies === "ready") {
      ready = worker === thread;
      return;
    }
    for (const reply of replies) {
      const w = waiting.get(reply.id);
      if (!w) continue;
      waiting.delete(reply.id);
      if ("email" in reply) w.resolve(revive(reply.email));
      else
        w.reject(
          reply.error.unreadable ? new UnreadableEmailError(reply.error.message) : new Error(reply.error.message),
        );
    }
    if (waiting.size === 0) thread.unref();
  });
  const fail = (err: Error) => {
    if (worker !== thread) return;
    worker = undefined;
    ready = false;
    for (const w of waiting.values()) w.reject(new Error(`parse worker stopped: ${err.message}`));
    waiting.clear();
  };
  thread.on("error", fail);
  thread.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  worker = thread;
  return thread;
}

/** Attachment bytes cross the thread boundary as Uint8Array: make them Buffers again, without copying. */
function revive(email: ParsedEmail): ParsedEmail {
  for (const a of email.attachments) {
    const bytes = a.content as Uint8Array | null;
    if (bytes && !Buffer.isBuffer(bytes)) a.content = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return email;
}
