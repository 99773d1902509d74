// The Microsoft Graph stand-in over real HTTPS, with tokens from the Entra ID stand-in.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { generateKeyPair, SignJWT } from "jose";
import {
  CLIENT_ID,
  CLIENT_SECRET,
  GRAPH_HOST,
  MAILBOX,
  OUTLOOK_HOST,
  startTestTenant,
  TENANT_ID,
  type TestTenant,
} from "../helpers/tenant";
import { GraphStandin, type GraphStandinOptions } from "../standin/graph";

const OTHER = "denied@contoso.test";

/** Claims as the Entra stand-in puts them in a client-credentials token. */
function appClaims(tenant: TestTenant, roles: string[], aud = `https://${GRAPH_HOST}`): Record<string, unknown> {
  const oid = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c";
  const claims: Record<string, unknown> = {
    aud,
    iss: tenant.entra.issuer(TENANT_ID),
    aio: randomUUID(),
    app_displayname: "Alarm gateway",
    appid: CLIENT_ID,
    appidacr: "1",
    idp: tenant.entra.issuer(TENANT_ID),
    idtyp: "app",
    oid,
    sub: oid,
    tid: TENANT_ID,
    uti: randomUUID().replace(/-/g, ""),
  };
  if (roles.length > 0) claims.roles = roles;
  return claims;
}

interface Answer {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: any;
}

