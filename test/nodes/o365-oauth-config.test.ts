// The config node in a real Node-RED process: credentials, the admin Test endpoint, secrets.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type NodeRedProcess, startNodeRed } from "../helpers/node-red-process";
import { CLIENT_SECRET, startTestTenant, type TestTenant } from "../helpers/tenant";
import { RUN_DIR } from "../standin/paths";

const ADMIN = { username: "admin", password: "admin-password-1" };
const CONFIG_ID = "cfg1";

describe("o365-oauth-config in Node-RED", () => {
  let tenant: TestTenant;
  let red: NodeRedProcess;
  const userDir = join(RUN_DIR, "nr-config-test");
  const responses: string[] = [];

  before(async () => {
    tenant = await startTestTenant();
    red = await startNodeRed({ userDir, adminAuth: ADMIN });
    await red.deploy([
      { id: "tab1", type: "tab", label: "Flow 1" },
      {
        id: CONFIG_ID,
        type: "o365-oauth-config",
        name: "Contoso",
        ...tenant.fields,
        credentials: { clientSecret: CLIENT_SECRET },
      },
    ]);
  });
  after(async () => {
    await red?.stop();
    await tenant?.stop();
  });

  async function api(method: string, path: string, body?: unknown, anonymous = false) {
    const res = await red.api(method, path, body, { anonymous });
    responses.push(JSON.stringify(res.body));
    return res;
  }

  it("lists the node type and serves its icon from the pack", async () => {
    const nodes = await api("GET", "/nodes");
    assert.equal(nodes.status, 200);
    const sets = nodes.body as { module: string; types: string[] }[];
    const ours = sets.find((s) => s.module === "@alarm-gateway/node-red-o365");
    assert.ok(ours, "module loaded");
    assert.ok(ours.types.includes("o365-oauth-config"));
    const icon = await fetch(`${red.url}/icons/@alarm-gateway/node-red-o365/o365-mail.svg`);
    assert.equal(icon.status, 200);
    assert.match(await icon.text(), /<svg/);
  });

  it("keeps the secret out of the flow, the editor and the files on disk", async () => {
    const flows = await api("GET", "/flows");
    assert.equal(flows.status, 200);
    const creds = await api("GET", `/credentials/o365-oauth-config/${CONFIG_ID}`);
    assert.equal(creds.status, 200);
    assert.equal(creds.body.has_clientSecret, true);
    assert.equal(creds.body.clientSecret, undefined);
    const onDisk = readFileSync(join(userDir, "flows.json"), "utf8");
    assert.match(onDisk, /o365-oauth-config/);
    assert.ok(!onDisk.includes(CLIENT_SECRET));
    assert.ok(!readFileSync(join(userDir, "flows_cred.json"), "utf8").includes(CLIENT_SECRET), "credentials encrypted");
  });

  const fieldsOf = () => ({ id: CONFIG_ID, ...tenant.fields });

  it("Test with the stored secret: token issued and each permission checked", async () => {
    const res = await api("POST", "/o365-oauth-config/test", {
      ...fieldsOf(),
      credentials: { clientSecret: "__PWRD__" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.ok, true);
    const states = Object.fromEntries((res.body.checks as { id: string; state: string }[]).map((c) => [c.id, c.state]));
    assert.deepEqual(states, {
      "token-outlook": "pass",
      "token-graph": "pass",
      "role-imap": "pass",
      "role-graphRead": "pass",
      "role-graphSend": "pass",
    });
    assert.match(res.body.consentUrl, /\/adminconsent\?client_id=/);
  });

  it("Test with a retyped wrong secret says which value to paste", async () => {
    const res = await api("POST", "/o365-oauth-config/test", {
      ...fieldsOf(),
      credentials: { clientSecret: "6d1f3a0e~wrong" },
    });
    assert.equal(res.body.ok, false);
    const token = (res.body.checks as { id: string; state: string; detail: string; fix: string }[])[0];
    assert.equal(token?.state, "fail");
    assert.match(token?.detail ?? "", /AADSTS7000215/);
    assert.match(token?.fix ?? "", /not its Secret ID/);
  });

  it("Test of incomplete settings names each problem without calling Entra ID", async () => {
    const before = tenant.entra.tokenRequestCount;
    const res = await api("POST", "/o365-oauth-config/test", {
      tenant: "not a tenant",
      clientId: "123",
      credentials: {},
    });
    assert.equal(res.body.ok, false);
    const details = (res.body.checks as { detail: string }[]).map((c) => c.detail).join("\n");
    assert.match(details, /neither a GUID nor a domain/);
    assert.match(details, /Client ID "123" is not a GUID/);
    assert.match(details, /Client secret is empty/);
    assert.equal(tenant.entra.tokenRequestCount, before);
  });

  it("Test with an EC private key says MSAL cannot sign with it, without asking Entra ID", async () => {
    const before = tenant.entra.tokenRequestCount;
    const privateKey = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    const res = await api("POST", "/o365-oauth-config/test", {
      ...fieldsOf(),
      credentialKind: "certificate",
      thumbprint: "ab".repeat(32),
      credentials: { privateKey },
    });
    assert.equal(res.body.ok, false);
    const details = (res.body.checks as { detail: string }[]).map((c) => c.detail).join("\n");
    assert.match(details, /EC key \(prime256v1\): MSAL signs client assertions with RSA only/);
    assert.equal(tenant.entra.tokenRequestCount, before);
  });

  it("Test when no administrator consented (AADSTS65001): the fix and the consent link", async () => {
    tenant.entra.failWith({ kind: "consent-required" });
    try {
      const res = await api("POST", "/o365-oauth-config/test", {
        ...fieldsOf(),
        credentials: { clientSecret: "__PWRD__" },
      });
      assert.equal(res.body.ok, false);
      const [token] = res.body.checks as { id: string; state: string; detail: string; fix: string }[];
      assert.equal(token?.id, "token-outlook");
      assert.match(token?.detail ?? "", /no admin consent in this tenant \(AADSTS65001\)/);
      assert.match(
        token?.fix ?? "",
        /administrator opens the consent link.*Consent link: https:\/\/.*\/adminconsent\?client_id=/,
      );
      assert.equal(res.body.checks.length, 1, "one line: the same refusal for every resource");
    } finally {
      tenant.entra.failWith(undefined);
    }
  });

  /** A host that would collect what is sent to it: counts the connections made to it. */
  async function collector(): Promise<{ host: string; connections: () => number; close: () => Promise<void> }> {
    let count = 0;
    const server = createServer((socket) => {
      count++;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    return {
      host: `127.0.0.1:${port}`,
      connections: () => count,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  it("Test naming another authority host without a secret sends nothing, there or anywhere", async () => {
    const evil = await collector();
    const before = tenant.entra.tokenRequestCount;
    try {
      for (const credentials of [{ clientSecret: "__PWRD__" }, {}, undefined]) {
        const res = await api("POST", "/o365-oauth-config/test", {
          ...fieldsOf(),
          authorityHost: evil.host,
          mailbox: "alarms@contoso.test",
          credentials,
        });
        assert.equal(res.status, 200);
        assert.equal(res.body.ok, false);
        const checks = res.body.checks as { id: string; state: string; detail: string; fix: string }[];
        assert.deepEqual(
          checks.map((c) => [c.id, c.state]),
          [["stored-credential", "fail"]],
        );
        assert.match(checks[0]?.detail ?? "", new RegExp(`not sent.*authority ${tenant.entra.host} → ${evil.host}`));
        assert.match(checks[0]?.fix ?? "", /Enter it again/);
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(evil.connections(), 0, "nothing reached the named host");
      assert.equal(tenant.entra.tokenRequestCount, before, "nor the stored one");
    } finally {
      await evil.close();
    }
  });

  it("Test naming another tenant, Outlook or Graph host without a secret sends nothing", async () => {
    const evil = await collector();
    const before = tenant.entra.tokenRequestCount;
    try {
      for (const changed of [
        { tenant: "fabrikam.example" },
        { outlookHost: evil.host },
        { graphHost: evil.host },
        { cloud: "global" },
      ]) {
        const res = await api("POST", "/o365-oauth-config/test", {
          ...fieldsOf(),
          ...changed,
          mailbox: "alarms@contoso.test",
          credentials: { clientSecret: "__PWRD__" },
        });
        assert.equal(res.body.ok, false);
        assert.equal(res.body.checks[0]?.id, "stored-credential", JSON.stringify(changed));
      }
      const unknown = await api("POST", "/o365-oauth-config/test", {
        ...fieldsOf(),
        cloud: "moon",
        credentials: { clientSecret: "__PWRD__" },
      });
      assert.match(unknown.body.checks[0]?.detail ?? "", /Unknown cloud "moon": the stored secret is not sent/);
      assert.equal(evil.connections(), 0);
      assert.equal(tenant.entra.tokenRequestCount, before);
    } finally {
      await evil.close();
    }
  });

  it("Test with another host and the secret typed in goes to that host (the secret given, not the stored one)", async () => {
    const other = await collector();
    try {
      const res = await api("POST", "/o365-oauth-config/test", {
        ...fieldsOf(),
        authorityHost: other.host,
        credentials: { clientSecret: "typed~for-the-other-host" },
      });
      assert.equal(res.body.ok, false);
      assert.equal(res.body.checks[0]?.id, "token-outlook");
      assert.ok(other.connections() >= 1, "the Test did try the named host");
    } finally {
      await other.close();
    }
  });

  it("refuses the Test endpoint without admin rights", async () => {
    const res = await api("POST", "/o365-oauth-config/test", fieldsOf(), true);
    assert.equal(res.status, 401);
  });

  it("never shows the secret in an admin response or the log", () => {
    for (const body of responses) assert.ok(!body.includes(CLIENT_SECRET));
    assert.ok(!red.log().includes(CLIENT_SECRET));
  });
});
