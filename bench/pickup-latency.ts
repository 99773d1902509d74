// Pickup latency: APPEND by another client → message out of the node, ours (email-connector,
// XOAUTH2 token from the Entra ID stand-in) and the official node-red-node-email (password
// login, IDLE "auto" fetch), each in its own Node-RED child process, on the same Dovecot.
//   node --import tsx bench/pickup-latency.ts [--count 200] [--only ours|theirs]
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { emailConnectorDef } from "../test/helpers/flows";
import { alarmEmail, type MailStack, startMailStack } from "../test/helpers/mail-stack";
import { startNodeRed } from "../test/helpers/node-red-process";
import { MAILBOX } from "../test/helpers/tenant";
import { ensureTestCertificates } from "../test/standin/certs";
import { CERT_DIR, RUN_DIR } from "../test/standin/paths";
import { ANCHOR_VERSION, ensureAnchorInstalled } from "./anchor";
import { type GoalRow, machine, percentile, recordGoals, writeSection } from "./results-file";

type Who = "ours" | "theirs";

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const COUNT = Number(arg("count") ?? 200);
const ONLY = arg("only") as Who | undefined;
const ANCHOR_PASSWORD = "password-for-the-anchor";

interface Report {
  s: string;
  t: number;
}

function flowFor(who: Who, stack: MailStack, udpPort: number): object[] {
  const report = {
    id: "report",
    type: "function",
    z: "tab",
    name: "report",
    x: 400,
    y: 100,
    func: `return [{ payload: JSON.stringify({ s: msg.topic, t: Date.now() }) }, msg];`,
    outputs: 2,
    wires: [["udp"], who === "ours" ? ["conn"] : []],
  };
  const udp = {
    id: "udp",
    type: "udp out",
    z: "tab",
    x: 600,
    y: 100,
    addr: "127.0.0.1",
    port: String(udpPort),
    ipv: "udp4",
    outport: "",
    base64: false,
    multicast: "false",
    iface: "",
    wires: [],
  };
  const tab = { id: "tab", type: "tab", label: "bench" };
  if (who === "ours") {
    return [
      tab,
      { id: "cfg", type: "o365-oauth-config", ...stack.tenant.fields, credentials: { ...stack.tenant.credentials } },
      {
        id: "conn",
        z: "tab",
        x: 150,
        y: 100,
        ...emailConnectorDef({ oauth: "cfg", folder: "bench-ours" }),
        wires: [["report"]],
      },
      report,
      udp,
    ];
  }
  return [
    tab,
    {
      id: "conn",
      type: "e-mail in",
      z: "tab",
      x: 150,
      y: 100,
      protocol: "IMAP",
      server: "127.0.0.1",
      useSSL: true,
      autotls: "never",
      port: String(stack.dovecot.imapsPort),
      authtype: "BASIC",
      box: "bench-theirs",
      disposition: "Read",
      criteria: "UNSEEN",
      repeat: "60",
      fetch: "auto",
      inputs: 0,
      credentials: { userid: MAILBOX, password: ANCHOR_PASSWORD },
      wires: [["report"]],
    },
    report,
    udp,
  ];
}