describe("Graph stand-in", () => {
  let tenant: TestTenant;
  let graph: GraphStandin;
  let token: string;

  async function startGraph(extra: Partial<GraphStandinOptions> = {}): Promise<GraphStandin> {
    const g = new GraphStandin({
      certs: tenant.certs,
      signingKey: { kid: tenant.entra.kid, publicKeyPem: tenant.entra.publicKeyPem },
      tenantId: TENANT_ID,
      audienceHost: GRAPH_HOST,
      mailboxes: [MAILBOX, OTHER],
      deniedMailboxes: [OTHER],
      folders: ["Processed", "Review", "Inbox/Alarms"],
      ...extra,
    });
    await g.start();
    return g;
  }

  async function call(
    method: string,
    pathOrUrl: string,
    opts: { token?: string | null; body?: unknown; headers?: Record<string, string>; on?: GraphStandin } = {},
  ): Promise<Answer> {
    const g = opts.on ?? graph;
    const url = pathOrUrl.startsWith("https://") ? pathOrUrl : `https://${g.host}${pathOrUrl}`;
    const headers: Record<string, string> = { ...opts.headers };
    const bearer = opts.token === undefined ? token : opts.token;
    if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
      headers["Content-Type"] ??= "application/json";
    }
    const res = await fetch(url, { method, headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    const isJson = (res.headers.get("content-type") ?? "").startsWith("application/json");
    return {
      status: res.status,
      headers: res.headers,
      bytes,
      json: isJson ? JSON.parse(bytes.toString("utf8")) : undefined,
    };
  }

  const users = `/v1.0/users/${encodeURIComponent(MAILBOX)}`;

  function alarm(n: number, extraHeaders: string[] = []): string {
    return [
      `From: Panel ${n} <panel${n}@site.test>`,
      `To: ${MAILBOX}`,
      `Subject: =?utf-8?Q?Alarm_${n}_=C3=BC?=`,
      `Date: Tue, 03 Mar 2026 10:0${n % 10}:00 +0100`,
      `Message-ID: <alarm-${n}@site.test>`,
      ...extraHeaders,
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "",
      `Zone ${n} burglary`,
      "",
    ].join("\r\n");
  }

  /** Follows a delta round to its deltaLink; returns the pages. */
  async function deltaRound(start: string, headers: Record<string, string> = {}): Promise<any[]> {
    const pages: any[] = [];
    let next: string | undefined = start;
    while (next) {
      const r = await call("GET", next, { headers });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      pages.push(r.json);
      assert.ok(!(r.json["@odata.nextLink"] && r.json["@odata.deltaLink"]), "never both links");
      next = r.json["@odata.nextLink"];
    }
    return pages;
  }

  before(async () => {
    tenant = await startTestTenant();
    token = await tenant.entra.mintToken(appClaims(tenant, ["Mail.ReadWrite", "Mail.Send"]));
  });
  after(() => tenant.stop());
  beforeEach(async () => {
    graph = await startGraph();
  });
  afterEach(() => graph.stop());

  it("takes a token from the Entra stand-in's endpoint and resolves folders like Graph", async () => {
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      scope: `https://${GRAPH_HOST}/.default`,
    });
    const t = await fetch(`https://${tenant.entra.host}/${TENANT_ID}/oauth2/v2.0/token`, {
      method: "POST",
      body: form,
    });
    const issued = ((await t.json()) as { access_token: string }).access_token;

    const all = await call("GET", `${users}/mailFolders`, { token: issued });
    assert.equal(all.status, 200);
    const names = all.json.value.map((f: any) => f.displayName);
    assert.deepEqual([...names].sort(), [
      "Archive",
      "Deleted Items",
      "Drafts",
      "Inbox",
      "Junk Email",
      "Outbox",
      "Processed",
      "Review",
      "Sent Items",
    ]);
    const inbox = all.json.value.find((f: any) => f.displayName === "Inbox");
    assert.equal(inbox.id, graph.folderId(MAILBOX, "inbox"));
    assert.equal(inbox.childFolderCount, 1);

    // Pages of $top with an @odata.nextLink, as Graph pages mailFolders.
    const first = await call("GET", `${users}/mailFolders?$top=4`);
    assert.equal(first.json.value.length, 4);
    const second = await call("GET", first.json["@odata.nextLink"]);
    assert.equal(second.json.value.length, 4);
    const third = await call("GET", second.json["@odata.nextLink"]);
    assert.equal(third.json.value.length, 1);
    assert.equal(third.json["@odata.nextLink"], undefined);

    const byName = await call(
      "GET",
      `${users}/mailFolders?$filter=${encodeURIComponent("displayName eq 'processed'")}`,
    );
    assert.deepEqual(
      byName.json.value.map((f: any) => [f.id, f.displayName]),
      [[graph.folderId(MAILBOX, "Processed"), "Processed"]],
    );
    const children = await call("GET", `${users}/mailFolders/inbox/childFolders?$select=displayName`);
    assert.deepEqual(children.json.value, [{ id: graph.folderId(MAILBOX, "Inbox/Alarms"), displayName: "Alarms" }]);
    const one = await call("GET", `${users}/mailFolders('JunkEmail')`);
    assert.equal(one.json.displayName, "Junk Email");

    const gone = await call("GET", `${users}/mailFolders/AQMkADnotthereAAA=`, {
      headers: { "client-request-id": "abc" },
    });
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.code, "ErrorItemNotFound");
    assert.equal(gone.json.error.innerError["client-request-id"], "abc");
    assert.match(gone.json.error.innerError["request-id"], /^[0-9a-f-]{36}$/);
    assert.match(gone.json.error.innerError.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    const byDisplayName = await call("GET", `${users}/mailFolders/Processed`);
    assert.equal(byDisplayName.status, 400, "display names are not keys in Graph");
    assert.equal(byDisplayName.json.error.code, "ErrorInvalidIdMalformed");
  });

  it("delta pages with nextLink, ends with a deltaLink, then returns only what changed", async () => {
    const delivered = [1, 2, 3, 4, 5].map((n) => graph.deliver(MAILBOX, alarm(n)));
    const select = "$select=subject,isRead,internetMessageId";
    const pages = await deltaRound(`${users}/mailFolders/inbox/messages/delta?${select}`, {
      Prefer: "odata.maxpagesize=2",
    });
    assert.deepEqual(
      pages.map((p) => p.value.length),
      [2, 2, 1],
    );
    assert.ok(pages[0]["@odata.nextLink"].includes("$skiptoken="));
    const deltaLink: string = pages[2]["@odata.deltaLink"];
    assert.ok(deltaLink.includes("$deltatoken="));
    const items = pages.flatMap((p) => p.value);
    assert.deepEqual(items.map((i) => i.id).sort(), delivered.map((m) => m.id).sort());
    assert.deepEqual(Object.keys(items[0]).sort(), [
      "@odata.etag",
      "@odata.type",
      "id",
      "internetMessageId",
      "isRead",
      "subject",
    ]);
    assert.equal(items.find((i) => i.id === delivered[0]!.id).subject, "Alarm 1 ü");
    assert.equal(items.find((i) => i.id === delivered[0]!.id).internetMessageId, "<alarm-1@site.test>");

    const sixth = graph.deliver(MAILBOX, alarm(6));
    assert.equal(
      (await call("PATCH", `${users}/messages/${delivered[1]!.id}`, { body: { isRead: true } })).status,
      200,
    );
    assert.equal((await call("DELETE", `${users}/messages/${delivered[2]!.id}`)).status, 204);
    const next = await deltaRound(deltaLink);
    assert.equal(next.length, 1);
    const changes = next[0].value;
    assert.equal(changes.length, 3);
    assert.deepEqual(
      changes.find((c: any) => c.id === sixth.id),
      {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": `W/"${sixth.changeKey}"`,
        id: sixth.id,
        internetMessageId: "<alarm-6@site.test>",
        subject: "Alarm 6 ü",
        isRead: false,
      },
      "the $select of the first request is carried by the token",
    );
    assert.equal(changes.find((c: any) => c.id === delivered[1]!.id).isRead, true);
    assert.deepEqual(changes.find((c: any) => c.id === delivered[2]!.id)["@removed"], { reason: "deleted" });

    const quiet = await deltaRound(next[0]["@odata.deltaLink"]);
    assert.deepEqual(quiet[0].value, []);
    assert.ok(quiet[0]["@odata.deltaLink"]);
    // A saved deltaLink can be replayed (after a client restart it is all the client has).
    assert.equal((await deltaRound(deltaLink))[0].value.length, 3);
  });

  it("keeps changes made while a round is being paged for the next round", async () => {
    const [a, b, c] = [1, 2, 3].map((n) => graph.deliver(MAILBOX, alarm(n)));
    const first = await call("GET", `${users}/mailFolders/inbox/messages/delta`, {
      headers: { Prefer: "odata.maxpagesize=1" },
    });
    assert.deepEqual(
      first.json.value.map((m: any) => m.id),
      [a!.id],
    );
    assert.equal(first.headers.get("preference-applied"), "odata.maxpagesize=1");
    graph.setRead(MAILBOX, a!.id, true);
    graph.setRead(MAILBOX, c!.id, true);
    const late = graph.deliver(MAILBOX, alarm(4));
    const rest = await deltaRound(first.json["@odata.nextLink"], { Prefer: "odata.maxpagesize=1" });
    const seen = rest.flatMap((p) => p.value.map((m: any) => m.id));
    assert.deepEqual(seen, [b!.id], "c changed and the late message arrived after the round began");
    const next = await deltaRound(rest.at(-1)["@odata.deltaLink"]);
    assert.deepEqual(next[0].value.map((m: any) => m.id).sort(), [a!.id, c!.id, late.id].sort());
  });

  it("serves the MIME byte for byte, and the message as Graph's JSON", async () => {
    const mime = Buffer.concat([
      Buffer.from(alarm(7, ["X-Priority: 1", "Sender: Gateway <gw@site.test>"]).replace("burglary", "Einbruch ")),
      Buffer.from([0xe4, 0xf6, 0xfc, 0x0d, 0x0a, 0x0a, 0x00, 0xff]),
    ]);
    const stored = graph.deliver(MAILBOX, mime, { receivedDateTime: "2026-03-03T09:10:11.123Z" });
    const raw = await call("GET", `${users}/messages/${stored.id}/$value`);
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get("content-type"), "text/plain");
    assert.ok(raw.bytes.equals(mime));

    const msg = await call("GET", `${users}/mailFolders/inbox/messages/${stored.id}`);
    assert.equal(msg.status, 200);
    assert.equal(msg.json.subject, "Alarm 7 ü");
    assert.equal(msg.json.receivedDateTime, "2026-03-03T09:10:11Z");
    assert.equal(msg.json.sentDateTime, "2026-03-03T09:07:00Z");
    assert.equal(msg.json.parentFolderId, graph.folderId(MAILBOX, "inbox"));
    assert.deepEqual(msg.json.from, { emailAddress: { name: "Panel 7", address: "panel7@site.test" } });
    assert.deepEqual(msg.json.sender, { emailAddress: { name: "Gateway", address: "gw@site.test" } });
    assert.deepEqual(msg.json.toRecipients, [{ emailAddress: { name: MAILBOX, address: MAILBOX } }]);
    assert.equal(msg.json.importance, "high");
    assert.equal(msg.json.hasAttachments, false);
    assert.equal(msg.json.body.contentType, "html");
    const text = await call("GET", `${users}/messages/${stored.id}?$select=body,internetMessageHeaders`, {
      headers: { Prefer: 'outlook.body-content-type="text"' },
    });
    assert.equal(text.json.body.contentType, "text");
    assert.match(text.json.body.content, /Zone 7 Einbruch/);
    assert.ok(text.json.internetMessageHeaders.some((h: any) => h.name === "Message-ID"));

    const badSelect = await call("GET", `${users}/messages/${stored.id}?$select=nope`);
    assert.equal(badSelect.status, 400);
    assert.equal(badSelect.json.error.code, "RequestBroker--ParseUri");
    const missing = await call("GET", `${users}/messages/AAMkADgoneAAA=/$value`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, "ErrorItemNotFound");
  });

  it("PATCH isRead answers the updated message", async () => {
    const stored = graph.deliver(MAILBOX, alarm(1));
    const r = await call("PATCH", `${users}/messages/${stored.id}`, { body: { isRead: true } });
    assert.equal(r.status, 200);
    assert.equal(r.json.id, stored.id);
    assert.equal(r.json.isRead, true);
    assert.notEqual(r.json.changeKey, stored.changeKey);
    assert.equal(r.json["@odata.etag"], `W/"${r.json.changeKey}"`);
    assert.equal(graph.messages(MAILBOX)[0]!.isRead, true);
    const bad = await call("PATCH", `${users}/messages/${stored.id}`, { body: { unread: true } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, "RequestBodyRead");
  });

  it("move gives a new id; the old one is gone and delta reports it @removed", async () => {
    const stored = graph.deliver(MAILBOX, alarm(1));
    const inboxRound = await deltaRound(`${users}/mailFolders/inbox/messages/delta`);
    const processedRound = await deltaRound(
      `${users}/mailFolders/${graph.folderId(MAILBOX, "Processed")}/messages/delta`,
    );
    assert.deepEqual(processedRound[0].value, []);

    const processedId = (
      await call("GET", `${users}/mailFolders?$filter=${encodeURIComponent("displayName eq 'Processed'")}`)
    ).json.value[0].id;
    const moved = await call("POST", `${users}/messages/${stored.id}/move`, { body: { destinationId: processedId } });
    assert.equal(moved.status, 201);
    assert.notEqual(moved.json.id, stored.id);
    assert.equal(moved.json.parentFolderId, processedId);
    assert.equal(moved.json.internetMessageId, "<alarm-1@site.test>");
    const old = await call("GET", `${users}/messages/${stored.id}`);
    assert.equal(old.status, 404);
    assert.equal(old.json.error.code, "ErrorItemNotFound");

    const inboxChanges = await deltaRound(inboxRound[0]["@odata.deltaLink"]);
    assert.deepEqual(inboxChanges[0].value, [
      { "@odata.type": "#microsoft.graph.message", id: stored.id, "@removed": { reason: "deleted" } },
    ]);
    const processedChanges = await deltaRound(processedRound[0]["@odata.deltaLink"]);
    assert.deepEqual(
      processedChanges[0].value.map((m: any) => m.id),
      [moved.json.id],
    );
    assert.deepEqual(
      graph.messages(MAILBOX, "Processed").map((m) => m.id),
      [moved.json.id],
    );

    const trashed = await call("POST", `${users}/messages/${moved.json.id}/move`, {
      body: { destinationId: "deleteditems" },
    });
    assert.equal(trashed.status, 201);
    assert.equal(trashed.json.parentFolderId, graph.folderId(MAILBOX, "deleteditems"));
    const nowhere = await call("POST", `${users}/messages/${trashed.json.id}/move`, {
      body: { destinationId: "AQMkADnotthereAAA=" },
    });
    assert.equal(nowhere.status, 404);
    assert.equal(graph.messages(MAILBOX, "Deleted Items").length, 1, "a failed move leaves the message");
  });

  it("DELETE is a soft delete out of the folder views", async () => {
    const stored = graph.deliver(MAILBOX, alarm(1));
    assert.equal((await call("DELETE", `${users}/mailFolders/inbox/messages/${stored.id}`)).status, 204);
    assert.deepEqual(graph.messages(MAILBOX), []);
    assert.equal(graph.messages(MAILBOX, "deleteditems").length, 0);
    assert.equal(graph.messages(MAILBOX, "recoverableitemsdeletions").length, 1);
    const list = await call("GET", `${users}/messages`);
    assert.deepEqual(list.json.value, []);
  });

  it("lists messages with $filter, $top and an @odata.nextLink", async () => {
    for (const n of [1, 2, 3]) graph.deliver(MAILBOX, alarm(n), { receivedDateTime: `2026-03-0${n}T10:00:00Z` });
    graph.setRead(MAILBOX, graph.messages(MAILBOX)[0]!.id, true);
    const unread = await call(
      "GET",
      `${users}/mailFolders/inbox/messages?$filter=isRead eq false&$top=1&$select=subject`,
    );
    assert.deepEqual(
      unread.json.value.map((m: any) => m.subject),
      ["Alarm 3 ü"],
    );
    const more = await call("GET", unread.json["@odata.nextLink"]);
    assert.deepEqual(
      more.json.value.map((m: any) => m.subject),
      ["Alarm 2 ü"],
    );
    const byId = await call(
      "GET",
      `${users}/messages?$filter=${encodeURIComponent("internetMessageId eq '<alarm-2@site.test>'")}`,
    );
    assert.equal(byId.json.value.length, 1);
  });

  it("lists attachments as fileAttachments with base64 contentBytes", async () => {
    const pdf = Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00, 0xff, 0x10, 0x80]);
    const mime = [
      `From: cam@site.test`,
      `To: ${MAILBOX}`,
      "Subject: Snapshot",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain",
      "",
      "see attached",
      "--b1",
      'Content-Type: application/pdf; name="report.pdf"',
      'Content-Disposition: attachment; filename="report.pdf"',
      "Content-Transfer-Encoding: base64",
      "",
      pdf.toString("base64"),
      "--b1--",
      "",
    ].join("\r\n");
    const stored = graph.deliver(MAILBOX, mime);
    const list = await call("GET", `${users}/messages/${stored.id}/attachments`);
    assert.equal(list.status, 200);
    assert.equal(list.json.value.length, 1);
    const att = list.json.value[0];
    assert.equal(att["@odata.type"], "#microsoft.graph.fileAttachment");
    assert.equal(att.name, "report.pdf");
    assert.equal(att.contentType, "application/pdf");
    assert.equal(att.isInline, false);
    assert.ok(Buffer.from(att.contentBytes, "base64").equals(pdf));
    const raw = await call("GET", `${users}/messages/${stored.id}/attachments/${att.id}/$value`);
    assert.ok(raw.bytes.equals(pdf));
    assert.equal(
      (await call("GET", `${users}/messages/${stored.id}?$select=hasAttachments`)).json.hasAttachments,
      true,
    );
  });

  it("sendMail answers 202, records the mail and saves it in Sent Items", async () => {
    const body = {
      message: {
        subject: "Gateway test",
        body: { contentType: "Text", content: "Hello from the gateway" },
        toRecipients: [{ emailAddress: { address: "ops@contoso.test" } }],
      },
    };
    const r = await call("POST", `${users}/sendMail`, { body });
    assert.equal(r.status, 202);
    assert.equal(r.bytes.length, 0);
    assert.equal(graph.sent.length, 1);
    assert.equal(graph.sent[0]!.mailbox, MAILBOX);
    assert.deepEqual(graph.sent[0]!.body, body);
    assert.deepEqual(
      graph.messages(MAILBOX, "sentitems").map((m) => m.subject),
      ["Gateway test"],
    );

    const unsaved = await call("POST", `${users}/sendMail`, { body: { ...body, saveToSentItems: false } });
    assert.equal(unsaved.status, 202);
    assert.equal(graph.messages(MAILBOX, "sentitems").length, 1);

    const noOne = await call("POST", `${users}/sendMail`, { body: { message: { subject: "x" } } });
    assert.equal(noOne.status, 400);
    assert.equal(noOne.json.error.code, "ErrorInvalidRecipients");
    const garbled = await call("POST", `${users}/sendMail`, { body: "{not json" });
    assert.equal(garbled.status, 400);
    const readOnly = await tenant.entra.mintToken(appClaims(tenant, ["Mail.ReadWrite"]));
    const denied = await call("POST", `${users}/sendMail`, { body, token: readOnly });
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error.code, "ErrorAccessDenied");
    assert.equal(graph.sent.length, 2);

    const mime = Buffer.from(`To: ops@contoso.test\r\nSubject: As MIME\r\n\r\nHello\r\n`);
    const asMime = await call("POST", `${users}/sendMail`, {
      body: mime.toString("base64"),
      headers: { "Content-Type": "text/plain" },
    });
    assert.equal(asMime.status, 202);
    assert.ok(graph.sent[2]!.mime.equals(mime));
    const notBase64 = await call("POST", `${users}/sendMail`, {
      body: "%%%",
      headers: { "Content-Type": "text/plain" },
    });
    assert.equal(notBase64.status, 400);
    assert.equal(notBase64.json.error.code, "ErrorMimeContentInvalidBase64String");
  });

  it("answers 401 InvalidAuthenticationToken with WWW-Authenticate for missing, foreign, expired or misdirected tokens", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ ...appClaims(tenant, ["Mail.ReadWrite"]), iat: now, nbf: now, exp: now + 3600 })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: tenant.entra.kid })
      .sign(privateKey);
    const expired = await tenant.entra.mintToken(appClaims(tenant, ["Mail.ReadWrite"]), -3600);
    const imapToken = await tenant.entra.mintToken(appClaims(tenant, ["IMAP.AccessAsApp"], `https://${OUTLOOK_HOST}`));
    const cases: [string | null, RegExp][] = [
      [null, /empty/],
      ["not-a-jwt", /not well formed/],
      [forged, /validation failure/],
      [expired, /expired/],
      [imapToken, /Invalid audience/],
    ];
    for (const [bad, message] of cases) {
      const r = await call("GET", `${users}/mailFolders/inbox/messages/delta`, { token: bad });
      assert.equal(r.status, 401, String(bad).slice(0, 20));
      assert.equal(r.json.error.code, "InvalidAuthenticationToken");
      assert.match(r.json.error.message, message);
      assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer realm=""/);
    }
    assert.deepEqual(
      graph.requests.map((q) => [q.status, q.mailbox]),
      cases.map(() => [401, MAILBOX]),
    );
  });

  it("answers 403 ErrorAccessDenied without the role and outside the access policy; 404 for unknown users", async () => {
    const sendOnly = await tenant.entra.mintToken(appClaims(tenant, ["Mail.Send"]));
    const r = await call("GET", `${users}/mailFolders/inbox/messages/delta`, { token: sendOnly });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, "ErrorAccessDenied");
    assert.equal(r.json.error.message, "Access is denied. Check credentials and try again.");
    const stored = graph.deliver(MAILBOX, alarm(1));
    const readOnly = await tenant.entra.mintToken(appClaims(tenant, ["Mail.Read"]));
    assert.equal((await call("GET", `${users}/messages/${stored.id}`, { token: readOnly })).status, 200);
    assert.equal(
      (await call("PATCH", `${users}/messages/${stored.id}`, { token: readOnly, body: { isRead: true } })).status,
      403,
    );

    const policy = await call("GET", `/v1.0/users/${OTHER}/mailFolders/inbox/messages/delta`);
    assert.equal(policy.status, 403);
    assert.equal(policy.json.error.code, "ErrorAccessDenied");
    graph.failWith({ kind: "access-denied", count: 1 });
    assert.equal((await call("GET", `${users}/mailFolders/inbox`)).status, 403);
    assert.equal((await call("GET", `${users}/mailFolders/inbox`)).status, 200);

    const stranger = await call("GET", "/v1.0/users/nobody@contoso.test/mailFolders/inbox/messages/delta");
    assert.equal(stranger.status, 404);
    assert.equal(stranger.json.error.code, "ErrorInvalidUser");
    const me = await call("GET", "/v1.0/me/mailFolders/inbox");
    assert.equal(me.status, 400);
    const user = await call("GET", users);
    assert.equal(user.status, 403, "reading the user object needs User.Read.All, which the app does not have");
    assert.equal(user.json.error.code, "Authorization_RequestDenied");
  });

  it("throttles with and without Retry-After, 429 or 503, for a number of requests", async () => {
    const path = `${users}/mailFolders/inbox/messages/delta`;
    graph.failWith({ kind: "throttle", retryAfterSeconds: 7, count: 2 });
    for (let i = 0; i < 2; i++) {
      const r = await call("GET", path);
      assert.equal(r.status, 429);
      assert.equal(r.headers.get("retry-after"), "7");
      assert.equal(r.json.error.code, "TooManyRequests");
    }
    assert.equal((await call("GET", path)).status, 200);

    graph.failWith({ kind: "throttle" });
    for (let i = 0; i < 3; i++) {
      const r = await call("GET", path);
      assert.equal(r.status, 429);
      assert.equal(r.headers.get("retry-after"), null);
    }
    graph.failWith(undefined);
    assert.equal((await call("GET", path)).status, 200);

    graph.failWith({ kind: "throttle", status: 503, retryAfterSeconds: 2, count: 1 });
    const unavailable = await call("GET", path);
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.headers.get("retry-after"), "2");
    graph.failWith({ kind: "server-error", count: 1 });
    assert.equal((await call("GET", path)).status, 500);
    graph.failWith({ kind: "unauthorized", count: 1 });
    const refused = await call("GET", path);
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error.code, "InvalidAuthenticationToken");
    assert.equal((await call("GET", path)).status, 200);
  });

  it("answers 410 SyncStateNotFound for a garbled, foreign or forgotten delta token", async () => {
    graph.deliver(MAILBOX, alarm(1));
    const round = await deltaRound(`${users}/mailFolders/inbox/messages/delta`);
    const deltaLink: string = round[0]["@odata.deltaLink"];
    const garbled = await call("GET", `${users}/mailFolders/inbox/messages/delta?$deltatoken=garbage`);
    assert.equal(garbled.status, 410);
    assert.equal(garbled.json.error.code, "SyncStateNotFound");
    const skip = await call("GET", `${users}/mailFolders/inbox/messages/delta?$skiptoken=abc.def`);
    assert.equal(skip.status, 410);
    const token = new URL(deltaLink).searchParams.get("$deltatoken")!;
    const otherFolder = await call(
      "GET",
      `${users}/mailFolders/junkemail/messages/delta?$deltatoken=${encodeURIComponent(token)}`,
    );
    assert.equal(otherFolder.status, 410);

    graph.expireDeltaTokens();
    const forgotten = await call("GET", deltaLink);
    assert.equal(forgotten.status, 410);
    const restart = forgotten.headers.get("location");
    assert.ok(restart);
    const full = await deltaRound(restart);
    assert.equal(full[0].value.length, 1, "the Location starts a full synchronization");
  });

  it("refuses a fifth concurrent request per mailbox with 429 ApplicationThrottled (MailboxConcurrency)", async () => {
    const slow = await startGraph({ latencyMs: 300 });
    try {
      const path = `${users}/mailFolders/inbox`;
      const burst = await Promise.all(Array.from({ length: 8 }, () => call("GET", path, { on: slow })));
      const statuses = burst.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
      const refused = burst.find((r) => r.status === 429)!;
      assert.equal(refused.json.error.code, "ApplicationThrottled");
      assert.equal(refused.json.error.message, "Application is over its MailboxConcurrency limit.");
      assert.equal(refused.headers.get("retry-after"), null);
      assert.ok(slow.maxConcurrent > 4, `max in flight ${slow.maxConcurrent}`);

      // A client that keeps four requests in flight is never refused.
      slow.maxConcurrent = 0;
      let next = 0;
      const results: number[] = [];
      const worker = async () => {
        while (next < 10) {
          next += 1;
          results.push((await call("GET", path, { on: slow })).status);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      assert.deepEqual(new Set(results), new Set([200]));
      assert.equal(slow.maxConcurrent, 4);
      assert.equal(slow.requests.filter((q) => q.mailbox === MAILBOX).length, 18);
    } finally {
      await slow.stop();
    }
  });
});
