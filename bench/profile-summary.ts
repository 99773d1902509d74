// Where the time goes in a .cpuprofile written by a bench's --profile, within an optional time window:
// by part of the pipeline (connector IMAP / MIME parse / progress store, data-map, outbox, DC-09, ...),
// by package or file, by function (self time), and inclusive time of our own functions.
//   node --import tsx bench/profile-summary.ts .run/bench-prof/burst-ours-full.cpuprofile [--top 30] [--from ms] [--to ms]
//   (--from/--to: ms since the epoch, e.g. `started` and the last ACK in .run/bench-burst-ours-full-timeline.json)
import { readFileSync } from "node:fs";
import { flags } from "./harness";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number; // µs, monotonic
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Parts of the pipeline, recognised by file or package in a stack frame (url and function name). */
const BUCKETS: [string, RegExp][] = [
  ["connector: progress store (settle)", /nodes\/core\/mail\/progress-store|\/nodes\/settle\.js/],
  [
    "connector: MIME parse (parseEmail, mailparser)",
    /parse-email|node_modules\/(mailparser|@zone-eu|libmime|libqp|libbase64|nodemailer|iconv|encoding-japanese|html-to-text|punycode)/,
  ],
  ["connector: IMAP (imapflow, watcher)", /imapflow|mailbox-watcher|imap-login/],
  ["data-map", /nodes\/core\/datamap|nodes\/data-map\.js|jsonata/],
  ["line-driver: outbox", /nodes\/core\/outbox/],
  ["line-driver: DC-09 (transmitter, pump)", /nodes\/core\/(dc09|delivery)|nodes\/line-driver\.js/],
  ["o365 token (MSAL)", /@azure|token-provider|o365-oauth-config/],
  ["email-connector node", /nodes\/email-connector\.js/],
  ["bench recorder (function node)", /Function node:record/],
];
const GENERIC_BUCKETS: [string, RegExp][] = [
  ["Node-RED runtime (routing, status, HTTP)", /@node-red|express|serve-static|node-red\//],
  ["TLS / sockets", /node:_tls|node:net|node:internal\/stream_base/],
  ["fs", /node:internal\/fs|node:fs/],
];

export function summariseProfile(
  file: string,
  opts: { top?: number; fromMs?: number; toMs?: number; wallEndMs?: number } = {},
): string[] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample times are monotonic µs; map them to wall-clock ms by the profile's end (≈ the file's mtime).
  const endWall = opts.wallEndMs ?? Number.POSITIVE_INFINITY;
  const wallOf = (t: number) => endWall - (profile.endTime - t) / 1000;
  const self = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const wall = wallOf(t);
    if (opts.fromMs !== undefined && wall < opts.fromMs) continue;
    if (opts.toMs !== undefined && wall > opts.toMs) continue;
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  }
  const where = (f: CallFrame) => {
    const url = f.url.replace(/^file:\/\//, "");
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return m[1] ?? url;
    if (url.includes("/nodes/")) return `ours: ${url.slice(url.indexOf("/nodes/") + 1)}`;
    if (url.startsWith("node:")) return url;
    return url ? url.split("/").slice(-2).join("/") : f.functionName || "(vm)";
  };
  const fnKey = (f: CallFrame) => `${f.functionName || "(anonymous)"} ${where(f)}:${f.lineNumber + 1}`;
  const perFn = new Map<string, number>();
  const perWhere = new Map<string, number>();
  for (const [id, ms] of self) {
    const f = byId.get(id)?.callFrame;
    if (!f) continue;
    perFn.set(fnKey(f), (perFn.get(fnKey(f)) ?? 0) + ms);
    perWhere.set(where(f), (perWhere.get(where(f)) ?? 0) + ms);
  }
  // Inclusive time of our own functions: each sample counts once for every function of ours on its stack.
  const inclusive = new Map<string, number>();
  for (const [id, ms] of self) {
    const keys = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)?.callFrame;
      if (f && where(f).startsWith("ours")) keys.add(fnKey(f));
    }
    for (const k of keys) inclusive.set(k, (inclusive.get(k) ?? 0) + ms);
  }
  // Activity of each sample: the first frame from the leaf up that belongs to a known part.
  const activity = new Map<string, number>();
  for (const [id, ms] of self) {
    const name = byId.get(id)?.callFrame.functionName ?? "";
    let bucket = /^\((idle|garbage collector|program)\)$/.test(name) ? name : "other (Node.js internals, unattributed)";
    // Our parts first, anywhere on the stack; only then the generic ones (runtime, sockets, fs).
    search: for (const tier of [BUCKETS, GENERIC_BUCKETS]) {
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const f = byId.get(at)?.callFrame;
        const hit = f && tier.find(([, re]) => re.test(`${f.url} ${f.functionName}`));
        if (hit) {
          bucket = hit[0];
          break search;
        }
      }
    }
    activity.set(bucket, (activity.get(bucket) ?? 0) + ms);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, ms]) => `  ${ms.toFixed(1).padStart(8)} ms ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
  return [
    `profile ${file}: ${total.toFixed(0)} ms sampled in the window`,
    "time by activity (first known frame from the leaf up):",
    ...top(activity, 20),
    "self time by package / file:",
    ...top(perWhere, 15),
    "self time by function:",
    ...top(perFn, opts.top ?? 30),
    "inclusive time of our functions (synchronous part only):",
    ...top(inclusive, opts.top ?? 30),
  ];
}

if (require.main === module) {
  const f = flags();
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile-summary.ts <file.cpuprofile> [--top N] [--from ms] [--to ms]");
  const { mtimeMs } = require("node:fs").statSync(file) as { mtimeMs: number };
  for (const line of summariseProfile(file, {
    top: f.num("top", 30),
    fromMs: f.str("from") ? f.num("from", 0) : undefined,
    toMs: f.str("to") ? f.num("to", 0) : undefined,
    wallEndMs: mtimeMs,
  }))
    console.log(line);
}
