// Alarm media (issue #17): our own share (EXISTS → ACK) for camera emails with a 1 MB JPEG, with media
// storing off and on, side by side in one run (two Node-RED children in turn, same Dovecot, same emails);
// and the download of a 25 MB clip at its signed link over loopback.
//   node --import tsx bench/media.ts [--count 40] [--jpeg-kb 1024] [--clip-mb 25] [--modes off,on] [--profile] [--write-results]
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Evidence } from "../src/core/media/evidence";
import { signingKeyBytes } from "../src/core/media/signed-link";
import { type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { MAILBOX } from "../test/helpers/tenant";
import { ensureTestCertificates } from "../test/standin/certs";
import { type Dc09Receiver, startDc09Receiver } from "../test/standin/dc09-receiver";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";
import { freePort } from "../test/standin/ports";
import {
  alarmBody,
  childEnv,
  cpuMsOf,
  flags,
  oursFlow,
  packOptions,
  runMain,
  today,
  watchExists,
  zoneOf,
} from "./harness";
import { type GoalRow, goalTable, machine, percentile, recordGoals, writeSection } from "./results-file";

const f = flags();
const COUNT = f.num("count", 40);
const JPEG_KB = f.num("jpeg-kb", 1024);
const CLIP_MB = f.num("clip-mb", 25);
const WARMUP_ZONE = 999;

type Mode = "off" | "on";
interface Side {
  mode: Mode;
  own: number[];
  total: number[];
  missing: number;
  cpuMs: number;
  withLink: number;
}

/** The classic four-line alarm email with a JPEG of `bytes` attached (base64, 76-character lines). */
function cameraEmail(subject: string, zone: number, bytes: number): string {
  const jpeg = Buffer.concat([
    Buffer.from("ffd8ffe0", "hex"),
    Buffer.alloc(bytes - 6, 0x5a),
    Buffer.from("ffd9", "hex"),
  ]);
  const b64 = jpeg.toString("base64").replace(/.{76}/g, "$&\r\n");
  const id = `<media-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}@camera.contoso.test>`;
  return [
    "From: Camera <camera@contoso.test>",
    `To: ${MAILBOX}`,
    `Subject: ${subject}`,
    `Message-ID: ${id}`,
    `Date: ${new Date().toUTCString()}`,
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b"',
    "",
    "--b",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    alarmBody(zone),
    "--b",
    'Content-Type: image/jpeg; name="snapshot.jpg"',
    "Content-Transfer-Encoding: base64",
    'Content-Disposition: attachment; filename="snapshot.jpg"',
    "",
    b64,
    "--b--",
    "",
  ].join("\r\n");
}

async function measure(mode: Mode, stack: MailStack, receiver: Dc09Receiver): Promise<Side> {
  const folder = `media-${mode}`;
  const { env, profileFile } = childEnv(`media-${mode}`, { profile: f.has("profile") });
  const red = await startNodeRed({
    userDir: join(RUN_DIR, `bench-media-${mode}`),
    ...packOptions("ours"),
    logFile: join(RUN_DIR, `bench-media-${mode}.log`),
    env,
  });
  const exists = await watchExists(stack, folder);
  let appended = 0;
  const acked = (zone: number, from: number) => receiver.acked.slice(from).find((e) => zoneOf(e.frame.data) === zone);
  const one = async (zone: number, timeoutMs: number) => {
    const from = receiver.acked.length;
    const raw = cameraEmail(`${mode}-${zone}`, zone, JPEG_KB * 1024);
    const append = Date.now();
    await stack.dovecot.append(MAILBOX, raw, { folder });
    const existsAt = exists.waitFor(++appended, timeoutMs).catch(() => Number.NaN);
    await receiver.waitFor(() => acked(zone, from) !== undefined, timeoutMs).catch(() => undefined);
    const ack = acked(zone, from);
    if (!ack) return undefined;
    return { append, exists: await existsAt, ack: ack.at, link: ack.frame.extended?.some((x) => x.kind === "V") };
  };
  try {
    const mediaPort = mode === "on" ? await freePort() : undefined;
    await red.deploy(oursFlow(stack, folder, receiver.tcpPort, { mediaPort }));
    for (let i = 0; ; i++) {
      if (await one(WARMUP_ZONE, 5000)) break;
      if (i > 10) throw new Error(`${mode}: nothing came through; log:\n${red.log()}`);
    }
    const side: Side = { mode, own: [], total: [], missing: 0, cpuMs: 0, withLink: 0 };
    const cpuBefore = cpuMsOf(red.child.pid);
    for (let i = 0; i < COUNT; i++) {
      // Past Dovecot's 500 ms IDLE timer started by the previous email's \Seen (see bench/end-to-end.ts).
      await sleep(600 + Math.random() * 600);
      const s = await one((i % (WARMUP_ZONE - 1)) + 1, 10_000);
      if (!s) {
        side.missing++;
        continue;
      }
      side.own.push(s.ack - s.exists);
      side.total.push(s.ack - s.append);
      if (s.link) side.withLink++;
    }
    side.cpuMs = cpuMsOf(red.child.pid) - cpuBefore;
    return side;
  } finally {
    await exists.close();
    await red.stop();
    if (profileFile) process.stderr.write(`CPU profile: ${profileFile}\n`);
  }
}

/** Downloads `url` whole; ms and bytes. */
function download(url: string): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    request(url, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      res.on("end", () => resolve({ ms: performance.now() - started, bytes }));
    })
      .on("error", reject)
      .end();
  });
}

