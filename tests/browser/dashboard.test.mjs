// Browser tests of the dashboard: a real `ferry` (Hub role) on 127.81.0.1,
// driven in Debian's headless Chromium by playwright-core. Every request the
// page makes is recorded; one that leaves loopback fails the run. Screenshots
// of every page at 1280×800 and 390×844 go to target/screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { chromium } from "playwright-core";

const NET = "127.81.0";
// Over HTTPS, as the image serves the API, with the self-signed certificate
// Ferry makes at first start (the Rust tests check the certificate itself;
// here the browser and Node's fetch are told to accept it).
const BASE = `https://${NET}.1:8090`;
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
const TOKEN = "dashboard-test-token-0123456789";
const ROOT = new URL("../../", import.meta.url).pathname;
const FERRY = process.env.FERRY_BIN || join(ROOT, "target/debug/ferry");
const SHOTS = process.env.SCREENSHOT_DIR || join(ROOT, "target/screenshots");
const work = mkdtempSync(join(tmpdir(), "ferry-dashboard-"));
const data = join(work, "data");

let ferry, browser, page;
const requests = [];
const state = {};

async function api(method, path, body) {
  const r = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, data: text ? JSON.parse(text) : null };
}

// A raw SMTP exchange: sends `lines` after the banner, returns everything read.
function smtp(host, port, lines, from) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, localAddress: from });
    let out = "";
    let sent = false;
    sock.setEncoding("utf8");
    sock.setTimeout(10000, () => { sock.destroy(); reject(new Error(`SMTP timeout; got ${out}`)); });
    sock.on("data", (d) => {
      out += d;
      if (!sent && out.includes("\r\n")) { sent = true; sock.write(lines.join("\r\n") + "\r\n"); }
      if (out.includes("221 ")) sock.end();
    });
    sock.on("end", () => resolve(out));
    sock.on("error", reject);
  });
}

async function eventually(check, what, secs = 15) {
  const end = Date.now() + secs * 1000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function go(hash) {
  await page.goto(`${BASE}/${hash}`);
  await page.waitForSelector("main h1");
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ferry = spawn(FERRY, ["serve", "--data-dir", data, "--role", "hub", "--fqdn", "hub01.contoso.test",
    "--api-listen", `${NET}.1:8090`, "--api-tls", "--default-smtp-bind", `${NET}.1:2525`, "--default-submission-bind", `${NET}.1:2587`],
  { env: { ...process.env, FERRY_ADMIN_TOKEN: TOKEN, FERRY_LOG: "warn" }, stdio: "ignore" });
  await eventually(async () => (await fetch(`${BASE}/healthz`).catch(() => null))?.ok, "ferry to start");
  // A mailbox domain for NDRs, and a relay connector for the test client.
  await api("POST", "/accepted-domains", { domainName: "contoso.test", mailboxDelivery: { type: "Maildir" } });
  await api("POST", "/receive-connectors", { name: "Test client", usage: "Custom", bindings: [`${NET}.1:2626`], remoteIpRanges: [`${NET}.30`],
    permissionGroups: ["AnonymousUsers"], tarpitInterval: "00:00:00",
    extendedRights: [{ principal: "Anonymous", right: "ms-Exch-SMTP-Accept-Any-Recipient" }] });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
  context.on("request", (r) => requests.push(r.url()));
  page = await context.newPage();
  page.on("dialog", (d) => d.accept());
});

after(async () => {
  await browser?.close();
  if (ferry && ferry.exitCode === null) {
    const exited = new Promise((r) => ferry.once("exit", r));
    ferry.kill();
    await exited;
  }
  // Leave no temporary data directory behind.
  rmSync(work, { recursive: true, force: true });
});

test("sign in with the admin token", async () => {
  await page.goto(`${BASE}/`);
  await page.getByLabel("API token").fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That token is not accepted.").waitFor();
  await page.getByLabel("API token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator("dd", { hasText: "hub01.contoso.test" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("ferry-token")), TOKEN, "kept for the browser session only");
});

test("create a receive connector through the form, then get its banner over SMTP", async () => {
  await go("#/receive-connectors");
  const form = page.getByRole("form", { name: "New receive connector" });
  await form.getByLabel("Name", { exact: true }).fill("From the dashboard");
  await form.getByLabel("Usage").selectOption("Custom");
  await form.getByLabel("Bindings").fill(`${NET}.5:2600`);
  await form.getByLabel("Remote Ip Ranges").fill("0.0.0.0/0");
  await form.getByLabel("Permission Groups").fill("AnonymousUsers");
  await form.getByLabel("Fqdn").fill("dash.contoso.test");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: /From the dashboard/ }).waitFor();
  state.connectorPage = new URL(page.url()).hash;
  const reply = await smtp(`${NET}.5`, 2600, ["QUIT"], `${NET}.40`);
  assert.match(reply, /^220 dash\.contoso\.test /);
});

