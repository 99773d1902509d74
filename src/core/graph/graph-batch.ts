// JSON batching of Graph GETs (https://learn.microsoft.com/graph/json-batching): the delta polls that
// mailboxes of one tenant make at the same moment travel as one `POST /v1.0/$batch` of up to 20 requests
// instead of one HTTPS round trip each: what makes hundreds of mailboxes polled every second cheap. Each
// request still counts against its own mailbox's limits at Graph, and each answer (a 429 with Retry-After
// too) goes back to its own caller as if it had come alone. A batch Graph refuses as a whole is sent again
// one request at a time.

import { Answer } from "./answer";

/** Requests of one batch at most (Graph's limit). */
export const MAX_BATCH = 20;
/** How long the first request of a batch waits for others (polls are aligned to the second: they come together). */
const GATHER_MS = 15;

export interface BatchRequest {
  id: string;
  method: "GET";
  /** Relative to the version root: /users/.../messages/delta?... */
  url: string;
}

export interface BatchAnswer {
  id: string;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface Waiting {
  url: string;
  single: () => Promise<Answer>;
  resolve(response: Answer): void;
  reject(err: unknown): void;
}

/** The requests gathered for one host and token. */
class BatchQueue {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private post: ((requests: BatchRequest[]) => Promise<BatchAnswer[]>) | undefined;

  constructor(private readonly forget: () => void) {}

  submit(
    target: URL,
    single: () => Promise<Answer>,
    post: (requests: BatchRequest[]) => Promise<BatchAnswer[]>,
  ): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.post = post;
      // The path below the version segment (/v1.0), with the query: what a batch's request names.
      const url = `${target.pathname.replace(/^\/[^/]+/, "")}${target.search}`;
      this.waiting.push({ url, single, resolve, reject });
      if (this.waiting.length >= MAX_BATCH) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), GATHER_MS);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const items = this.waiting.splice(0, MAX_BATCH);
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.flush(), 0);
    else this.forget();
    const post = this.post;
    if (items.length === 0 || !post) return;
    // One alone gains nothing from a batch.
    if (items.length === 1) {
      const [only] = items as [Waiting];
      only.single().then(only.resolve, only.reject);
      return;
    }
    post(items.map((it, i) => ({ id: String(i + 1), method: "GET", url: it.url }))).then(
      (answers) => {
        const byId = new Map(answers.map((a) => [String(a.id), a]));
        items.forEach((it, i) => {
          const a = byId.get(String(i + 1));
          if (!a || typeof a.status !== "number") {
            it.single().then(it.resolve, it.reject);
            return;
          }
          // A 2xx JSON body is handed over parsed; others keep their text, for the error path.
          it.resolve(Answer.batched(a.status, a.headers, a.body));
        });
      },
      () => {
        for (const it of items) it.single().then(it.resolve, it.reject);
      },
    );
  }
}

/** By host, then by token: a Map keyed by the token string itself hashes it once, not a new 2 KB key per poll. */
const queues = new Map<string, Map<string, BatchQueue>>();

/** The queue of the requests that may share a batch: same Graph host, same token (same tenant and app). */
export function batchFor(host: string, token: string): BatchQueue {
  let byToken = queues.get(host);
  if (!byToken) {
    byToken = new Map();
    queues.set(host, byToken);
  }
  let queue = byToken.get(token);
  if (!queue) {
    const mine = byToken;
    queue = new BatchQueue(() => {
      mine.delete(token);
      if (mine.size === 0 && queues.get(host) === mine) queues.delete(host);
    });
    byToken.set(token, queue);
  }
  return queue;
}