/** A 25 MB clip kept and downloaded at its link, in this process (server and client on one core budget). */
async function clipDownload(): Promise<{ mbPerS: number[]; cpuMsPerDownload: number }> {
  const dir = mkdtempSync(join(tmpdir(), "bench-media-"));
  const port = await freePort();
  const evidence = await Evidence.start({
    store: { dir, types: ["video/mp4"], maxFileBytes: 100 * 1024 * 1024, retentionDays: 1, maxTotalBytes: 1 << 30 },
    baseUrl: `http://127.0.0.1:${port}`,
    linkValidMs: 3_600_000,
    maxFilesPerAlarm: 1,
    listen: { host: "127.0.0.1", port },
    signingKey: signingKeyBytes("YmVuY2gtc2lnbmluZy1rZXktb2YtdGhlLWNlbnRyZS0x"),
    log: () => {},
  });
  try {
    const clip = Buffer.alloc(CLIP_MB * 1024 * 1024, 7);
    const { media } = await evidence.keep([
      { filename: "clip.mp4", contentType: "video/mp4", size: clip.length, content: clip },
    ]);
    const url = media[0]?.url ?? "";
    await download(url); // warm the page cache and the server
    const mbPerS: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < 5; i++) {
      const { ms, bytes } = await download(url);
      if (bytes !== clip.length) throw new Error(`downloaded ${bytes} of ${clip.length} bytes`);
      mbPerS.push(Math.round(bytes / 1024 / 1024 / (ms / 1000)));
    }
    const cpu = process.cpuUsage(cpu0);
    return { mbPerS, cpuMsPerDownload: Math.round((cpu.user + cpu.system) / 1000 / 5) };
  } finally {
    await evidence.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
};

async function main(): Promise<void> {
  ensureTestCertificates(CERT_DIR);
  const stack = await startMailStack("bench-media", { extraFolders: ["media-off", "media-on"] });
  const receiver = await startDc09Receiver({ behaviour: "ack" });
  const sides: Side[] = [];
  try {
    for (const mode of (f.str("modes") ?? "off,on").split(",") as Mode[])
      sides.push(await measure(mode, stack, receiver));
  } finally {
    await receiver.close();
    await stack.stop();
  }
  const clip = await clipDownload();
  const rows = sides.map((s) => {
    const own = stats(s.own);
    const total = stats(s.total);
    const perAlarm = s.own.length ? Math.round(s.cpuMs / s.own.length) : Number.NaN;
    return `| ${s.mode} | ${s.own.length} | ${own.p50} | ${own.p99} | ${own.max} | ${total.p50} | ${total.p99} | ${perAlarm} | ${s.withLink} | ${s.missing} |`;
  });
  for (const r of rows) console.log(r);
  const clipLine = `25 MB clip at its signed link over loopback, 5 downloads: ${clip.mbPerS.join(", ")} MB/s; CPU ${clip.cpuMsPerDownload} ms per download (server and client in one process)`;
  console.log(clipLine);
  const on = sides.find((s) => s.mode === "on");
  const onP99 = on ? stats(on.own).p99 : Number.NaN;
  const goals: GoalRow[] = [
    {
      what: `own share p99 (EXISTS → ACK), ${JPEG_KB} KB JPEG, media storing on`,
      goal: "≤ 100 ms",
      ours: `${onP99} ms`,
      anchor: "-",
      met: Number.isFinite(onP99) ? onP99 <= 100 : null,
    },
  ];
  if (!f.has("write-results")) return;
  recordGoals("media", goals);
  writeSection(
    "media",
    [
      "## Alarm media: own share with a 1 MB picture, and a 25 MB clip's download",
      "",
      `\`node --import tsx bench/media.ts --count ${COUNT} --jpeg-kb ${JPEG_KB} --clip-mb ${CLIP_MB}\`, ${today()}, ${machine()}.`,
      `Each email carries a ${JPEG_KB} KB JPEG (base64 in the email) and is appended 0.6-1.2 s after the previous one came through;`,
      "one Node-RED child per mode in turn, same Dovecot and receiver: email-connector → data-map (classic) → line-driver",
      "(DC-09, outbox fsync on), with media off, then on (the picture written and fsynced, then the alarm with its [V]",
      "link). Own share = ACK − EXISTS at a plain IDLE client (see End to end). CPU = the Node-RED child's user+system",
      "time over the measured emails, per alarm (10 ms clock ticks).",
      "",
      "| media | alarms | own p50 | own p99 | own max | APPEND → ACK p50 | p99 | CPU ms per alarm | frames with [V] | missing |",
      "|---|---|---|---|---|---|---|---|---|---|",
      ...rows,
      "",
      `${clipLine}.`,
      "",
      ...goalTable(goals),
    ].join("\n"),
  );
}

runMain(main);