test("a validation problem is shown next to the field at fault", async () => {
  await go("#/receive-connectors");
  const form = page.getByRole("form", { name: "New receive connector" });
  await form.getByLabel("Name", { exact: true }).fill("Broken");
  await form.getByLabel("Bindings").fill(`${NET}.6:2601`);
  await form.getByLabel("Remote Ip Ranges").fill("10.0.0.300");
  await form.getByRole("button", { name: "Create" }).click();
  const err = page.locator("#err-remoteIpRanges");
  await err.waitFor();
  await eventually(async () => (await err.textContent()).includes("remoteIpRanges[0]"), "the field error");
  assert.match(await err.textContent(), /10\.0\.0\.300/);
  assert.ok(await page.locator('[data-field="remoteIpRanges"]').evaluate((el) => el.classList.contains("invalid")));
});

test("an edit made elsewhere meanwhile is reported, never overwritten", async () => {
  await go(state.connectorPage);
  const id = state.connectorPage.split("/").pop();
  const other = await api("PATCH", `/receive-connectors/${id}`, { maxHopCount: 42 });
  assert.equal(other.status, 200);
  await page.getByLabel("Max Recipients Per Message").fill("300");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Someone else changed this object").waitFor();
  const now = await api("GET", `/receive-connectors/${id}`);
  assert.equal(now.data.maxHopCount, 42);
  assert.equal(now.data.maxRecipientsPerMessage, 200);
});

test("import a certificate and see its names and expiry", async () => {
  const key = join(work, "dash.key");
  const crt = join(work, "dash.crt");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "20", "-subj", "/CN=dash.contoso.test",
    "-addext", "subjectAltName=DNS:dash.contoso.test,DNS:www.dash.contoso.test", "-keyout", key, "-out", crt], { stdio: "ignore" });
  await go("#/certificates");
  const form = page.getByRole("form", { name: "Import a certificate" });
  await form.getByLabel("Certificate Pem").fill(readFileSync(crt, "utf8"));
  await form.getByLabel("Private Key Pem").fill(readFileSync(key, "utf8"));
  await form.getByRole("button", { name: "Add" }).click();
  const row = page.locator("tr", { hasText: "CN=dash.contoso.test" });
  await row.waitFor();
  assert.match(await row.textContent(), /dash\.contoso\.test, www\.dash\.contoso\.test/);
  assert.match(await row.textContent(), /expires soon/, "a 20-day certificate is flagged");
});

test("order an ACME certificate and see its failure, then renew it by hand", async () => {
  await go("#/certificates");
  const form = page.getByRole("form", { name: "Order from an ACME CA" });
  // A field problem first: a plain-HTTP directory is refused by the API.
  await form.getByLabel("Name", { exact: true }).fill("edge");
  await form.getByLabel("Directory Url").fill("http://127.81.0.1/dir");
  await form.getByLabel("Subject Names").fill("edge01.contoso.test");
  await form.getByRole("button", { name: "Order" }).click();
  await eventually(async () => (await page.locator("#acme-err-directoryUrl").textContent()).includes("directoryUrl"), "the field error");
  // Nothing listens on port 1: the order fails, and the page says why.
  await form.getByLabel("Directory Url").fill(`https://${NET}.1:1/dir`);
  await form.getByLabel("Challenge Binding").fill(`${NET}.1:5080`);
  await form.getByRole("button", { name: "Order" }).click();
  const table = page.getByRole("table", { name: "ACME certificates" });
  await table.waitFor();
  await eventually(async () => (await api("GET", "/acme-certificates/edge")).data.state.status === "Failed", "the order to fail");
  await go("#/certificates");
  const row = page.getByRole("table", { name: "ACME certificates" }).locator("tr", { hasText: "edge01.contoso.test" });
  await row.getByText("Failed").waitFor();
  assert.match(await row.textContent(), /http-01 on 127\.81\.0\.1:5080/);
  assert.match(await row.textContent(), /registering an account with the CA: .*Connection refused/, "the reason is shown");
  const before = (await api("GET", "/acme-certificates/edge")).data.state.lastAttempt;
  await row.getByRole("button", { name: "Renew edge now" }).click();
  await eventually(async () => {
    const s = (await api("GET", "/acme-certificates/edge")).data.state;
    return s.status === "Failed" && s.failures === 2 && s.lastAttempt !== before;
  }, "a second, forced attempt");
  await page.screenshot({ path: join(SHOTS, "certificates-acme-desktop.png"), fullPage: true });
  assert.equal((await api("DELETE", "/acme-certificates/edge")).status, 204);
});

