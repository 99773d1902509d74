// The flow `npm start` deploys on first run, pointing at the local stand-ins.
import type { TestTenant } from "../test/helpers/tenant";

export function demoFlow(tenant: TestTenant): object[] {
  return [
    { id: "demo-tab", type: "tab", label: "Alarm gateway demo" },
    {
      id: "demo-o365",
      type: "o365-oauth-config",
      name: "Contoso (stand-in)",
      ...tenant.fields,
      credentials: { ...tenant.credentials },
    },
    {
      id: "demo-note",
      type: "comment",
      z: "demo-tab",
      name: "Open the o365-oauth-config node 'Contoso (stand-in)' (Configuration nodes) and press Test",
      info: "The tenant, app and secret point at a local Entra ID stand-in started by `npm start`.",
      x: 330,
      y: 60,
      wires: [],
    },
  ];
}
