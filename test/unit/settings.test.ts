// Field validation: each mistake a user makes in the editor gets a message that says what to enter.
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { validateOAuthSettings } from "../../src/core/oauth/settings";
import { appCertificate } from "../helpers/tenant";

const base = { tenant: "contoso.com", clientId: "0f3e9d4c-8b7a-4c6d-9e1f-2a3b4c5d6e7f" };

function problems(fields: object, creds: object = { clientSecret: "abc~def" }): string {
  const v = validateOAuthSettings({ ...base, ...fields }, creds);
  return v.ok ? "" : v.problems.join("\n");
}

describe("validateOAuthSettings", () => {
  it("accepts a GUID or a domain as tenant, and resolves the cloud's hosts", () => {
    const v = validateOAuthSettings(
      { ...base, tenant: "7b1c2e0a-52f4-4a8e-9c1d-3f5e8a9b0c11", cloud: "usgov" },
      { clientSecret: "x~y" },
    );
    assert.ok(v.ok);
    assert.equal(v.settings.cloud.outlookHost, "outlook.office365.us");
    assert.equal(problems({}), "");
  });

  const cases: [string, object, object | undefined, RegExp][] = [
    ["empty tenant", { tenant: "" }, undefined, /Tenant is empty/],
    ["tenant with spaces", { tenant: "my tenant" }, undefined, /neither a GUID nor a domain/],
    ["multi-tenant alias", { tenant: "common" }, undefined, /cannot be used for app-only/],
    ["client id not a GUID", { clientId: "my-app" }, undefined, /Client ID "my-app" is not a GUID/],
    ["secret ID pasted instead of value", {}, { clientSecret: "2b7e1a3c-1111-4222-8333-944455556666" }, /Secret ID/],
    ["empty secret", {}, { clientSecret: "" }, /Client secret is empty/],
    [
      "custom cloud with a URL",
      { cloud: "custom", authorityHost: "https://login.example", outlookHost: "o.example", graphHost: "g.example" },
      undefined,
      /Authority host "https:\/\/login.example" is not a host name/,
    ],
    ["certificate without key", { credentialKind: "certificate" }, {}, /Private key is empty/],
    [
      "certificate with garbage key",
      { credentialKind: "certificate" },
      { privateKey: "nope" },
      /not a readable PEM key/,
    ],
  ];
  for (const [name, fields, creds, expected] of cases) {
    it(`explains: ${name}`, () => {
      assert.match(problems(fields, creds), expected);
    });
  }

  it("checks that the private key belongs to the certificate, and derives the thumbprint", () => {
    const a = appCertificate("validate-a");
    const b = appCertificate("validate-b");
    const mismatch = problems(
      { credentialKind: "certificate" },
      { privateKey: b.privateKeyPem, certificate: a.certificatePem },
    );
    assert.match(mismatch, /does not belong to the certificate/);
    const v = validateOAuthSettings(
      { ...base, credentialKind: "certificate" },
      { privateKey: a.privateKeyPem, certificate: a.certificatePem },
    );
    assert.ok(v.ok && v.settings.credential.kind === "certificate");
    assert.equal(
      v.settings.credential.thumbprint,
      new X509Certificate(a.certificatePem).fingerprint256.replace(/:/g, ""),
    );
    assert.match(
      problems({ credentialKind: "certificate", thumbprint: "12:34" }, { privateKey: a.privateKeyPem }),
      /thumbprint \(40 or 64 hex/,
    );
  });

  it("refuses keys MSAL cannot sign with (EC, Ed25519, RSA under 2048 bits) before any token request", () => {
    const pem = (type: "ec" | "ed25519" | "rsa", options: object) =>
      generateKeyPairSync(type as "ec", options as { namedCurve: string })
        .privateKey.export({ type: "pkcs8", format: "pem" })
        .toString();
    const thumbprint = "ab".repeat(32);
    const refusal = (privateKey: string) => problems({ credentialKind: "certificate", thumbprint }, { privateKey });
    assert.match(refusal(pem("ec", { namedCurve: "P-256" })), /is an EC key \(prime256v1\): MSAL signs .* RSA only/);
    assert.match(refusal(pem("ed25519", {})), /key of type ed25519: MSAL signs .* RSA only/);
    assert.match(refusal(pem("rsa", { modulusLength: 1024 })), /RSA with 1024 bits: .* 2048 bits or more/);
    assert.equal(refusal(pem("rsa", { modulusLength: 2048 })), "");
  });

  it("knows the US Government DoD hosts, apart from GCC High's", () => {
    const hosts = (cloud: string) => {
      const v = validateOAuthSettings({ ...base, cloud }, { clientSecret: "x~y" });
      assert.ok(v.ok);
      return v.settings.cloud;
    };
    assert.deepEqual(hosts("usdod"), {
      authorityHost: "login.microsoftonline.us",
      outlookHost: "outlook-dod.office365.us",
      graphHost: "dod-graph.microsoft.us",
    });
    assert.equal(hosts("usgov").graphHost, "graph.microsoft.us");
  });
});