test("suspend and resume a queue that holds a message, and remove a message with an NDR", async () => {
  const reply = await smtp(`${NET}.1`, 2626, ["EHLO client", "MAIL FROM:<bob@contoso.test>", "RCPT TO:<carol@fabrikam.test>", "DATA",
    "Subject: held\r\n\r\nwaiting\r\n.", "QUIT"], `${NET}.30`);
  assert.match(reply, /250 2\.6\.0/);
  await eventually(async () => (await api("GET", "/queues")).data.items.some((q) => q.deliveryType === "Unreachable" && q.messageCount === 1), "the message in Unreachable");
  await go("#/queues");
  const row = page.locator("tr", { hasText: "Unreachable" }).first();
  await row.getByRole("button", { name: "Suspend" }).click();
  await page.locator("tr", { hasText: "Unreachable" }).first().getByText("Suspended").waitFor();
  assert.equal((await api("GET", "/queues")).data.items.find((q) => q.deliveryType === "Unreachable").status, "Suspended");
  await page.locator("tr", { hasText: "Unreachable" }).first().getByRole("button", { name: "Resume" }).click();
  await page.locator("tr", { hasText: "Unreachable" }).first().getByRole("button", { name: "Suspend" }).waitFor();
  const id = (await api("GET", "/messages")).data.items[0].id;
  await go(`#/messages/${id}`);
  state.messagePage = `#/messages/${id}`;
  await page.screenshot({ path: join(SHOTS, "message-desktop.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(SHOTS, "message-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.ok(await page.getByText("carol@fabrikam.test").first().isVisible());
  await page.getByRole("button", { name: "Remove with NDR" }).click();
  await page.getByRole("heading", { name: "Queues" }).waitFor();
  const mailbox = join(data, "mailboxes/contoso.test/bob/Maildir/new");
  await eventually(() => existsSync(mailbox) && readdirSync(mailbox).length === 1, "the NDR in Bob's mailbox");
  const ndr = readFileSync(join(mailbox, readdirSync(mailbox)[0]), "utf8");
  assert.match(ndr, /Subject: Undeliverable: held/);
  assert.equal((await api("GET", "/messages")).data.total, 0);
});

test("track a message: search, timeline, and the session's protocol log", async () => {
  const rc = (await api("GET", "/receive-connectors")).data.items.find((c) => c.name === "Test client");
  assert.equal((await api("PATCH", `/receive-connectors/${rc.id}`, { protocolLoggingLevel: "Verbose" })).status, 200);
  const reply = await smtp(`${NET}.1`, 2626, ["EHLO client", "MAIL FROM:<alice@fabrikam.test>", "RCPT TO:<bob@contoso.test>", "DATA",
    "Subject: tracked\r\n\r\nfollow me\r\n.", "QUIT"], `${NET}.30`);
  assert.match(reply, /250 2\.6\.0/);
  const messageId = reply.match(/250 2\.6\.0 (<[^>]+>)/)[1];
  await eventually(async () => (await api("GET", `/tracking?messageId=${encodeURIComponent(messageId)}&event=DELIVER`)).data.items.length === 1, "the DELIVER event");
  await go("#/tracking");
  await page.getByLabel("Sender").fill("alice@fabrikam.test");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: "tracked", exact: true }).click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  const events = await page.locator("ol.timeline > li .tag").allTextContents();
  assert.deepEqual(events, ["RECEIVE", "ROUTE", "DELIVER"]);
  assert.ok(await page.getByText(messageId).first().isVisible());
  assert.ok(await page.getByText("connector Test client").first().isVisible());
  assert.equal(await page.locator("main").evaluate((m) => [...m.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() === "null")), false);
  state.trackingPage = new URL(page.url()).hash;
  await page.getByRole("button", { name: /^Protocol log / }).click();
  const log = page.getByRole("table", { name: /^Protocol log of session / });
  await log.waitFor();
  const text = await log.textContent();
  assert.match(text, /MAIL FROM:<alice@fabrikam\.test>/);
  assert.match(text, /250 2\.6\.0/);
  // The message removed with an NDR in the queue test: its DELETE and DSN.
  await go(`#/tracking?recipient=${encodeURIComponent("carol@fabrikam.test")}`);
  await page.getByRole("link", { name: "held", exact: true }).click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  const held = await page.locator("ol.timeline > li .tag").allTextContents();
  for (const e of ["RECEIVE", "ROUTE", "DELETE", "DSN"]) assert.ok(held.includes(e), `${e} in ${held}`);
  await page.getByRole("link", { name: /^<.*>$/ }).last().click();
  await page.locator("ol.timeline").waitFor();
  await eventually(async () => (await page.locator("ol.timeline > li .tag").allTextContents()).includes("RECEIVE"), "the NDR's own timeline");
});

test("the anti-spam page: enable an agent, block an address, see it refused and counted today", async () => {
  await go("#/anti-spam");
  await page.getByRole("button", { name: "Enable Connection Filtering Agent" }).click();
  await page.getByRole("button", { name: "Disable Connection Filtering Agent" }).waitFor();
  const form = page.getByRole("form", { name: "Block an address" });
  await form.getByLabel("Ip Range").fill("not-an-ip");
  await form.getByRole("button", { name: "Add" }).click();
  await form.locator('[data-field="ipRange"] .error').filter({ hasText: "ipRange" }).waitFor();
  await form.getByLabel("Ip Range").fill(`${NET}.31`);
  await form.getByLabel("Comment").fill("from the dashboard");
  await form.getByRole("button", { name: "Add" }).click();
  await page.getByRole("cell", { name: "from the dashboard" }).waitFor();
  const reply = await smtp(`${NET}.5`, 2600, ["EHLO x.test", "MAIL FROM:<a@fabrikam.test>", "RCPT TO:<bob@contoso.test>", "QUIT"], `${NET}.31`);
  assert.match(reply, /550 5\.7\.1 External client with IP address 127\.81\.0\.31 /);
  // The block is in message tracking, and so on the page once reloaded.
  await eventually(async () => {
    await go("#/overview");
    await go("#/anti-spam");
    return /Connection Filtering Agent\s+Block\s+1/.test(await page.getByLabel("What the agents did today").innerText());
  }, "today's block on the page");
  const entries = await api("GET", "/ip-block-list-entries");
  assert.equal(entries.data.items.length, 1);
  // The recipient directory: add a recipient with an alias, find it by the alias.
  const add = page.getByRole("form", { name: "Add a recipient" });
  await add.getByLabel("Primary Address").fill("dora@contoso.test");
  await add.getByLabel("Aliases").fill("dory@contoso.test");
  await add.getByRole("button", { name: "Add" }).click();
  await eventually(async () => (await api("GET", "/recipients/dora@contoso.test")).status === 200, "the new recipient");
  await go("#/overview");
  await go("#/anti-spam");
  const dir = page.getByRole("form", { name: "Recipient directory" });
  await dir.getByLabel("Find an address").fill("dory@contoso.test");
  await dir.getByRole("button", { name: "Find" }).click();
  await dir.getByText("dora@contoso.test").waitFor();
  assert.equal((await api("GET", "/recipients/dory@contoso.test")).data.primaryAddress, "dora@contoso.test");
  // The attachment filter: add an entry through the form; it is listed.
  const filter = page.getByRole("form", { name: "Filter an attachment" });
  await filter.getByLabel("Type").fill("FileName");
  await filter.getByLabel("Name").fill("*.iso");
  await filter.getByRole("button", { name: "Add" }).click();
  await page.getByLabel("Attachment filter entries").getByRole("cell", { name: "FileName:*.iso", exact: true }).waitFor();
  assert.ok((await api("GET", "/attachment-filter-config")).data.entries.some((e) => e.name === "*.iso"));
});

test("the content agents page: content filter settings, a rewrite entry and a transport rule", async () => {
  await go("#/content");
  // The Content Filter's settings form, built from its schema.
  const cf = page.getByRole("form", { name: "Content filter" });
  await cf.getByLabel("Rejection Response").fill("No spam at Contoso");
  await cf.getByRole("button", { name: "Save" }).click();
  await cf.getByText(/Saved \(version/).waitFor();
  assert.equal((await api("GET", "/content-filter-config")).data.rejectionResponse, "No spam at Contoso");
  // An address rewrite entry, refused by field first.
  const rw = page.getByRole("form", { name: "Rewrite an address" });
  await rw.getByLabel("Name", { exact: true }).fill("corp");
  await rw.getByLabel("Internal Address").fill("*.corp.contoso.test");
  await rw.getByLabel("External Address").fill("contoso.test");
  await rw.getByRole("button", { name: "Add" }).click();
  await rw.locator(".note").filter({ hasText: /./ }).waitFor();
  assert.equal((await api("GET", "/address-rewrite-entries")).data.items.length, 0);
  await rw.getByLabel("Internal Address").fill("corp.contoso.test");
  await rw.getByRole("button", { name: "Add" }).click();
  await page.getByLabel("Address rewrite entries").getByRole("cell", { name: "corp.contoso.test", exact: true }).waitFor();
  // A transport rule written as JSON, listed, then disabled.
  const rule = page.getByRole("form", { name: "New transport rule" });
  await rule.getByLabel("Rule (JSON)").fill(JSON.stringify({ name: "Tag external", conditions: { fromScope: "NotInOrganization" },
    actions: { prependSubject: "[EXTERNAL] " } }));
  await rule.getByRole("button", { name: "Add" }).click();
  await page.getByLabel("Transport rules").getByRole("cell", { name: "Tag external", exact: true }).waitFor();
  await page.getByRole("button", { name: "Disable Tag external" }).click();
  await page.getByRole("button", { name: "Enable Tag external" }).waitFor();
  assert.equal((await api("GET", "/transport-rules/Tag%20external")).data.enabled, false);
});

test("the authentication page: a DKIM key made, its DNS record shown, then activated", async () => {
  await go("#/authentication");
  const add = page.getByRole("form", { name: "New DKIM key" });
  await add.getByLabel("Domain").fill("contoso.test");
  await add.getByLabel("Selector").fill("dash1");
  await add.getByLabel("Algorithm").fill("Ed25519");
  await add.getByRole("button", { name: "Add" }).click();
  const keys = page.getByLabel("DKIM signing keys");
  await keys.getByText(/dash1\._domainkey\.contoso\.test TXT "v=DKIM1; k=ed25519; p=/).waitFor();
  await page.getByRole("button", { name: "Activate dash1._domainkey.contoso.test" }).click();
  await keys.getByText("Active", { exact: true }).waitFor();
  assert.equal((await api("GET", "/dkim-signing-keys/dash1._domainkey.contoso.test")).data.state, "Active");
  // The Sender Id agent's settings form, built from its schema.
  await page.getByRole("form", { name: "Sender Id agent (SPF, DKIM, DMARC, ARC)" }).waitFor();
  await page.getByLabel("SPF of our domains").waitFor();
  // DMARC aggregate reports: off by default, and "Send now" says so.
  const dmarc = page.getByLabel("DMARC aggregate reports");
  await dmarc.getByText("No report yet.").waitFor();
  await dmarc.getByRole("button", { name: "Send DMARC reports now" }).click();
  await dmarc.getByText(/DMARC aggregate reports are off/).waitFor();
  // TLS reports likewise.
  const tlsCard = page.getByLabel("TLS reports");
  await tlsCard.getByText("No report yet.").waitFor();
  await tlsCard.getByRole("button", { name: "Send TLS reports now" }).click();
  await tlsCard.getByText(/TLS reports are off/).waitFor();
});

test("a login made without an address is saved with a warning that it can send as no one", async () => {
  await go("#/credentials");
  const form = page.getByRole("form", { name: "New credential" });
  await form.getByLabel("Kind").selectOption("Login");
  await form.getByLabel("User Name").fill("pfuser");
  await form.getByLabel("Principal").selectOption("User");
  await form.getByLabel("Password").fill("Dashboard-Login-9c1e7b3a");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: /pfuser/ }).waitFor();
  await page.getByText(/this login has no address/).waitFor();
  // Given an address, the warning goes.
  await page.getByLabel("Primary Address").fill("pfuser@contoso.test");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText(/Saved \(version 2\)/).waitFor();
  const r = await api("GET", "/credentials/pfuser");
  assert.deepEqual(r.data.sendAs, ["pfuser@contoso.test"]);
  assert.deepEqual(r.data.warnings, []);
});

test("the audit log shows who changed what, with each field's old and new value", async () => {
  await go("#/audit-log");
  await page.getByLabel("Object").fill("receive-connectors");
  await page.getByRole("button", { name: "Search" }).click();
  const row = page.locator("tr", { hasText: "POST /api/v1/receive-connectors" }).filter({ hasText: "From the dashboard" }).first();
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /admin/);
  assert.match(text, /Administrator from 127\.0\.0\.1|Administrator from 127\./);
  assert.match(text, /\/receiveConnectors\/From the dashboard/);
  assert.match(text, /Succeeded/);
  // A refused change is listed as failed, with its reason.
  await go("#/audit-log?succeeded=false");
  await page.locator("tr", { hasText: "Failed" }).first().waitFor();
});

