// An HTTP answer from Graph, as the Graph client needs it: status, headers, and a body read once (as text)
// or streamed. Plain Node objects instead of a web Response: wrapping every answer in Readable.toWeb,
// Response and Headers made garbage on every delta poll of every mailbox, and the collector's work was
// about half of what 200 idle connectors cost (issue #19).
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { Readable } from "node:stream";

/** Header lookup by case-insensitive name; repeated headers joined with ", " (as fetch's Headers does). */
export interface HeaderLookup {
  get(name: string): string | null;
  has(name: string): boolean;
}

class NodeHeaders implements HeaderLookup {
  constructor(private readonly raw: IncomingHttpHeaders | Record<string, string>) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }
}

/** Statuses that carry no body, whatever the answer says. */
const NO_BODY = new Set([204, 205, 304]);

function lowerCased(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = String(value);
  return out;
}

export class Answer {
  readonly headers: HeaderLookup;
  private consumed = false;

  private constructor(
    readonly status: number,
    readonly statusText: string,
    headers: HeaderLookup,
    /** The body still to be read from the socket, or none. */
    private readonly source: IncomingMessage | null,
    /** The body already in hand as text (an answer inside a batch). */
    private readonly bodyText: string | null,
    /** The body already parsed (a 2xx JSON answer inside a batch): nothing to parse again. */
    readonly parsed: unknown,
  ) {
    this.headers = headers;
  }

  /** An answer whose body streams from the socket. */
  static fromMessage(res: IncomingMessage): Answer {
    const status = res.statusCode ?? 0;
    const empty = NO_BODY.has(status);
    if (empty) res.resume();
    return new Answer(
      status,
      res.statusMessage ?? "",
      new NodeHeaders(res.headers),
      empty ? null : res,
      null,
      undefined,
    );
  }

  /** One answer of a JSON batch: its body as Graph put it there (parsed JSON, or text). */
  static batched(status: number, headers: Record<string, string> | undefined, given: unknown): Answer {
    const body = NO_BODY.has(status) ? undefined : given;
    const parsed = status >= 200 && status < 300 && body !== undefined && typeof body !== "string";
    const text = body === undefined || parsed ? null : typeof body === "string" ? body : JSON.stringify(body);
    return new Answer(status, "", new NodeHeaders(lowerCased(headers)), null, text, parsed ? body : undefined);
  }

  /** Whether the body is still to come from the socket (not empty, not already in hand). */
  get streams(): boolean {
    return this.source !== null;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The whole body as UTF-8 text (read once). */
  async text(): Promise<string> {
    if (this.bodyText !== null) return this.bodyText;
    if (!this.source || this.consumed) return "";
    this.consumed = true;
    const chunks: Buffer[] = [];
    for await (const chunk of this.source) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  /** The body as it comes from the socket (see `streams`), once; otherwise an empty stream. */
  stream(): Readable {
    if (!this.source || this.consumed) return Readable.from([]);
    this.consumed = true;
    return this.source;
  }
}
