// A monitoring centre's doubled gateway, for the shared-mode tests and soak (issue #16): one
// mailbox (Dovecot or the Graph stand-in, behind a TCP proxy that can cut one gateway host off),
// one DC-09 receiver, and N real Node-RED processes, each with its own user directory, running
// the same example flow with the email-connector's "share this mailbox" option on.
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Dc09Receiver, startDc09Receiver } from "../standin/dc09-receiver";
import { GraphStandin } from "../standin/graph";
import { freePort } from "../standin/ports";
import { startTcpProxy, type TcpProxy } from "../standin/tcp-proxy";
import { type MailStack, startMailStack } from "./mail-stack";
import { DC09_KEY, Gateway, type GatewayOptions, NODE, SOAK_DIR } from "./soak-gateway";
import { appendEmails, soakAccount, soakAlarmEmail } from "./soak-mail";
import { type Tally, tally } from "./soak-report";
import { MAILBOX, TENANT_ID } from "./tenant";

export type SiteTransport = "imap" | "graph";

export interface SharedSiteOptions {
  name: string;
  transport: SiteTransport;
  /** Overrides of each gateway's email-connector (shared mode is on already). */
  connector?: Record<string, unknown>;
  lineDriver?: Record<string, unknown>;
  /** More options of each gateway (e.g. tapUdpPort); the site's own ones above win. */
  gateway?: Partial<GatewayOptions>;
}

export interface SiteGateway {
  index: number;
  gateway: Gateway;
  /** Runs of this slot so far; each gets its own folder of logs. */
  generation: number;
}

export class SharedSite {
  readonly gateways = new Map<number, SiteGateway>();
  /** Gateways killed or stopped: their records are read before they go, for the split. */
  private readonly pastRecords: { index: number; accounts: string[] }[] = [];
  /** Slots whose user directory was prepared (copied) before their first start: kept by it. */
  private readonly preparedUserDirs = new Set<number>();

  private constructor(
    readonly o: SharedSiteOptions,
    readonly stack: MailStack,
    readonly receiver: Dc09Receiver,
    /** Every gateway's way to the mailbox (IMAP or Graph). */
    readonly proxy: TcpProxy,
    readonly graph: GraphStandin | undefined,
    private readonly extraStop: () => Promise<void>,
  ) {}