test("every page at desktop and phone sizes, keyboard-reachable and labelled", async () => {
  const pages = ["#/overview", "#/receive-connectors", state.connectorPage, "#/send-connectors", "#/accepted-domains",
    "#/credentials", "#/certificates", "#/transport-settings", "#/anti-spam", "#/content", "#/authentication", "#/queues", "#/tracking", state.trackingPage, "#/audit-log"];
  for (const [size, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
    await page.setViewportSize(viewport);
    for (const hash of pages) {
      await go(hash);
      const name = hash.replace(/^#\//, "").replace(/\/.*/, "-detail").replace(/\?.*/, "-timeline");
      await page.screenshot({ path: join(SHOTS, `${name}-${size}.png`), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${hash} overflows the ${size} viewport by ${overflow}px`);
      const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input, main select, main textarea")]
        .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id || el.name));
      assert.deepEqual(unlabelled, [], `${hash} has unlabelled inputs`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  // Keyboard: Tab reaches the navigation and the first form field.
  await go("#/accepted-domains");
  const focused = [];
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press("Tab");
    focused.push(await page.evaluate(() => document.activeElement?.textContent?.trim() || document.activeElement?.id));
  }
  assert.ok(focused.includes("Receive connectors"), `Tab order: ${focused}`);
  // Sign out, and the sign-in page.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  for (const [size, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: join(SHOTS, `sign-in-${size}.png`), fullPage: true });
  }
});

test("back pressure is shown above every page, and goes away when relieved", async () => {
  await page.goto(`${BASE}/#/overview`);
  if (await page.getByRole("heading", { name: "Sign in" }).isVisible().catch(() => false)) {
    await page.fill("#token", TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  assert.equal((await api("PATCH", "/transport-settings", { backPressureMinFreeDiskPercent: 100 })).status, 200);
  await eventually(async () => (await (await fetch(`${BASE}/healthz`)).json()).status === "backpressure", "back pressure");
  await go("#/queues");
  await page.locator("#health .banner.warn").waitFor();
  assert.match(await page.locator("#health").textContent(), /452 4\.3\.1.*disk/);
  await page.screenshot({ path: join(SHOTS, "back-pressure-desktop.png"), fullPage: true });
  assert.equal((await api("PATCH", "/transport-settings", { backPressureMinFreeDiskPercent: 1 })).status, 200);
  await eventually(async () => (await (await fetch(`${BASE}/healthz`)).json()).status === "ok", "relief");
  await go("#/overview");
  // The health check is fetched beside the page: wait for it to clear the banner.
  await page.locator("#health").waitFor({ state: "hidden", timeout: 12000 });
  assert.equal(await page.locator("#health").isHidden(), true);
});

test("the dashboard is served over HTTPS with HSTS and the token never in a URL", async () => {
  const r = await fetch(`${BASE}/`);
  assert.equal(r.headers.get("strict-transport-security"), "max-age=31536000");
  assert.ok(requests.every((u) => u.startsWith("https://") || u.startsWith("data:") || u.startsWith("blob:")), "every request over HTTPS");
  assert.ok(requests.every((u) => !u.includes(TOKEN)), "the token is never in a URL");
});

test("no request left loopback", () => {
  assert.ok(requests.length > 10);
  const outside = requests.filter((u) => {
    if (u.startsWith("data:") || u.startsWith("blob:")) return false;
    const host = new URL(u).hostname;
    return !(host.startsWith("127.") || host === "localhost" || host === "[::1]");
  });
  assert.deepEqual(outside, []);
});
