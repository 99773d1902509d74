// What the editor's Test button reports: a checklist, each line with the exact fix.
import { hostOf, REQUIRED_ROLES, type ResourceKind, resourceOf } from "./cloud";
import type { OAuthSettings } from "./settings";
import { TokenError } from "./token-errors";
import { adminConsentUrl, TokenProvider } from "./token-provider";

export type CheckState = "pass" | "fail" | "warn";

export interface DiagnosisCheck {
  id: string;
  label: string;
  state: CheckState;
  detail: string;
  fix?: string;
}

export interface Diagnosis {
  ok: boolean;
  checks: DiagnosisCheck[];
  consentUrl?: string;
}

export function invalidSettingsDiagnosis(problems: string[]): Diagnosis {
  return {
    ok: false,
    checks: problems.map((p, i) => ({ id: `settings-${i}`, label: "Settings", state: "fail", detail: p })),
  };
}

/** Acquires a token per resource with a throw-away MSAL application and checks the granted roles. */
export async function diagnoseOAuth(settings: OAuthSettings, timeoutMs = 15_000): Promise<Diagnosis> {
  const provider = new TokenProvider(settings, { timeoutMs });
  const consentUrl = adminConsentUrl(settings.cloud.authorityHost, settings.tenant, settings.clientId);
  const checks: DiagnosisCheck[] = [];
  const roles = new Map<ResourceKind, string[] | TokenError>();
  for (const kind of ["outlook", "graph"] as const) {
    const resource = resourceOf(hostOf(settings.cloud, kind));
    try {
      const token = await provider.getToken(kind);
      roles.set(kind, token.roles);
      checks.push({ id: `token-${kind}`, label: `Token for ${resource}`, state: "pass", detail: "issued" });
    } catch (err) {
      const e =
        err instanceof TokenError
          ? err
          : new TokenError({ code: "unknown", summary: String(err), hint: "", transient: true });
      roles.set(kind, e);
      checks.push({
        id: `token-${kind}`,
        label: `Token for ${resource}`,
        state: "fail",
        detail: e.statusText,
        fix: e.hint,
      });
      // The same credential problem fails every resource alike: one line says it.
      if (!e.transient && e.code !== "AADSTS500011") break;
    }
  }
  for (const [use, { resource, role }] of Object.entries(REQUIRED_ROLES)) {
    const granted = roles.get(resource);
    if (!Array.isArray(granted)) continue;
    const ok = granted.includes(role);
    checks.push({
      id: `role-${use}`,
      label: `Permission ${role}`,
      state: ok ? "pass" : use === "graphSend" ? "warn" : "fail",
      detail: ok ? "admin consent granted" : "not granted (admin consent missing)",
      fix: ok
        ? undefined
        : `Add the application permission ${role} to the app registration and have an administrator grant consent (link below).`,
    });
  }
  const hasRole = (use: keyof typeof REQUIRED_ROLES) =>
    checks.some((c) => c.id === `role-${use}` && c.state === "pass");
  const ok = hasRole("imap") || hasRole("graphRead");
  return { ok, checks, consentUrl };
}
