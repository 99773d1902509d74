// Scenario 8: with adminAuth on, every admin endpoint the pack registers refuses a caller without
// its permission: anonymous callers always, a read-only login for what needs ".write". The routes
// are read from the compiled nodes (what Node-RED loads), so a new one is checked without listing it.
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startMailStack } from "../test/helpers/mail-stack";
import { Gateway, NODE, SOAK_ADMIN, SOAK_DIR } from "../test/helpers/soak-gateway";
import { type ScenarioResult, Verdict } from "../test/helpers/soak-report";
import { REPO_ROOT } from "../test/standin/paths";

export interface AdminRoute {
  method: string;
  path: string;
  /** null: registered without RED.auth.needsPermission. */
  permission: string | null;
  file: string;
}

/** Admin routes in nodes/*.js: RED.httpAdmin.<method>("<path>", RED.auth.needsPermission("<p>"), ...). */
export function adminRoutes(dir = join(REPO_ROOT, "nodes")): AdminRoute[] {
  const routes: AdminRoute[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".js"))) {
    const code = readFileSync(join(dir, file), "utf8");
    const route = /RED\.httpAdmin\.(get|post|put|delete|patch)\(\s*["'`]([^"'`]+)["'`]\s*,\s*([^,]*)/g;
    for (const m of code.matchAll(route)) {
      const permission = /RED\.auth\.needsPermission\(\s*["'`]([^"'`]+)["'`]\s*\)/.exec(m[3]!)?.[1] ?? null;
      routes.push({ method: m[1]!.toUpperCase(), path: m[2]!, permission, file });
    }
  }
  return routes;
}

/** A body each POST route accepts, so that "refused" means the permission and not a bad request. */
function bodyFor(route: AdminRoute, gateway: Gateway): unknown {
  if (route.method === "GET") return undefined;
  if (route.path.startsWith("/o365-oauth-config")) return { id: NODE.config, ...gateway.o.stack.tenant.fields };
  if (route.path.startsWith("/data-map"))
    return { map: { rules: [] }, raw: "Subject: x\r\n\r\n123588\r\nBA\r\n1\r\n1\r\n" };
  if (route.path.startsWith("/line-driver")) return { id: NODE.line, host: "127.0.0.1", port: gateway.o.receiverPort };
  return {};
}

async function call(gateway: Gateway, route: AdminRoute, token: string | undefined): Promise<number> {
  const path = route.path.replace(/:id\b/, route.path.startsWith("/data-map") ? NODE.map : NODE.line);
  const body = bodyFor(route, gateway);
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${gateway.red.url}${path}`, {
    method: route.method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return res.status;
}

export async function adminPermissions(
  o: { name?: string; log?: (line: string) => void } = {},
): Promise<ScenarioResult> {
  const v = new Verdict(8, "admin endpoints without the needed permission (adminAuth on)");
  const name = o.name ?? "8-admin-permissions";
  const dir = join(SOAK_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  const stack = await startMailStack(name);
  let gateway: Gateway | undefined;
  try {
    // No receiver is needed: nothing is delivered; the port only has to be valid.
    gateway = await Gateway.start({ dir, stack, receiverPort: 9, adminAuth: SOAK_ADMIN });
    const readOnly = await gateway.token("read");
    const full = await gateway.token("*");
    const routes = adminRoutes();
    // Node-RED's own credentials route, which must never answer anonymously either.
    const core: AdminRoute[] = [
      {
        method: "GET",
        path: `/credentials/o365-oauth-config/${NODE.config}`,
        permission: "credentials.read",
        file: "node-red",
      },
      {
        method: "GET",
        path: `/credentials/line-driver/${NODE.line}`,
        permission: "credentials.read",
        file: "node-red",
      },
      { method: "GET", path: "/flows", permission: "flows.read", file: "node-red" },
      { method: "POST", path: "/flows", permission: "flows.write", file: "node-red" },
    ];
    const rows: string[] = [];
    let refusals = 0;
    for (const route of [...routes, ...core]) {
      const label = `${route.method} ${route.path}`;
      if (!v.check(route.permission !== null, `${label} (${route.file}) has no RED.auth.needsPermission`)) continue;
      const anonymous = await call(gateway, route, undefined);
      v.check(anonymous === 401, `${label} answered ${anonymous} to an anonymous caller`);
      const writes = /\.write$/.test(route.permission!);
      const asReader = route.path === "/flows" && route.method === "POST" ? 401 : await call(gateway, route, readOnly);
      if (writes) v.check(asReader === 401 || asReader === 403, `${label} answered ${asReader} to a read-only login`);
      else v.check(asReader !== 401 && asReader !== 403, `${label} refused a read-only login (${asReader})`);
      const asAdmin = route.method === "POST" && route.path === "/flows" ? 0 : await call(gateway, route, full);
      if (asAdmin !== 0) v.check(asAdmin !== 401 && asAdmin !== 403, `${label} refused the full login (${asAdmin})`);
      refusals += (anonymous === 401 ? 1 : 0) + (writes && asReader >= 401 && asReader <= 403 ? 1 : 0);
      rows.push(
        `${label} [${route.permission}]: anonymous ${anonymous}, read-only ${asReader}, admin ${asAdmin || "-"}`,
      );
    }
    v.numbers["pack routes"] = routes.length;
    v.numbers["Node-RED routes"] = core.length;
    v.numbers["refusals checked"] = refusals;
    v.note(rows.join("; "));
  } catch (err) {
    v.crashed(err);
  } finally {
    await gateway?.stop().catch(() => undefined);
    await stack.stop();
  }
  return v.result();
}
