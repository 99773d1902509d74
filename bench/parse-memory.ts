// Peak memory of parseEmail for camera emails with a 25 MB clip, streamed from a file.
// Run: node --expose-gc --import tsx bench/parse-memory.ts
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { discardSpool, parseEmail } from "../src/core/mail/parse-email";

const WORK = join(__dirname, ".work", `parse-memory-${process.pid}`);
const ATTACHMENT_BYTES = 25 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Writes the email in pieces so that building it does not itself hold 25 MB. */
async function writeEmail(path: string): Promise<void> {
  const out = createWriteStream(path);
  const write = async (s: string): Promise<void> => {
    if (!out.write(s)) await once(out, "drain");
  };
  await write(
    [
      "From: Camera 7 <cam7@site.example>",
      "To: alarms@gateway.example",
      "Subject: Motion detected, camera 7",
      "Message-ID: <bench@site.example>",
      "Date: Tue, 01 Jul 2025 10:15:00 +0200",
      "MIME-Version: 1.0",
      "Content-Type: multipart/mixed; boundary=b",
      "",
      "--b",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Motion detected at camera 7, zone 2",
      "--b",
      'Content-Type: video/mp4; name="clip.mp4"',
      "Content-Transfer-Encoding: base64",
      "",
      "",
    ].join("\r\n"),
  );
  // 57 bytes of data make one 76-character base64 line; pseudo-random so nothing compresses it away
  let block = Buffer.from("seed");
  const lines: string[] = [];
  for (let done = 0; done < ATTACHMENT_BYTES; done += 57) {
    if (lines.length === 0 || done % (57 * 64) === 0) block = createHash("sha512").update(block).digest();
    lines.push(block.subarray(0, Math.min(57, ATTACHMENT_BYTES - done)).toString("base64"));
    if (lines.length === 2000) await write(`${lines.splice(0).join("\r\n")}\r\n`);
  }
  await write(`${lines.join("\r\n")}\r\n--b--\r\n`);
  out.end();
  await once(out, "finish");
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function measure(label: string, run: () => Promise<void>): Promise<void> {
  gc();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const start = process.hrtime.bigint();
  await run();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(
    `${label}: ${ms.toFixed(0)} ms, peak RSS growth ${((peak - base) / MiB).toFixed(1)} MiB ` +
      `(base ${(base / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB)`,
  );
}

async function parseOne(file: string, spoolDir: string): Promise<void> {
  const email = await parseEmail(createReadStream(file), { maxInMemoryBytes: MiB, spoolDir });
  const clip = email.attachments[0];
  if (clip?.size !== ATTACHMENT_BYTES || clip.content !== null || !clip.path) {
    throw new Error(`unexpected result: ${JSON.stringify({ ...clip, content: undefined })}`);
  }
  await discardSpool(email);
}

async function main(): Promise<void> {
  if (typeof (globalThis as { gc?: unknown }).gc !== "function")
    console.log("(run with --expose-gc for stabler numbers)");
  await mkdir(WORK, { recursive: true });
  const file = join(WORK, "camera.eml");
  try {
    await writeEmail(file);
    console.log(`email with a ${ATTACHMENT_BYTES / MiB} MiB attachment, maxInMemoryBytes 1 MiB, spooled`);
    await measure("1 email", () => parseOne(file, join(WORK, "spool-single")));
    await measure("20 emails one after another", async () => {
      for (let i = 0; i < 20; i++) await parseOne(file, join(WORK, `spool-${i}`));
    });
  } finally {
    await rm(WORK, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