  static async start(o: SharedSiteOptions): Promise<SharedSite> {
    const receiver = await startDc09Receiver({ key: Buffer.from(DC09_KEY, "hex") });
    if (o.transport === "imap") {
      const stack = await startMailStack(`shared-${o.name}`, { viaProxy: true });
      if (!stack.proxy) throw new Error("mail stack without proxy");
      return new SharedSite(o, stack, receiver, stack.proxy, undefined, async () => {});
    }
    const graphPort = await freePort();
    const proxyPort = await freePort();
    const graphHost = `127.0.0.1:${proxyPort}`;
    const stack = await startMailStack(`shared-${o.name}`, { graphHost });
    const graph = new GraphStandin({
      certs: stack.tenant.certs,
      signingKey: { kid: stack.tenant.entra.kid, publicKeyPem: stack.tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: graphHost,
      publicHost: graphHost,
      mailboxes: [MAILBOX],
      folders: ["Processed", "Review"],
      port: graphPort,
    });
    await graph.start();
    const proxy = await startTcpProxy(graphPort, proxyPort);
    return new SharedSite(o, stack, receiver, proxy, graph, async () => {
      await proxy.close();
      await graph.stop();
    });
  }

  private dirOf(index: number, generation: number): string {
    return join(SOAK_DIR, `shared-${this.o.name}`, `gw${index}`, `run${generation}`);
  }

  private userDirOf(index: number): string {
    return join(SOAK_DIR, `shared-${this.o.name}`, `gw${index}`, "userdir");
  }

  /** Starts gateway `index` (again): same user directory unless it was lost. */
  async startGateway(index: number, opts: { freshUserDir?: boolean } = {}): Promise<Gateway> {
    const previous = this.gateways.get(index);
    const generation = (previous?.generation ?? 0) + 1;
    const userDir = this.userDirOf(index);
    const keep = !opts.freshUserDir && (previous !== undefined || this.preparedUserDirs.has(index));
    this.preparedUserDirs.delete(index);
    if (!keep) rmSync(userDir, { recursive: true, force: true });
    const gateway = await Gateway.start({
      ...this.o.gateway,
      dir: this.dirOf(index, generation),
      userDir,
      keepUserDir: keep,
      stack: this.stack,
      receiverPort: this.receiver.tcpPort,
      connector: {
        shared: true,
        ...(this.o.transport === "graph" ? { transport: "graph", graphPoll: 1 } : {}),
        ...this.o.connector,
      },
      lineDriver: this.o.lineDriver,
    });
    this.gateways.set(index, { index, gateway, generation });
    return gateway;
  }

  /**
   * Copies gateway `from`'s user directory (its instance id, flows, outbox) to slot `to`, as an
   * administrator cloning a host would; the next startGateway(to) runs on the copy.
   */
  copyUserDir(from: number, to: number): void {
    const target = this.userDirOf(to);
    rmSync(target, { recursive: true, force: true });
    // The pack's link in node_modules is copied as a link, not followed into the repository.
    cpSync(this.userDirOf(from), target, { recursive: true, verbatimSymlinks: true });
    this.preparedUserDirs.add(to);
  }

  /** Waits until every running gateway's connector says it shares the mailbox with `live` gateways. */
  async waitForLive(live: number, timeoutMs = 60_000): Promise<void> {
    await Promise.all(
      [...this.gateways.values()]
        .filter((g) => g.gateway.alive)
        .map((g) =>
          // "shared by 1 gateway," in the singular.
          g.gateway.comms.waitForStatus(NODE.connector, new RegExp(`shared by ${live} gateways?,`), { timeoutMs }),
        ),
    );
  }

  /** The id gateway `index` goes by in the mailbox (its claim folder and lease), once it has one. */
  instanceOf(index: number): string | undefined {
    const dir = join(this.userDirOf(index), "alarm-gateway", "shared-identity");
    if (!existsSync(dir)) return undefined;
    for (const node of readdirSync(dir)) {
      const file = join(dir, node, "instance-id");
      if (existsSync(file)) return readFileSync(file, "utf8").trim();
    }
    return undefined;
  }

  /** kill -9 of one gateway; with loseUserDir its user directory is deleted too (the machine is gone). */
  async kill(index: number, opts: { loseUserDir?: boolean } = {}): Promise<void> {
    const g = this.gateways.get(index);
    if (!g) return;
    await this.keepRecords(g);
    await g.gateway.kill();
    if (opts.loseUserDir) rmSync(this.userDirOf(index), { recursive: true, force: true });
  }

  async stopGateway(index: number): Promise<void> {
    const g = this.gateways.get(index);
    if (!g?.gateway.alive) return;
    await this.keepRecords(g);
    await g.gateway.stop();
  }

  private async keepRecords(g: SiteGateway): Promise<void> {
    if (!g.gateway.alive) return;
    const records = await g.gateway.records().catch(() => []);
    this.pastRecords.push({
      index: g.index,
      accounts: records.filter((r) => r.kind === "delivered" && r.account).map((r) => r.account as string),
    });
  }

  /** Delivers `count` alarm emails tagged `tag` (hex digits: it starts the alarm account) into the shared folder. */
  async deliver(tag: string, count: number): Promise<string[]> {
    const accounts = Array.from({ length: count }, (_, i) => soakAccount(tag, i));
    const email = (i: number) => soakAlarmEmail(accounts[i] as string, { zone: (i % 9999) + 1 });
    if (this.graph) {
      for (let i = 0; i < count; i++) this.graph.deliver(MAILBOX, email(i));
    } else {
      const report = await appendEmails(this.stack, email, count);
      if (report.refused.length > 0) throw new Error(`Dovecot refused ${report.refused.length} emails`);
    }
    return accounts;
  }

  tally(accounts: string[]): Tally {
    return tally([this.receiver], accounts);
  }

  /** How many of `accounts` each gateway slot reported delivered (killed runs included). */
  async split(accounts: string[]): Promise<Map<number, number>> {
    const wanted = new Set(accounts);
    const counts = new Map<number, number>();
    const add = (index: number, list: string[]) =>
      counts.set(index, (counts.get(index) ?? 0) + list.filter((a) => wanted.has(a)).length);
    for (const p of this.pastRecords) add(p.index, p.accounts);
    for (const g of this.gateways.values()) {
      if (!g.gateway.alive) continue;
      const records = await g.gateway.records();
      add(
        g.index,
        records.filter((r) => r.kind === "delivered" && r.account).map((r) => r.account as string),
      );
    }
    return counts;
  }

  async stop(): Promise<void> {
    for (const g of this.gateways.values()) await g.gateway.stop().catch(() => undefined);
    await this.extraStop();
    await this.stack.stop();
    await this.receiver.close();
  }
}
