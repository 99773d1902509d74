// Writes examples/*.json (Import > Examples in Node-RED) from the demo flow, with the
// stand-in's values replaced by placeholders a user fills in. Run: npx tsx scripts/write-examples.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../test/standin/paths";
import { demoFlow } from "./demo-flow";

const placeholders = {
  tenant: "contoso.onmicrosoft.com",
  clientId: "00000000-0000-0000-0000-000000000000",
  credentialKind: "secret",
  cloud: "global",
  authorityHost: "",
  outlookHost: "",
  graphHost: "",
};

const flow = demoFlow({
  tenant: { fields: placeholders, credentials: {} } as never,
  mailbox: "alarms@contoso.com",
  receiverPort: 12345,
  sendAlarmUrl: "",
})
  .filter((n) => !["demo-inject", "demo-send"].includes((n as { id: string }).id))
  .map((n) => {
    const node = { ...(n as Record<string, unknown>) };
    delete node.credentials;
    if (node.type === "o365-oauth-config") node.name = "Office 365 (fill in tenant, client id, secret)";
    if (node.id === "demo-note") {
      node.name = "Open the Office 365 config node, fill in your app registration, press Test, deploy";
      node.info =
        "Each email comes out of the connector; sending the message back in marks it read (replace with a line-driver).";
    }
    if (node.type === "tab") node.label = "Office 365 alarm mailbox";
    if (node.type === "line-driver") node.host = "receiver.example.com";
    return node;
  });

writeFileSync(
  join(REPO_ROOT, "examples", "01 - Alarm mailbox to alarm events.json"),
  `${JSON.stringify(flow, null, 2)}\n`,
);
