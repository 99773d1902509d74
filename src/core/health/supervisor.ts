// The gateway supervises itself as alarm equipment does: it raises its own trouble events to the centre
// when it cannot see a mailbox, or cannot deliver, for longer than set, and a restore when that clears;
// and, per site, a late-to-test event when a site's periodic test email does not come in time (a restore
// when it comes). Plain logic over the health registry's snapshot; the node turns events into messages.
import type { AlarmEvent } from "../datamap/types";
import type { HealthSnapshot } from "./registry";

export interface TroubleCodes {
  /** Contact ID event (3 digits) and SIA codes for the event and its restore. */
  cid: string;
  sia: string;
  siaRestore: string;
}

/**
 * Defaults: the gateway blind on a mailbox is a communication trouble (Contact ID 350, SIA YC
 * "communications fail" / YK "communications restoral", as the data-map's default table reads them); alarms
 * not getting out is a failure to communicate (Contact ID 354, SIA RT "unable to report" / YK, as fire and
 * intrusion panels report it: Honeywell IFP-2000 and Interlogix NX-8E reporting tables); a late periodic test
 * is a communication trouble of the site (350, SIA YS "communications trouble" / YK).
 */
export const DEFAULT_CODES: Record<"mailbox" | "backlog" | "lateTest", TroubleCodes> = {
  mailbox: { cid: "350", sia: "YC", siaRestore: "YK" },
  backlog: { cid: "354", sia: "RT", siaRestore: "YK" },
  lateTest: { cid: "350", sia: "YS", siaRestore: "YK" },
};

export interface ExpectedSite {
  account: string;
  everyHours: number;
}

export interface SupervisionSettings {
  /** The gateway's own account at the centre. */
  account: string;
  format: "SIA" | "CID";
  /** 0: not supervised. */
  mailboxMinutes: number;
  backlogMinutes: number;
  codes: Record<"mailbox" | "backlog" | "lateTest", TroubleCodes>;
  sites: ExpectedSite[];
}

/** What survives a restart: the troubles raised (to restore them later) and when each site was last heard. */
export interface SupervisionState {
  raised: Record<string, { since: number; text: string }>;
  lastSeen: Record<string, number>;
  startedAt: number;
}

type Kind = "mailbox" | "backlog" | "lateTest";

/** Zones of the gateway's own troubles: which kind (the text names which mailbox or line-driver). */
const ZONE: Record<Kind, number> = { mailbox: 1, backlog: 2, lateTest: 0 };

export class Supervisor {
  constructor(
    private readonly settings: SupervisionSettings,
    readonly state: SupervisionState,
  ) {}

  /** An alarm from a site came in: a late test of that account is restored. */
  heard(account: string, now: number): AlarmEvent[] {
    const site = this.settings.sites.find((s) => s.account.toUpperCase() === account.toUpperCase());
    if (!site) return [];
    this.state.lastSeen[site.account] = now;
    const key = `lateTest:${site.account}`;
    return this.clear(key, "lateTest", site.account, `test email of ${site.account} received again`, now);
  }

  /** The troubles to raise and restore now. */
  evaluate(snapshot: HealthSnapshot, now: number): AlarmEvent[] {
    const out: AlarmEvent[] = [];
    const { mailboxMinutes, backlogMinutes } = this.settings;
    const present = new Set<string>();
    if (mailboxMinutes > 0) {
      for (const c of snapshot.connectors) {
        const key = `mailbox:${c.id}`;
        const label = `${c.name || c.mailbox} (${c.transport}, ${c.mailbox})`;
        if (c.blindSince !== null && now - c.blindSince >= mailboxMinutes * 60_000) {
          present.add(key);
          out.push(
            ...this.raise(
              key,
              "mailbox",
              this.settings.account,
              `gateway cannot see mailbox ${label}: ${c.reason}`,
              now,
            ),
          );
        } else if (c.blindSince === null) {
          out.push(...this.clear(key, "mailbox", this.settings.account, `gateway sees mailbox ${label} again`, now));
        } else present.add(key); // blind, not yet for long enough: a raised one stays
      }
    }
    if (backlogMinutes > 0) {
      for (const l of snapshot.lineDrivers) {
        const key = `backlog:${l.id}`;
        const label = l.name || `${l.protocol} line-driver ${l.id}`;
        const oldest = l.oldestUndeliveredAt;
        if (oldest !== null && now - oldest >= backlogMinutes * 60_000) {
          present.add(key);
          const age = Math.round((now - oldest) / 60_000);
          out.push(
            ...this.raise(
              key,
              "backlog",
              this.settings.account,
              `alarms not delivered by ${label} for ${age} min (${l.outboxDepth} waiting)`,
              now,
            ),
          );
        } else if (oldest === null || now - oldest < backlogMinutes * 60_000) {
          out.push(...this.clear(key, "backlog", this.settings.account, `${label} delivers again`, now));
        }
      }
    }
    for (const site of this.settings.sites) {
      const key = `lateTest:${site.account}`;
      const last = this.state.lastSeen[site.account] ?? this.state.startedAt;
      if (now - last >= site.everyHours * 3_600_000)
        out.push(
          ...this.raise(
            key,
            "lateTest",
            site.account,
            `late to test: no email from ${site.account} for ${site.everyHours} h`,
            now,
          ),
        );
    }
    // A connector or line-driver removed by a redeploy: its raised trouble is restored, not left open forever.
    for (const key of Object.keys(this.state.raised)) {
      const [kind, id] = key.split(":") as [Kind, string];
      if (kind === "lateTest" || present.has(key)) continue;
      const known =
        kind === "mailbox"
          ? snapshot.connectors.some((c) => c.id === id)
          : snapshot.lineDrivers.some((l) => l.id === id);
      if (!known) out.push(...this.clear(key, kind, this.settings.account, `${kind} ${id} no longer deployed`, now));
    }
    return out;
  }

  private raise(key: string, kind: Kind, account: string, text: string, now: number): AlarmEvent[] {
    if (this.state.raised[key]) return [];
    this.state.raised[key] = { since: now, text };
    return [this.event(kind, account, "new", text, now)];
  }

  private clear(key: string, kind: Kind, account: string, text: string, now: number): AlarmEvent[] {
    if (!this.state.raised[key]) return [];
    delete this.state.raised[key];
    return [this.event(kind, account, "restore", text, now)];
  }

  private event(kind: Kind, account: string, qualifier: "new" | "restore", text: string, now: number): AlarmEvent {
    const codes = this.settings.codes[kind];
    const siaCode = qualifier === "new" ? codes.sia : codes.siaRestore;
    return {
      account,
      eventCode: this.settings.format === "CID" ? codes.cid : siaCode,
      eventFormat: this.settings.format,
      qualifier,
      siaCode,
      cidEvent: codes.cid,
      zone: ZONE[kind],
      area: null,
      user: null,
      text: text.slice(0, 200),
      occurredAt: new Date(now).toISOString(),
      attachments: [],
      source: { messageId: null, from: "", subject: "", receivedAt: null },
      extra: { supervision: kind },
    };
  }
}
