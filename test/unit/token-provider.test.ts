// TokenProvider against the Entra ID stand-in over real HTTPS.
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { validateOAuthSettings } from "../../src/core/oauth/settings";
import { TokenError } from "../../src/core/oauth/token-errors";
import { TokenProvider } from "../../src/core/oauth/token-provider";
import { appCertificate, CLIENT_ID, startTestTenant, type TestTenant } from "../helpers/tenant";
import { ensureTestCertificates } from "../standin/certs";
import { EntraStandin } from "../standin/entra";
import { RUN_DIR } from "../standin/paths";

function providerFor(tenant: TestTenant, overrides: Record<string, string> = {}, creds = tenant.credentials) {
  const v = validateOAuthSettings({ ...tenant.fields, ...overrides }, creds);
  assert.ok(v.ok, JSON.stringify(!v.ok && v.problems));
  return new TokenProvider(v.settings, { timeoutMs: 2000 });
}

async function failure(p: Promise<unknown>): Promise<TokenError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TokenError, `expected TokenError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the token request to fail");
}

describe("TokenProvider", () => {
  let tenant: TestTenant;
  before(async () => {
    tenant = await startTestTenant();
  });
  after(() => tenant.stop());

  it("serves ten users from one token request, per resource", async () => {
    const provider = providerFor(tenant);
    const start = tenant.entra.tokenRequestCount;
    const tokens = await Promise.all(
      Array.from({ length: 10 }, () => provider.getToken("outlook", "IMAP.AccessAsApp")),
    );
    for (let i = 0; i < 10; i++) await provider.getToken("outlook");
    assert.equal(new Set(tokens.map((t) => t.token)).size, 1);
    assert.equal(tenant.entra.tokenRequestCount - start, 1);
    const graph = await provider.getToken("graph", "Mail.ReadWrite");
    assert.notEqual(graph.token, tokens[0]?.token);
    assert.equal(tenant.entra.tokenRequestCount - start, 2, "one more request for the second resource");
    assert.deepEqual(tokens[0]?.roles, ["IMAP.AccessAsApp"]);
  });

  it("renews once for many users after the server rejects a token, not on every retry", async () => {
    const provider = providerFor(tenant);
    const first = await provider.getToken("outlook");
    const start = tenant.entra.tokenRequestCount;
    const renewed = await Promise.all(
      Array.from({ length: 10 }, () => provider.renewAfterRejection("outlook", first.token)),
    );
    assert.equal(tenant.entra.tokenRequestCount - start, 1);
    assert.equal(new Set(renewed.map((t) => t.token)).size, 1);
    assert.notEqual(renewed[0]?.token, first.token);
    // A late caller still holding the old token gets the new one without a request.
    const late = await provider.renewAfterRejection("outlook", first.token);
    assert.equal(late.token, renewed[0]?.token);
    // Rejected again straight away: no new request (the caller must back off instead).
    await provider.renewAfterRejection("outlook", late.token);
    assert.equal(tenant.entra.tokenRequestCount - start, 1);
  });

  it("reports a missing admin consent by the role's name, with the consent link", async () => {
    const provider = providerFor(tenant);
    const err = await failure(provider.getToken("outlook", "Mail.Send"));
    assert.equal(err.code, "missing-role");
    assert.match(err.statusText, /admin consent missing for Mail\.Send/);
    assert.match(err.hint, new RegExp(`/adminconsent\\?client_id=${CLIENT_ID}`));
    assert.equal(err.transient, false);
  });

  const aadstsCases: [string, () => TokenProvider, string, RegExp][] = [
    [
      "wrong secret",
      () => providerFor(tenant, {}, { clientSecret: "not-the-secret" }),
      "AADSTS7000215",
      /Value is needed, not its Secret ID/,
    ],
    [
      "unknown app",
      () => providerFor(tenant, { clientId: "11111111-1111-1111-1111-111111111111" }),
      "AADSTS700016",
      /client\) ID/,
    ],
    [
      "unknown tenant",
      () => providerFor(tenant, { tenant: "fabrikam.test" }),
      "AADSTS90002",
      /Directory \(tenant\) ID/,
    ],
    [
      "unknown resource host",
      () => providerFor(tenant, { graphHost: "graph.nowhere.test" }),
      "AADSTS500011",
      /custom hosts/,
    ],
  ];
  for (const [name, make, code, hint] of aadstsCases) {
    it(`explains ${name} as ${code} with its fix`, async () => {
      const kind = name === "unknown resource host" ? "graph" : "outlook";
      const err = await failure(make().getToken(kind));
      assert.equal(err.code, code);
      assert.match(err.hint, hint);
      assert.equal(err.transient, false);
      assert.ok(!err.message.includes(tenant.app.secret ?? "?"), "the secret is never in an error");
    });
  }

  it("explains an expired secret (AADSTS7000222)", async () => {
    const expired = await startTestTenant({ app: { secretExpired: true } });
    try {
      const err = await failure(providerFor(expired).getToken("outlook"));
      assert.equal(err.code, "AADSTS7000222");
      assert.match(err.hint, /new client secret/);
    } finally {
      await expired.stop();
    }
  });

  it("explains Conditional Access (AADSTS53003), and recovers when the policy is lifted", async () => {
    const provider = providerFor(tenant);
    tenant.entra.failWith({ kind: "conditional-access" });
    const err = await failure(provider.getToken("outlook"));
    assert.equal(err.code, "AADSTS53003");
    assert.match(err.hint, /exclude the workload identity/);
    tenant.entra.failWith(undefined);
    assert.ok((await provider.getToken("outlook")).token);
    assert.equal(provider.state("outlook")?.ok, true);
  });

  it("treats a server error as transient; MSAL then holds back further requests for a while", async () => {
    const provider = providerFor(tenant);
    tenant.entra.failWith({ kind: "server-error" });
    const err = await failure(provider.getToken("outlook"));
    const sent = tenant.entra.tokenRequestCount;
    tenant.entra.failWith(undefined);
    assert.equal(err.code, "AADSTS50000");
    assert.equal(err.transient, true);
    // MSAL's throttling cache answers from memory (60 s without Retry-After): no hammering of Entra ID.
    const again = await failure(provider.getToken("outlook"));
    assert.equal(again.transient, true);
    assert.equal(tenant.entra.tokenRequestCount, sent);
  });

  it("reports state changes and recovers after throttling with Retry-After", async () => {
    const provider = providerFor(tenant);
    const seen: string[] = [];
    provider.onStateChange((kind, s) => seen.push(`${kind}:${s.ok ? "ok" : s.error.code}`));
    tenant.entra.failWith({ kind: "throttled", retryAfterSeconds: 1 });
    const err = await failure(provider.getToken("graph"));
    tenant.entra.failWith(undefined);
    assert.equal(err.code, "AADSTS50196");
    assert.equal(err.transient, true);
    await sleep(1100);
    await provider.getToken("graph");
    assert.deepEqual(seen, ["graph:AADSTS50196", "graph:ok"]);
  });

  it("gives up on a silent token endpoint after the timeout", async () => {
    const provider = providerFor(tenant);
    tenant.entra.failWith({ kind: "timeout" });
    const t0 = Date.now();
    const err = await failure(provider.getToken("outlook"));
    tenant.entra.failWith(undefined);
    assert.equal(err.code, "timeout");
    assert.ok(Date.now() - t0 < 4000);
    assert.equal(err.transient, true);
  });

  it("names an untrusted authority certificate instead of a bare network error", async () => {
    const foreignCerts = ensureTestCertificates(`${RUN_DIR}/untrusted-certs`);
    const untrusted = new EntraStandin({ certs: foreignCerts, resources: [], tenants: [] });
    await untrusted.start();
    try {
      const err = await failure(providerFor(tenant, { authorityHost: untrusted.host }).getToken("outlook"));
      assert.equal(err.code, "tls");
      assert.match(err.statusText, /not trusted/);
      assert.equal(untrusted.tokenRequestCount, 0);
    } finally {
      await untrusted.stop();
    }
  });

  it("names an unreachable authority", async () => {
    const err = await failure(providerFor(tenant, { authorityHost: "127.0.0.1:1" }).getToken("outlook"));
    assert.equal(err.code, "network");
    assert.match(err.statusText, /cannot reach 127\.0\.0\.1:1/);
  });

  for (const [kind, code, hint] of [
    ["consent-required", "AADSTS65001", /No administrator of this tenant has consented/],
    ["account-not-found", "AADSTS50034", /sign in as an administrator of this tenant/],
  ] as const) {
    it(`explains ${code} with its fix and the consent link`, async () => {
      const provider = providerFor(tenant);
      tenant.entra.failWith({ kind });
      try {
        const err = await failure(provider.getToken("outlook"));
        assert.equal(err.code, code);
        assert.equal(err.transient, false, "retrying does not help: an administrator must act");
        assert.match(err.hint, hint);
        assert.ok(
          err.hint.endsWith(
            `Consent link: https://${tenant.entra.host}/${tenant.fields.tenant}/adminconsent?client_id=${CLIENT_ID}&state=alarm-gateway`,
          ),
          err.hint,
        );
      } finally {
        tenant.entra.failWith(undefined);
      }
    });
  }

  describe("with a certificate credential", () => {
    const good = appCertificate("app");
    const other = appCertificate("other");
    let certTenant: TestTenant;
    before(async () => {
      certTenant = await startTestTenant({ app: { secret: undefined, certificatePem: good.certificatePem } });
    });
    after(() => certTenant.stop());

    const certFields = { credentialKind: "certificate" };
    it("gets a token with key + certificate", async () => {
      const p = providerFor(certTenant, certFields, {
        privateKey: good.privateKeyPem,
        certificate: good.certificatePem,
      });
      assert.deepEqual((await p.getToken("outlook")).roles, ["IMAP.AccessAsApp"]);
    });

    it("gets a token with key + SHA-1 or SHA-256 thumbprint", async () => {
      const x509 = new X509Certificate(good.certificatePem);
      for (const thumbprint of [x509.fingerprint, x509.fingerprint256]) {
        const p = providerFor(certTenant, { ...certFields, thumbprint }, { privateKey: good.privateKeyPem });
        assert.ok((await p.getToken("outlook")).token);
      }
    });

    it("cannot sign with an EC key, which is why settings refuse one (no request reaches Entra ID)", async () => {
      const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
        .privateKey.export({ type: "pkcs8", format: "pem" })
        .toString();
      const v = validateOAuthSettings(certTenant.fields, { clientSecret: "unused~x" });
      assert.ok(v.ok);
      // Past validation, as a node would be without the check: MSAL fails only at token time.
      const thumbprint = new X509Certificate(good.certificatePem).fingerprint256.replace(/:/g, "");
      const settings = { ...v.settings, credential: { kind: "certificate" as const, privateKey: ec, thumbprint } };
      const before = certTenant.entra.tokenRequestCount;
      const err = await failure(new TokenProvider(settings, { timeoutMs: 2000 }).getToken("outlook"));
      assert.doesNotMatch(err.code, /^AADSTS/);
      assert.match(err.message, /"alg" parameter for "ec" key type must be one of: ES256/);
      assert.equal(certTenant.entra.tokenRequestCount, before);
    });

    it("explains a key that does not match the uploaded certificate (AADSTS700027)", async () => {
      const thumbprint = new X509Certificate(other.certificatePem).fingerprint256;
      const p = providerFor(certTenant, { ...certFields, thumbprint }, { privateKey: other.privateKeyPem });
      const err = await failure(p.getToken("outlook"));
      assert.equal(err.code, "AADSTS700027");
      assert.match(err.hint, /does not match this private key/);
    });
  });

  it("renews a short-lived token before it expires (MSAL's 5-minute margin)", async () => {
    const shortLived = await startTestTenant({ lifetimeSeconds: 302 });
    try {
      const provider = providerFor(shortLived);
      const first = await provider.getToken("outlook");
      assert.equal((await provider.getToken("outlook")).token, first.token, "served from cache at first");
      await sleep(3200); // MSAL counts expiry in whole seconds
      const second = await provider.getToken("outlook");
      assert.notEqual(second.token, first.token, "renewed once within MSAL's margin");
      assert.equal(shortLived.entra.tokenRequestCount, 2);
    } finally {
      await shortLived.stop();
    }
  });
});
