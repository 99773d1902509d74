// Reads the payload of an access token without verifying it: the resource server verifies;
// we only look at `roles` and `exp` to explain problems before the server refuses us.

export interface AccessTokenClaims {
  aud?: string;
  tid?: string;
  appid?: string;
  roles?: string[];
  exp?: number;
}

export function readClaims(token: string): AccessTokenClaims {
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const json = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
    return {
      aud: typeof json.aud === "string" ? json.aud : undefined,
      tid: typeof json.tid === "string" ? json.tid : undefined,
      appid: typeof json.appid === "string" ? json.appid : undefined,
      roles: Array.isArray(json.roles) ? json.roles.filter((r): r is string => typeof r === "string") : undefined,
      exp: typeof json.exp === "number" ? json.exp : undefined,
    };
  } catch {
    return {};
  }
}
