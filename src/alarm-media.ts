// Node-RED adapter for `alarm-media`: the config node that keeps alarms' pictures and clips under the
// user directory and serves them at signed links on a listener of its own (src/core/media/). Line-drivers
// that name it keep an alarm's media before they accept the alarm.
import { join } from "node:path";
import type { Node, NodeAPI, NodeDef } from "node-red";
import { Evidence } from "./core/media/evidence";
import { signingKeyBytes } from "./core/media/signed-link";

interface AlarmMediaDef extends NodeDef {
  host: string;
  port: string | number;
  baseUrl: string;
  tls: boolean;
  /** Content types kept, separated by commas; "image/*" keeps every image type. */
  types: string;
  maxFileMb: string | number;
  maxFiles: string | number;
  retentionDays: string | number;
  maxTotalMb: string | number;
  linkValidHours: string | number;
}

interface AlarmMediaCredentials {
  signingKey?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** What a line-driver sees of the config node. */
export interface AlarmMediaNode extends Node<AlarmMediaCredentials> {
  /** Rejects (with the reason) when the node's settings cannot work: the line-driver then accepts no alarm with media. */
  evidence?: Promise<Evidence>;
}

export const MEDIA_DEFAULTS = {
  host: "127.0.0.1",
  port: 1882,
  types: "image/jpeg, image/png, image/gif, video/mp4",
  maxFileMb: 50,
  maxFiles: 10,
  retentionDays: 30,
  maxTotalMb: 2048,
  linkValidHours: 168,
} as const;

const MB = 1024 * 1024;

/** The editor's "open the last picture": how long its link works. */
const EDITOR_LINK_MS = 10 * 60 * 1000;

module.exports = (RED: NodeAPI) => {
  const deployed = new Map<string, AlarmMediaNode>();

  function AlarmMedia(this: AlarmMediaNode, def: AlarmMediaDef) {
    RED.nodes.createNode(this, def);
    const log = (level: "info" | "warn" | "error", message: string) =>
      level === "info" ? this.log(message) : level === "warn" ? this.warn(message) : this.error(message);
    this.evidence = (async () => {
      const creds = this.credentials ?? {};
      if (!creds.signingKey) throw new Error("no signing key: open the alarm media node and deploy it again");
      const port = number(def.port, MEDIA_DEFAULTS.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port "${def.port}" is not 1-65535`);
      if (def.tls && (!creds.tlsCert || !creds.tlsKey))
        throw new Error("HTTPS is on: paste the certificate chain and its private key (PEM)");
      const retentionDays = number(def.retentionDays, MEDIA_DEFAULTS.retentionDays);
      const linkValidHours = number(def.linkValidHours, MEDIA_DEFAULTS.linkValidHours);
      if (linkValidHours > retentionDays * 24)
        log(
          "warn",
          `links work for ${linkValidHours} h but files are kept ${retentionDays} days: late links answer 404`,
        );
      return Evidence.start({
        store: {
          dir: join(RED.settings.userDir ?? process.cwd(), "alarm-gateway", `media-${this.id}`),
          types: String(def.types || MEDIA_DEFAULTS.types)
            .split(",")
            .map((t) => t.trim())
            .filter(Boolean),
          maxFileBytes: number(def.maxFileMb, MEDIA_DEFAULTS.maxFileMb) * MB,
          retentionDays,
          maxTotalBytes: number(def.maxTotalMb, MEDIA_DEFAULTS.maxTotalMb) * MB,
        },
        baseUrl: def.baseUrl,
        linkValidMs: linkValidHours * 3_600_000,
        maxFilesPerAlarm: Math.max(1, Math.round(number(def.maxFiles, MEDIA_DEFAULTS.maxFiles))),
        listen: {
          host: def.host?.trim() || MEDIA_DEFAULTS.host,
          port,
          ...(def.tls && creds.tlsCert && creds.tlsKey ? { tls: { cert: creds.tlsCert, key: creds.tlsKey } } : {}),
        },
        signingKey: signingKeyBytes(creds.signingKey),
        log,
      });
    })();
    this.evidence.catch((err: unknown) => this.error(`alarm media not started: ${(err as Error).message}`));
    deployed.set(this.id, this);
    this.on("close", (done: () => void) => {
      deployed.delete(this.id);
      (this.evidence as Promise<Evidence>)
        .then((e) => e.close())
        .catch(() => {})
        .then(done);
    });
  }

  RED.nodes.registerType<AlarmMediaNode, AlarmMediaDef, object, AlarmMediaCredentials>("alarm-media", AlarmMedia, {
    credentials: {
      signingKey: { type: "password" },
      tlsCert: { type: "text" },
      tlsKey: { type: "password" },
    },
  });

  // The dialog's "Open the last picture": a link valid for ten minutes to the file kept last, at the base URL
  // operators use (so opening it also proves that address works).
  RED.httpAdmin.get("/alarm-media/:id/last", RED.auth.needsPermission("alarm-media.read"), (req, res) => {
    const node = deployed.get(String(req.params.id));
    if (!node?.evidence) {
      res.status(404).json({ error: "not deployed" });
      return;
    }
    node.evidence.then(
      (e) => {
        const last = e.store.last;
        if (!last) res.status(404).json({ error: "no picture kept since the last deploy" });
        else res.json({ ...e.describe(last, EDITOR_LINK_MS), storedAt: last.storedAt });
      },
      (err: unknown) => res.status(409).json({ error: `not started: ${(err as Error).message}` }),
    );
  });
};

function number(value: string | number | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
