// `npm start`: Node-RED with this pack and a demo flow, wired to local stand-ins of
// Microsoft's side, so that nothing but this clone is needed. Dev-only: never shipped.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startNodeRed } from "../test/helpers/node-red-process";
import { startTestTenant } from "../test/helpers/tenant";
import { REPO_ROOT } from "../test/standin/paths";
import { demoFlow } from "./demo-flow";

const PORT = Number(process.env.PORT ?? 1880);
const ENTRA_PORT = Number(process.env.ENTRA_PORT ?? 18443);

async function main(): Promise<void> {
  const userDir = join(REPO_ROOT, ".node-red");
  const tenant = await startTestTenant({ port: ENTRA_PORT });
  console.log(`Entra ID stand-in: https://${tenant.entra.host} (tenant ${tenant.fields.tenant})`);
  const firstRun = !existsSync(join(userDir, "flows.json"));
  const red = await startNodeRed({ userDir, port: PORT, keepUserDir: true });
  if (firstRun) await red.deploy(demoFlow(tenant));
  console.log(`Node-RED with @alarm-gateway/node-red-o365: ${red.url}`);
  console.log("Open the 'Contoso (stand-in)' configuration node and press Test. Ctrl-C stops everything.");
  red.child.stdout?.pipe(process.stdout);
  red.child.stderr?.pipe(process.stderr);
  const stop = async () => {
    await red.stop();
    await tenant.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
