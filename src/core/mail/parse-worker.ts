// Worker thread that parses emails (MIME) off the main thread, so a burst of emails is parsed on a
// second core while the main thread runs IMAP and the flow. Messages: ParseRequest in, ParseReply out.
import { parentPort } from "node:worker_threads";
import { type ParsedEmail, type ParseEmailOptions, parseEmail, UnreadableEmailError } from "./parse-email";

export interface ParseRequest {
  id: number;
  source: Uint8Array;
  options: ParseEmailOptions;
}

export type ParseReply =
  | { id: number; email: ParsedEmail }
  | { id: number; error: { message: string; unreadable: boolean } };

// Loaded (mailparser and all): the main thread may send emails now.
parentPort?.postMessage("ready");

// One email at a time, in the order sent: parsing is CPU work, so running several at once would
// only make each answer later (the first of a burst would come back with the last).
let queue: Promise<void> = Promise.resolve();
parentPort?.on("message", (request: ParseRequest) => {
  queue = queue.then(() => parseOne(request));
});

async function parseOne(request: ParseRequest): Promise<void> {
  const source = Buffer.from(request.source.buffer, request.source.byteOffset, request.source.byteLength);
  try {
    const email = await parseEmail(source, request.options);
    parentPort?.postMessage({ id: request.id, email } satisfies ParseReply);
  } catch (err) {
    const error = {
      message: err instanceof Error ? err.message : String(err),
      unreadable: err instanceof UnreadableEmailError,
    };
    parentPort?.postMessage({ id: request.id, error } satisfies ParseReply);
  }
}
