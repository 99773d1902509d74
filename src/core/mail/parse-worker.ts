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

// Requests come in batches (the emails of one socket read); the replies of a batch go back in one
// message. A message costs each thread about as much as parsing a small email, so one per email
// would double the CPU of a burst (bench/burst.ts).
// One email at a time, in the order sent: parsing is CPU work, so running several at once would
// only make each answer later (the first of a burst would come back with the last).
let queue: Promise<void> = Promise.resolve();
parentPort?.on("message", (batch: ParseRequest[]) => {
  queue = queue.then(async () => {
    const replies: ParseReply[] = [];
    for (const request of batch) replies.push(await parseOne(request));
    parentPort?.postMessage(replies);
  });
});

async function parseOne(request: ParseRequest): Promise<ParseReply> {
  const source = Buffer.from(request.source.buffer, request.source.byteOffset, request.source.byteLength);
  try {
    return { id: request.id, email: await parseEmail(source, request.options) };
  } catch (err) {
    const error = {
      message: err instanceof Error ? err.message : String(err),
      unreadable: err instanceof UnreadableEmailError,
    };
    return { id: request.id, error };
  }
}
