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

parentPort?.on("message", (request: ParseRequest) => {
  const source = Buffer.from(request.source.buffer, request.source.byteOffset, request.source.byteLength);
  parseEmail(source, request.options).then(
    (email) => parentPort?.postMessage({ id: request.id, email } satisfies ParseReply),
    (err: unknown) => {
      const error = {
        message: err instanceof Error ? err.message : String(err),
        unreadable: err instanceof UnreadableEmailError,
      };
      parentPort?.postMessage({ id: request.id, error } satisfies ParseReply);
    },
  );
});
