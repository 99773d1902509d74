// Parsing a fetched email, the same for every transport: unreadable MIME is not an error to end
// the session over (it is still an email someone sent: it goes on, empty, to be rejected and
// reviewed); a failed download or a full disk is, and the email is fetched again later.

import type { Readable } from "node:stream";
import { type ParsedEmail, parseEmail, UnreadableEmailError } from "../mail/parse-email";
import { parseInWorker } from "../mail/parse-in-worker";

export interface ParseOptions {
  maxInMemoryBytes: number;
  /** Where this email's large attachments are spooled (one directory per copy). */
  spoolDir: string;
}

/** The parsed email, or the reason it is unreadable; other failures throw. */
export async function parseFetched(
  source: Buffer | Readable,
  options: ParseOptions,
  onWorker = false,
): Promise<ParsedEmail | UnreadableEmailError> {
  try {
    return onWorker && Buffer.isBuffer(source)
      ? await parseInWorker(source, options)
      : await parseEmail(source, options);
  } catch (err) {
    if (!(err instanceof UnreadableEmailError)) throw err;
    return err;
  }
}
