// The three hosts that differ between Microsoft clouds. "custom" is how sovereign clouds
// not listed here, and local stand-ins, are reached: the same setting a real user has.

export type CloudName = "global" | "usgov" | "usdod" | "china" | "custom";

export interface CloudHosts {
  /** Entra ID host, e.g. login.microsoftonline.com (may carry :port for custom clouds). */
  authorityHost: string;
  /** Exchange Online host: the IMAP server and the resource of IMAP tokens. */
  outlookHost: string;
  /** Microsoft Graph host: the Graph base URL and the resource of Graph tokens. */
  graphHost: string;
}

export const KNOWN_CLOUDS: Record<Exclude<CloudName, "custom">, CloudHosts> = {
  global: {
    authorityHost: "login.microsoftonline.com",
    outlookHost: "outlook.office365.com",
    graphHost: "graph.microsoft.com",
  },
  // GCC (not High) tenants live in the global cloud and use "global".
  // GCC High (learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints,
  // learn.microsoft.com/graph/deployments).
  usgov: {
    authorityHost: "login.microsoftonline.us",
    outlookHost: "outlook.office365.us",
    graphHost: "graph.microsoft.us",
  },
  // DoD: same authority as GCC High; Exchange Online is outlook-dod.office365.us (also reachable as
  // webmail.apps.mil, IMAP on 993: microsoft-365-u-s-government-dod-endpoints), Graph dod-graph.microsoft.us.
  usdod: {
    authorityHost: "login.microsoftonline.us",
    outlookHost: "outlook-dod.office365.us",
    graphHost: "dod-graph.microsoft.us",
  },
  // Operated by 21Vianet.
  china: {
    authorityHost: "login.chinacloudapi.cn",
    outlookHost: "partner.outlook.cn",
    graphHost: "microsoftgraph.chinacloudapi.cn",
  },
};

export const CLOUD_NAMES: readonly CloudName[] = ["global", "usgov", "usdod", "china", "custom"];

/** The resource (token audience) of a host: what Exchange or Graph checks in `aud`. */
export function resourceOf(host: string): string {
  return `https://${host}`;
}

/** Client-credentials scopes are always `<resource>/.default` (AADSTS70011 otherwise). */
export function defaultScopeOf(host: string): string {
  return `${resourceOf(host)}/.default`;
}

export type ResourceKind = "outlook" | "graph";

export function hostOf(cloud: CloudHosts, kind: ResourceKind): string {
  return kind === "outlook" ? cloud.outlookHost : cloud.graphHost;
}

/** Permission (app role) each use needs, granted by admin consent. */
export const REQUIRED_ROLES = {
  imap: { resource: "outlook", role: "IMAP.AccessAsApp" },
  graphRead: { resource: "graph", role: "Mail.ReadWrite" },
  graphSend: { resource: "graph", role: "Mail.Send" },
} as const satisfies Record<string, { resource: ResourceKind; role: string }>;

export type Permission = keyof typeof REQUIRED_ROLES;