async function measure(
  who: Who,
  stack: MailStack,
): Promise<{ latencies: number[]; duplicates: number; missing: number }> {
  const udpSocket = createSocket("udp4");
  const reports = new Map<string, number[]>();
  const waiters = new Map<string, () => void>();
  udpSocket.on("message", (buf) => {
    const r = JSON.parse(buf.toString()) as Report;
    reports.set(r.s, [...(reports.get(r.s) ?? []), r.t]);
    waiters.get(r.s)?.();
  });
  await new Promise<void>((resolve) => udpSocket.bind(0, "127.0.0.1", resolve));
  const red = await startNodeRed({
    userDir: join(RUN_DIR, `bench-pickup-${who}`),
    linkModules: who === "theirs" ? [ensureAnchorInstalled()] : [],
    logFile: join(RUN_DIR, `bench-pickup-${who}.log`),
  });
  const folder = who === "ours" ? "bench-ours" : "bench-theirs";
  const arrived = (subject: string, timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      if (reports.has(subject)) return resolve(true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      waiters.set(subject, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  try {
    await red.deploy(flowFor(who, stack, udpSocket.address().port));
    // Warm-up: the node is connected and idling once a first email comes through.
    for (let i = 0; ; i++) {
      const subject = `${who}-warmup-${i}`;
      await stack.dovecot.append(MAILBOX, alarmEmail(subject), { folder });
      if (await arrived(subject, 5000)) break;
      if (i > 10) throw new Error(`${who}: no email came through; log:\n${red.log()}`);
    }
    const latencies: number[] = [];
    let missing = 0;
    for (let i = 0; i < COUNT; i++) {
      await sleep(200 + Math.random() * 2800);
      const subject = `${who}-${i}`;
      const raw = alarmEmail(subject);
      const t0 = Date.now();
      await stack.dovecot.append(MAILBOX, raw, { folder });
      if (!(await arrived(subject, 10_000))) {
        missing++;
        continue;
      }
      latencies.push((reports.get(subject)?.[0] ?? 0) - t0);
      if ((i + 1) % 50 === 0) process.stderr.write(`${who}: ${i + 1}/${COUNT}\n`);
    }
    await sleep(1000);
    const duplicates = [...reports.values()].reduce((n, ts) => n + ts.length - 1, 0);
    return { latencies: latencies.sort((a, b) => a - b), duplicates, missing };
  } finally {
    await red.stop();
    udpSocket.close();
  }
}

async function main(): Promise<void> {
  ensureTestCertificates(CERT_DIR);
  if (!process.env.NODE_EXTRA_CA_CERTS) process.env.NODE_EXTRA_CA_CERTS = join(CERT_DIR, "ca.pem");
  const stack = await startMailStack("bench-pickup", { extraFolders: ["bench-ours", "bench-theirs"] });
  const rows: string[] = [];
  const measured = new Map<Who, number[]>();
  try {
    for (const who of (["ours", "theirs"] as Who[]).filter((w) => !ONLY || w === ONLY)) {
      const { latencies, duplicates, missing } = await measure(who, stack);
      measured.set(who, latencies);
      const line = `| ${who === "ours" ? "@alarm-gateway email-connector (XOAUTH2)" : `node-red-node-email ${ANCHOR_VERSION} (password, IDLE)`} | ${latencies.length} | ${percentile(latencies, 50)} | ${percentile(latencies, 99)} | ${latencies.at(-1)} | ${duplicates} | ${missing} |`;
      console.log(line);
      rows.push(line);
    }
  } finally {
    await stack.stop();
  }
  // Issue #10: ≤ the anchor's + 10 ms (on the machine it was written on: p50 ≤ 515, p99 ≤ 560).
  const ours = measured.get("ours");
  const theirs = measured.get("theirs");
  const goal = (p: number, absolute: number): GoalRow => {
    const o = ours && ours.length > 0 ? percentile(ours, p) : undefined;
    const t = theirs && theirs.length > 0 ? percentile(theirs, p) : undefined;
    return {
      what: `pickup p${p} (APPEND → message out, ${COUNT} emails)`,
      goal: `≤ anchor + 10 ms (≤ ${absolute} ms)`,
      ours: o === undefined ? "-" : `${o} ms`,
      anchor: t === undefined ? "-" : `${t} ms`,
      met: o === undefined ? null : o <= absolute || (t !== undefined && o <= t + 10),
    };
  };
  recordGoals("pickup-latency", [goal(50, 515), goal(99, 560)]);
  writeSection(
    "pickup-latency",
    [
      "## Pickup latency (APPEND → message out of the node)",
      "",
      `\`node --import tsx bench/pickup-latency.ts --count ${COUNT}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}.`,
      "Emails spaced randomly 0.2-3 s apart, appended by another IMAP client to the same Dovecot 2.3.19;",
      "each node in its own Node-RED 4.1 child process; times in ms. Dovecot notifies IDLE clients 500 ms after a change (the floor).",
      "",
      "| node | emails | p50 | p99 | max | duplicates | missing |",
      "|---|---|---|---|---|---|---|",
      ...rows,
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
