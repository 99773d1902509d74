// The pack's own HTTP(S) listener for alarm evidence: serves a stored file only at a signed link that
// has not expired (signed-link.ts), with its stored Content-Type, Range requests for video (RFC 9110
// 14), and nothing else: no listing, no file names in paths, GET and HEAD only. Its own port rather
// than Node-RED's HTTP server: operators at the centre reach it at an address of its own (bind
// address, base URL, the centre's certificate), and neither the editor nor the flows' HTTP endpoints
// need to be reachable from the operators' network for it.
import { createReadStream } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { MediaStore } from "./media-store";
import { checkSignedPath } from "./signed-link";

export interface MediaServerOptions {
  /** Address to bind, e.g. "127.0.0.1" or the centre's LAN address; never all interfaces by default. */
  host: string;
  port: number;
  /** PEM certificate chain and key: HTTPS; absent: HTTP. */
  tls?: { cert: string; key: string };
  signingKey: Buffer;
  store: MediaStore;
  log(level: "info" | "warn", message: string): void;
  now?: () => number;
}

export interface MediaServer {
  readonly port: number;
  close(): Promise<void>;
}

const HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "private, no-store",
} as const;

export async function startMediaServer(opts: MediaServerOptions): Promise<MediaServer> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    serve(opts, req, res).catch((err: unknown) => {
      opts.log("warn", `media request failed: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) plain(res, 500, "error");
      else res.destroy();
    });
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler)
    : createHttpServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function plain(res: ServerResponse, status: number, text: string, more: Record<string, string> = {}): void {
  res.writeHead(status, { ...HEADERS, "Content-Type": "text/plain; charset=utf-8", ...more });
  res.end(`${text}\n`);
}

async function serve(opts: MediaServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD")
    return plain(res, 405, "method not allowed", { Allow: "GET, HEAD" });
  // The raw path, not decoded: %2e%2e or %2f never become a path here, they just do not match.
  const path = (req.url ?? "").split("?")[0] ?? "";
  const check = checkSignedPath(opts.signingKey, path, (opts.now ?? Date.now)());
  if (!check.ok) {
    if (check.status === 403) opts.log("warn", `media link refused (${check.why}) from ${req.socket.remoteAddress}`);
    return plain(res, check.status, check.status === 403 ? "forbidden" : "not found");
  }
  const found = await opts.store.find(check.id);
  if (!found) return plain(res, 404, "not found");
  const { size, contentType } = found.meta;
  const range = parseRange(req.headers.range, size);
  const base = {
    ...HEADERS,
    "Content-Type": contentType,
    "Accept-Ranges": "bytes",
    "Content-Disposition": "inline",
  };
  if (range === "unsatisfiable") {
    return plain(res, 416, "range not satisfiable", { "Content-Range": `bytes */${size}` });
  }
  const [start, end] = range ?? [0, size - 1];
  const length = size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : 200, {
    ...base,
    "Content-Length": String(length),
    ...(range ? { "Content-Range": `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(found.path, { start, end });
  await new Promise<void>((resolve, reject) => {
    stream.once("error", reject);
    res.once("close", () => {
      stream.destroy();
      resolve();
    });
    stream.pipe(res);
  });
}

/**
 * One byte range of `bytes=a-b`, `bytes=a-` or `bytes=-n` (RFC 9110 14.1.2); several ranges or a
 * form we do not read are answered with the whole file (a server may ignore Range), a range past
 * the end with 416.
 */
export function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, from, to] = m as unknown as [string, string, string];
  if (from === "" && to === "") return null;
  if (from === "") {
    const suffix = Number(to);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(from);
  if (start >= size) return "unsatisfiable";
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1);
  if (end < start) return null;
  return [start, end];
}
