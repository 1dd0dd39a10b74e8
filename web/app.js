// Ferry's dashboard: a small single-page console over the same REST API
// that curl uses. Forms are built from the API's own OpenAPI schema, so every
// parameter a connector has can be edited here, and every validation problem
// the API reports is shown next to the field it names. No asset comes from
// outside the appliance.

const API = "/api/v1";
const main = document.getElementById("main");
let schema = null;

// ----- helpers ---------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function token() { return sessionStorage.getItem("ferry-token"); }

async function api(method, path, body, ifMatch) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = method === "PATCH" ? "application/merge-patch+json" : "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  const r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { signOut(); throw new Error("signed out"); }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { ok: r.ok, status: r.status, data, etag: r.headers.get("ETag") };
}

function banner(kind, text) { return h("div", { class: `banner ${kind}`, role: kind === "bad" ? "alert" : "status" }, text); }

function page(title, ...content) {
  main.replaceChildren(h("h1", { text: title }), ...content.filter((c) => c !== null && c !== undefined));
  main.focus();
}

function tag(text) { return h("span", { class: `tag ${text}` }, text); }

function fmtDate(s) { return s ? new Date(s).toLocaleString() : ""; }

// ----- schema-driven forms -------------------------------------------------------

async function loadSchema() {
  if (!schema) schema = await (await fetch(API + "/openapi.json")).json();
  return schema;
}

function resolve(s) {
  while (s && s.$ref) s = schema.components.schemas[s.$ref.split("/").pop()];
  if (s && s.oneOf && s.oneOf.length === 2 && s.oneOf.some((x) => x.type === "null")) return resolve(s.oneOf.find((x) => x.type !== "null"));
  return s || {};
}

function typeOf(s) { const t = s.type; return Array.isArray(t) ? t.find((x) => x !== "null") : t; }

// How a property is edited: checkbox, select, number, list (one per line), json, or text.
function kindOf(prop) {
  const s = resolve(prop);
  if (s.oneOf) return "json-or-limit";
  if (s.enum) return "enum";
  const t = typeOf(s);
  if (t === "boolean") return "bool";
  if (t === "integer") return "int";
  if (t === "array") {
    const it = resolve(s.items || {});
    return it.type === "object" || it.properties ? "json" : (it.enum ? "list-enum" : "list");
  }
  if (t === "object" || s.properties) return "json";
  return "text";
}

function toInput(kind, value) {
  if (value === null || value === undefined) return "";
  if (kind === "list" || kind === "list-enum") return value.join("\n");
  if (kind === "json") return JSON.stringify(value, null, 1);
  return String(value);
}

function fromInput(kind, el) {
  if (kind === "bool") return el.checked;
  const v = el.value.trim();
  if (kind === "list" || kind === "list-enum") return v ? v.split(/\n+/).map((x) => x.trim()).filter(Boolean) : [];
  if (v === "") return null;
  if (kind === "int") return Number(v);
  if (kind === "json") return JSON.parse(v);
  if (kind === "json-or-limit") return /^\d+$/.test(v) ? Number(v) : v;
  return v;
}

const label = (name) => name.replace(/([A-Z]+)/g, " $1").replace(/^./, (c) => c.toUpperCase()).replace("I P", "IP").trim();

// A form for `schemaName`'s properties. `values` fills it; `only` limits the fields.
function buildForm(schemaName, values, { only, skip = [], extra = [], prefix = "" } = {}) {
  const s = resolve({ $ref: `#/components/schemas/${schemaName}` });
  const fields = {};
  const grid = h("div", { class: "form" });
  const names = only || Object.keys(s.properties || {});
  for (const name of [...names, ...extra.map((e) => e.name)]) {
    if (skip.includes(name)) continue;
    const prop = (s.properties || {})[name] || extra.find((e) => e.name === name)?.schema || { type: "string" };
    const kind = kindOf(prop);
    const id = `${prefix}f-${name}`;
    let input;
    if (kind === "bool") input = h("input", { type: "checkbox", id, checked: !!values[name] });
    else if (kind === "enum") {
      const r = resolve(prop);
      input = h("select", { id }, r.enum.map((o) => h("option", { value: o, selected: values[name] === o }, o)));
    } else if (["list", "list-enum", "json"].includes(kind)) input = h("textarea", { id, rows: 3 });
    else input = h("input", { id, type: name.toLowerCase().includes("password") ? "password" : kind === "int" ? "number" : "text", autocomplete: "off" });
    if (input.tagName !== "SELECT" && kind !== "bool") input.value = toInput(kind, values[name]);
    const desc = prop.description || resolve(prop).description;
    const field = h("div", { class: `field${kind === "bool" ? " check" : ""}`, "data-field": name },
      kind === "bool" ? [input, h("label", { for: id }, label(name))] : [h("label", { for: id }, label(name)), input],
      desc ? h("span", { class: "hint" }, desc.split("\n")[0]) : null,
      h("span", { class: "error", id: `${prefix}err-${name}`, role: "alert" }));
    fields[name] = { kind, input, initial: values[name] };
    grid.append(field);
  }
  return { element: grid, fields };
}

function formValues(form, { changedOnly = false } = {}) {
  const out = {};
  for (const [name, f] of Object.entries(form.fields)) {
    let v;
    try { v = fromInput(f.kind, f.input); } catch { throw { field: name, message: "is not valid JSON" }; }
    if (changedOnly && JSON.stringify(v) === JSON.stringify(f.initial ?? (f.kind === "list" ? [] : null))) continue;
    if (!changedOnly && (v === null || (Array.isArray(v) && v.length === 0 && f.initial === undefined))) continue;
    out[name] = v;
  }
  return out;
}

// Shows an API problem: next to each field it names, and as a banner.
function showProblem(container, form, problem, status) {
  container.querySelectorAll(".field.invalid").forEach((f) => f.classList.remove("invalid"));
  container.querySelectorAll(".error").forEach((e) => (e.textContent = ""));
  const note = container.querySelector(".note");
  let detail = problem && problem.detail ? problem.detail : `HTTP ${status}`;
  if (status === 412) detail = "Someone else changed this object since you opened it. Reload to see their change; nothing was overwritten.";
  note.replaceChildren(banner("bad", detail));
  for (const e of (problem && problem.errors) || []) {
    const base = e.field.split(/[.[]/)[0];
    const el = container.querySelector(`[data-field="${CSS.escape(base)}"] .error`);
    if (el) { el.textContent = `${e.field}: ${e.message}`; el.closest(".field").classList.add("invalid"); }
  }
  const first = container.querySelector(".field.invalid input, .field.invalid textarea, .field.invalid select");
  if (first) first.focus();
}

// ----- generic resource pages ------------------------------------------------------

const RESOURCES = {
  "receive-connectors": { title: "Receive connectors", schema: "ReceiveConnector", create: ["name", "usage", "bindings", "remoteIpRanges", "authMechanism", "permissionGroups", "fqdn"],
    columns: (c) => [c.name, c.usage, c.bindings.join(", "), c.remoteIpRanges.join(", "), c.enabled ? "yes" : "no", h("span", {}, (c.listeners || []).map((l) => tag(l.state)))],
    heads: ["Name", "Usage", "Bindings", "Remote ranges", "Enabled", "Listeners"] },
  "send-connectors": { title: "Send connectors", schema: "SendConnector", create: ["name", "usage", "addressSpaces", "smartHosts", "port", "smartHostAuthMechanism", "authenticationCredential"],
    columns: (c) => [c.name, c.usage, c.addressSpaces.join(", "), c.dnsRoutingEnabled ? "DNS" : c.smartHosts.join(", "), c.enabled ? "yes" : "no"],
    heads: ["Name", "Usage", "Address spaces", "Next hop", "Enabled"] },
  "accepted-domains": { title: "Accepted domains", schema: "AcceptedDomain", create: ["domainName", "domainType", "name", "mailboxDelivery"],
    columns: (d) => [d.name, d.domainName, d.domainType, d.default ? "default" : ""], heads: ["Name", "Domain", "Type", ""] },
  credentials: { title: "Credentials", schema: "Credential", create: ["kind", "name", "userName", "principal", "primaryAddress", "aliases"], password: true,
    columns: (c) => [c.name, c.kind, c.userName, c.principal || "", (c.sendAs || []).join(", ")], heads: ["Name", "Kind", "User name", "Principal", "Sends as"] },
};

async function listPage(kind) {
  const R = RESOURCES[kind];
  await loadSchema();
  const r = await api("GET", `/${kind}`);
  const rows = r.data.items.map((o) => h("tr", {}, R.columns(o).map((c, i) => h("td", { "data-label": R.heads[i] }, c)),
    h("td", {}, h("a", { href: `#/${kind}/${o.id}`, class: "button secondary", "aria-label": `Edit ${o.name}` }, "Edit"))));
  const table = h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, R.heads.map((x) => h("th", {}, x)), h("th", {}, ""))), h("tbody", {}, rows));
  const extra = R.password ? [{ name: "password", schema: { type: "string", description: "Write-only; never shown again." } }] : [];
  const form = buildForm(R.schema, {}, { only: R.create, extra });
  const card = h("form", { class: "card", "aria-label": `New ${R.title.toLowerCase().replace(/s$/, "")}` }, h("h2", {}, "Create"), h("div", { class: "note" }), form.element,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let body;
    try { body = formValues(form); } catch (e) { return showProblem(card, form, { detail: "Invalid input", errors: [e] }, 0); }
    const res = await api("POST", `/${kind}`, body);
    if (!res.ok) return showProblem(card, form, res.data, res.status);
    location.hash = `#/${kind}/${res.data.id}`;
  });
  page(R.title, h("div", { class: "card" }, r.data.items.length ? table : h("p", { class: "muted" }, "None yet.")), card);
}

async function editPage(kind, id) {
  const R = RESOURCES[kind];
  await loadSchema();
  const r = await api("GET", `/${kind}/${id}`);
  if (!r.ok) return page(R.title, banner("bad", r.data?.detail || "Not found"));
  const obj = r.data;
  const extra = R.password ? [{ name: "password", schema: { type: "string", description: "Type a new password to rotate it; it is never shown." } }] : [];
  const form = buildForm(R.schema, obj, { skip: [], extra });
  let etag = r.etag;
  const card = h("form", { class: "card", "aria-label": `Edit ${obj.name}` }, h("div", { class: "note" }), form.element,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete ${obj.name}?`)) return;
        const d = await api("DELETE", `/${kind}/${id}`, undefined, etag);
        if (!d.ok) return showProblem(card, form, d.data, d.status);
        location.hash = `#/${kind}`;
      } }, "Delete"),
      h("a", { href: `#/${kind}`, class: "button secondary" }, "Back")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let patch;
    try { patch = formValues(form, { changedOnly: true }); } catch (e) { return showProblem(card, form, { detail: "Invalid input", errors: [e] }, 0); }
    if (patch.password === null) delete patch.password;
    const res = await api("PATCH", `/${kind}/${id}`, patch, etag);
    if (!res.ok) return showProblem(card, form, res.data, res.status);
    etag = res.etag;
    for (const [n, f] of Object.entries(form.fields)) f.initial = n === "password" ? undefined : res.data[n];
    if (form.fields.password) form.fields.password.input.value = "";
    card.querySelector(".note").replaceChildren(banner("good", `Saved (version ${res.data.version}).`));
  });
  const info = [];
  if (obj.effectiveRights) info.push(h("div", { class: "card" }, h("h2", {}, "Effective rights"),
    h("dl", { class: "kv" }, Object.entries(obj.effectiveRights).map(([p, rights]) => [h("dt", {}, p), h("dd", {}, rights.join(", "))]))));
  if (obj.listeners) info.push(h("div", { class: "card" }, h("h2", {}, "Listeners"),
    h("ul", {}, obj.listeners.map((l) => h("li", {}, `${l.binding} `, tag(l.state), l.error ? ` ${l.error}` : "")))));
  if (obj.warnings && obj.warnings.length) info.push(...obj.warnings.map((w) => banner("bad", w)));
  page(`${R.title.replace(/s$/, "")}: ${obj.name}`, ...info, card);
}

// ----- certificates --------------------------------------------------------------------

async function certificatesPage() {
  const [r, acme] = await Promise.all([api("GET", "/certificates"), api("GET", "/acme-certificates"), loadSchema()]);
  const soon = Date.now() + 30 * 86400e3;
  const rows = r.data.items.map((c) => h("tr", {},
    h("td", { "data-label": "Subject" }, c.subject, c.friendlyName ? h("div", { class: "muted" }, c.friendlyName) : null),
    h("td", { "data-label": "Kind" }, c.kind, c.acme ? h("div", { class: "muted" }, `ACME: ${c.acme}`) : null),
    h("td", { "data-label": "Names" }, c.subjectAlternativeNames.join(", ")),
    h("td", { "data-label": "Expires" }, fmtDate(c.notAfter), new Date(c.notAfter) < soon ? h("div", { class: "error" }, "expires soon") : null),
    h("td", { "data-label": "Used by" }, c.usedBy.map((u) => `${u.connector} (${u.how})`).join(", ")),
    h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${c.subject}`, onclick: async () => {
      if (!confirm(`Delete ${c.subject}?`)) return;
      const d = await api("DELETE", `/certificates/${c.id}`);
      if (!d.ok) return alert(d.data.detail);
      route();
    } }, "Delete"))));
  const table = h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Subject", "Kind", "Names", "Expires", "Used by", ""].map((x) => h("th", {}, x)))), h("tbody", {}, rows));
  const add = (title, source, fieldsSpec) => {
    const form = { fields: {} };
    const grid = h("div", { class: "form" });
    for (const [name, kind, hint] of fieldsSpec) {
      const id = `f-${source}-${name}`;
      const input = kind === "pem" ? h("textarea", { id, rows: 5 }) : h("input", { id, type: "text", autocomplete: "off" });
      grid.append(h("div", { class: "field", "data-field": name }, h("label", { for: id }, label(name)), input, hint ? h("span", { class: "hint" }, hint) : null,
        h("span", { class: "error", id: `err-${name}`, role: "alert" })));
      form.fields[name] = { kind: kind === "list" ? "list" : "text", input };
    }
    const card = h("form", { class: "card", "aria-label": title }, h("h2", {}, title), h("div", { class: "note" }), grid, h("div", { class: "actions" }, h("button", { type: "submit" }, "Add")));
    card.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { source, ...formValues(form) };
      const res = await api("POST", "/certificates", body);
      if (!res.ok) return showProblem(card, form, res.data, res.status);
      route();
    });
    return card;
  };
  // ACME: what Ferry keeps issued, each with its order state and last failure.
  const acmeRows = acme.data.items.map((a) => h("tr", {},
    h("td", { "data-label": "Name" }, a.name, h("div", { class: "muted" }, a.directoryUrl)),
    h("td", { "data-label": "Names" }, a.subjectNames.join(", "), h("div", { class: "muted" }, `${a.challenge} on ${a.challengeBinding || (a.challenge === "http-01" ? "0.0.0.0:80" : "0.0.0.0:443")}`)),
    h("td", { "data-label": "State" }, tag(a.state.status),
      a.state.lastError ? h("div", { class: "error" }, a.state.lastError) : null,
      a.state.nextAttempt && a.state.status === "Failed" ? h("div", { class: "muted" }, `retried ${fmtDate(a.state.nextAttempt)}`) : null),
    h("td", { "data-label": "Expires" }, fmtDate(a.state.notAfter), a.state.renewAt ? h("div", { class: "muted" }, `renews ${fmtDate(a.state.renewAt)}`) : null),
    h("td", {},
      h("button", { type: "button", class: "secondary", "aria-label": `Renew ${a.name} now`, onclick: async () => {
        const d = await api("POST", `/acme-certificates/${encodeURIComponent(a.name)}/renew`);
        if (!d.ok) return alert(d.data.detail);
        route();
      } }, "Renew now"), " ",
      h("button", { type: "button", class: "danger", "aria-label": `Delete ACME certificate ${a.name}`, onclick: async () => {
        if (!confirm(`Stop keeping ${a.name}? The certificates it issued stay until deleted.`)) return;
        const d = await api("DELETE", `/acme-certificates/${encodeURIComponent(a.name)}`);
        if (!d.ok) return alert(d.data.detail);
        route();
      } }, "Delete"))));
  const acmeTable = acme.data.items.length
    ? h("table", { class: "responsive", "aria-label": "ACME certificates" }, h("thead", {}, h("tr", {}, ["Name", "Names", "State", "Expires", ""].map((x) => h("th", {}, x)))), h("tbody", {}, acmeRows))
    : h("p", { class: "muted" }, "None: add one below to have a CA issue and renew a certificate.");
  const acmeForm = buildForm("AcmeCertificateCreate", {}, { only: ["name", "directoryUrl", "contact", "subjectNames", "challenge", "challengeBinding", "renewBeforeDays"], prefix: "acme-" });
  const acmeCard = h("form", { class: "card", "aria-label": "Order from an ACME CA" }, h("h2", {}, "Order from an ACME CA"),
    h("p", { class: "muted" }, "Ferry orders at once, answers the challenge on its binding while the CA validates, and renews before expiry. Adding one agrees to the CA's terms of service; a private CA's root goes in as a trust anchor first."),
    h("div", { class: "note" }), acmeForm.element, h("div", { class: "actions" }, h("button", { type: "submit" }, "Order")));
  acmeCard.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("POST", "/acme-certificates", formValues(acmeForm));
    if (!res.ok) return showProblem(acmeCard, acmeForm, res.data, res.status);
    route();
  });
  page("Certificates", h("div", { class: "card" }, table),
    h("div", { class: "card" }, h("h2", {}, "ACME certificates"), acmeTable), acmeCard,
    add("Import a certificate", "import", [["certificatePem", "pem", "PEM chain, end-entity first"], ["privateKeyPem", "pem", "Never shown again"], ["friendlyName", "text"]]),
    add("Generate a self-signed certificate", "selfSigned", [["subjectNames", "list", "One DNS name per line"], ["friendlyName", "text"]]),
    add("Add a trust anchor", "trustAnchor", [["certificatePem", "pem", "A peer's or CA's certificate"], ["friendlyName", "text"]]));
}

// ----- transport settings ----------------------------------------------------------------

async function settingsPage() {
  await loadSchema();
  const r = await api("GET", "/transport-settings");
  const form = buildForm("TransportSettings", r.data);
  let etag = r.etag;
  const card = h("form", { class: "card", "aria-label": "Transport settings" }, h("div", { class: "note" }), form.element, h("div", { class: "actions" }, h("button", { type: "submit" }, "Save")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("PATCH", "/transport-settings", formValues(form, { changedOnly: true }), etag);
    if (!res.ok) return showProblem(card, form, res.data, res.status);
    etag = res.etag;
    for (const [n, f] of Object.entries(form.fields)) f.initial = res.data[n];
    card.querySelector(".note").replaceChildren(banner("good", `Saved (version ${res.data.version}).`));
  });
  page("Transport settings", h("p", { class: "muted" }, `${r.data.role} server ${r.data.serverName}; postmaster ${r.data.effectivePostmasterAddress}`), card);
}

// ----- queues and messages --------------------------------------------------------------

async function queuesPage() {
  const q = await api("GET", "/queues");
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const m = await api("GET", `/messages?${params}`);
  const act = (path) => async () => { const r = await api("POST", path, {}); if (!r.ok) alert(r.data.detail); route(); };
  const qrows = q.data.items.map((x) => h("tr", {},
    h("td", { "data-label": "Next hop" }, x.nextHopDomain), h("td", { "data-label": "Type" }, x.deliveryType), h("td", { "data-label": "Status" }, tag(x.status)),
    h("td", { "data-label": "Messages" }, String(x.messageCount)), h("td", { "data-label": "Last error" }, x.lastError || ""),
    h("td", {}, x.id === "Submission" ? "" : [
      h("a", { href: `#/queues?queue=${x.id}`, class: "button secondary" }, "Messages"), " ",
      h("button", { type: "button", class: "secondary", onclick: act(`/queues/${x.id}/retry${x.deliveryType === "Unreachable" ? "?resubmit=true" : ""}`) }, "Retry"), " ",
      x.status === "Suspended" ? h("button", { type: "button", onclick: act(`/queues/${x.id}/resume`) }, "Resume")
        : h("button", { type: "button", class: "secondary", onclick: act(`/queues/${x.id}/suspend`) }, "Suspend")])));
  const filter = h("form", { class: "card form", "aria-label": "Filter messages" },
    ["queue", "status", "sender", "recipient"].map((n) => h("div", { class: "field" }, h("label", { for: `q-${n}` }, label(n)), h("input", { id: `q-${n}`, name: n, value: params.get(n) || "" }))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter")));
  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const el of filter.querySelectorAll("input")) if (el.value) p.set(el.name, el.value);
    location.hash = `#/queues?${p}`;
  });
  const mrows = (m.data.items || []).map((x) => h("tr", {},
    h("td", { "data-label": "Id" }, h("a", { href: `#/messages/${x.id}` }, String(x.id))), h("td", { "data-label": "From" }, x.sender || "<>"),
    h("td", { "data-label": "To" }, x.recipients.map((r) => r.address).join(", ")), h("td", { "data-label": "Status" }, tag(x.status)),
    h("td", { "data-label": "Received" }, fmtDate(x.receivedAt))));
  page("Queues",
    h("div", { class: "card" }, h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Next hop", "Type", "Status", "Messages", "Last error", ""].map((x) => h("th", {}, x)))), h("tbody", {}, qrows))),
    h("h2", {}, `Messages (${m.data.total ?? 0})`), filter,
    h("div", { class: "card" }, mrows.length ? h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Id", "From", "To", "Status", "Received"].map((x) => h("th", {}, x)))), h("tbody", {}, mrows)) : h("p", { class: "muted" }, "No messages.")));
}

async function messagePage(id) {
  const r = await api("GET", `/messages/${id}`);
  if (!r.ok) return page(`Message ${id}`, banner("bad", r.data.detail), h("a", { href: "#/queues", class: "button secondary" }, "Back"));
  const m = r.data;
  const act = (method, path, after) => async () => {
    const res = await api(method, path, method === "POST" ? {} : undefined);
    if (!res.ok) return alert(res.data.detail);
    after ? (location.hash = after) : route();
  };
  page(`Message ${m.id}`,
    h("div", { class: "card" }, h("dl", { class: "kv" },
      [["Message-ID", m.messageId], ["From", m.sender || "<>"], ["Status", m.status], ["Received", fmtDate(m.receivedAt)], ["Expires", fmtDate(m.expirationTime)],
        ["Size", `${m.size} bytes`], ["Receive connector", m.receiveConnector], ["Client", m.clientIp]].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { class: "actions" },
        m.status === "Suspended" ? h("button", { type: "button", onclick: act("POST", `/messages/${id}/resume`) }, "Resume")
          : h("button", { type: "button", class: "secondary", onclick: act("POST", `/messages/${id}/suspend`) }, "Suspend"),
        h("button", { type: "button", class: "secondary", onclick: act("POST", `/messages/${id}/resubmit`) }, "Resubmit"),
        h("button", { type: "button", class: "danger", onclick: () => confirm("Remove this message and send an NDR?") && act("DELETE", `/messages/${id}?withNdr=true`, "#/queues")() }, "Remove with NDR"),
        h("button", { type: "button", class: "danger", onclick: () => confirm("Remove this message silently?") && act("DELETE", `/messages/${id}?withNdr=false`, "#/queues")() }, "Remove without NDR"),
        h("a", { href: `${API}/messages/${id}/raw`, class: "button secondary", onclick: async (ev) => {
          ev.preventDefault();
          const raw = await fetch(`${API}/messages/${id}/raw`, { headers: { Authorization: `Bearer ${token()}` } });
          const url = URL.createObjectURL(await raw.blob());
          h("a", { href: url, download: `message-${id}.eml` }).click();
        } }, "Download"),
        h("a", { href: `#/tracking?messageId=${encodeURIComponent(m.messageId)}`, class: "button secondary" }, "Track"),
        h("a", { href: "#/queues", class: "button secondary" }, "Back"))),
    h("h2", {}, "Recipients"),
    h("div", { class: "card" }, h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Address", "Status", "Queue", "Attempts", "Last error"].map((x) => h("th", {}, x)))),
      h("tbody", {}, m.recipients.map((x) => h("tr", {}, h("td", { "data-label": "Address" }, x.address), h("td", { "data-label": "Status" }, tag(x.status)),
        h("td", { "data-label": "Queue" }, x.queue), h("td", { "data-label": "Attempts" }, String(x.attempts)), h("td", { "data-label": "Last error" }, x.lastError || "")))))),
    h("h2", {}, "Attempts"),
    h("div", { class: "card" }, m.attempts.length ? h("ul", {}, m.attempts.map((a) => h("li", {}, `${fmtDate(a.at)} ${a.outcome} ${a.remoteHost || ""} ${a.detail || ""}`))) : h("p", { class: "muted" }, "None yet.")),
    h("h2", {}, "Headers"), h("pre", { class: "card" }, m.headers));
}


// ----- message tracking ---------------------------------------------------------------------

const TRACK_FIELDS = [["messageId", "Message-ID"], ["sender", "Sender"], ["recipient", "Recipient"], ["event", "Events (comma-separated)"], ["connector", "Connector"]];

function trackingForm(params) {
  const fields = TRACK_FIELDS.map(([n, l]) => h("div", { class: "field" }, h("label", { for: `t-${n}` }, l), h("input", { id: `t-${n}`, name: n, value: params.get(n) || "" })));
  const local = (iso) => { if (!iso) return ""; const d = new Date(iso); return new Date(d - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16); };
  for (const [n, l] of [["start", "From"], ["end", "Until"]]) {
    fields.push(h("div", { class: "field" }, h("label", { for: `t-${n}` }, l), h("input", { id: `t-${n}`, name: n, type: "datetime-local", value: local(params.get(n)) })));
  }
  const form = h("form", { class: "card form", "aria-label": "Search message tracking" }, fields,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const el of form.querySelectorAll("input")) {
      if (!el.value) continue;
      p.set(el.name, el.type === "datetime-local" ? new Date(el.value).toISOString() : el.value.trim());
    }
    location.hash = `#/tracking?${p}`;
  });
  return form;
}

function eventLine(e) {
  const where = [e.connector && `connector ${e.connector}`, e.nextHop && `next hop ${e.nextHop}`,
    e.serverHostname && `server ${e.serverHostname}${e.serverIp && e.serverIp !== e.serverHostname ? ` [${e.serverIp}]` : ""}`,
    e.clientIp && `client ${e.clientHostname || ""} [${e.clientIp}]`, e.auth && `authenticated as ${e.auth}`, e.tls && `TLS ${e.tls}`].filter(Boolean).join(" · ");
  return where;
}

async function protocolLog(session, into) {
  const r = await api("GET", `/protocol-logs?session=${encodeURIComponent(session)}`);
  if (!r.ok) return into.replaceChildren(banner("bad", r.data.detail));
  into.replaceChildren(h("table", { class: "log", "aria-label": `Protocol log of session ${session}` },
    h("thead", {}, h("tr", {}, ["Time", "#", "", "Data"].map((x) => h("th", {}, x)))),
    h("tbody", {}, r.data.lines.map((l) => h("tr", {}, h("td", {}, l.dateTime.slice(11, 23)), h("td", {}, String(l.sequenceNumber)),
      h("td", {}, l.event), h("td", { class: "data" }, l.data, l.context ? h("span", { class: "muted" }, ` ${l.context}`) : ""))))));
}

function timeline(events) {
  return h("ol", { class: "timeline", "aria-label": "Events" }, events.map((e) => {
    const log = h("div", { class: "protolog" });
    return h("li", { class: `ev ${e.event}` },
      h("div", { class: "when" }, h("time", { datetime: e.time }, fmtDate(e.time)), " ", tag(e.event), " ", h("span", { class: "muted" }, e.source)),
      h("div", {}, e.recipients.length ? `To ${e.recipients.join(", ")}` : ""),
      eventLine(e) ? h("div", { class: "muted" }, eventLine(e)) : null,
      e.detail ? h("div", { class: "detail" }, e.detail) : null,
      e.related ? h("div", { class: "muted" }, e.event === "DSN" ? "Notice " : "About ", h("a", { href: `#/tracking?messageId=${encodeURIComponent(e.related)}` }, e.related)) : null,
      e.session ? h("div", {}, h("button", { type: "button", class: "secondary", onclick: () => protocolLog(e.session, log) }, `Protocol log ${e.session}`)) : null,
      log);
  }));
}

async function trackingPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const form = trackingForm(params);
  if (![...params.keys()].length) {
    return page("Track a message", form, h("p", { class: "muted" }, "Search by Message-ID, sender, recipient, event, connector or time. Events are kept for the message tracking retention (transport settings)."));
  }
  const r = await api("GET", `/tracking?${params}`);
  if (!r.ok) return page("Track a message", form, banner("bad", r.data.detail));
  const items = r.data.items;
  const more = r.data.nextCursor ? h("a", { class: "button secondary", href: `#/tracking?${(() => { const p = new URLSearchParams(params); p.set("cursor", r.data.nextCursor); return p; })()}` }, "Next page") : null;
  const single = params.get("messageId") && [...params.keys()].every((k) => k === "messageId");
  if (single && items.length) {
    const first = items[0];
    return page("Track a message", form,
      h("div", { class: "card" }, h("dl", { class: "kv" }, [["Message-ID", first.messageId], ["From", first.sender || "<>"], ["Subject", first.subject || ""],
        ["Size", first.size ? `${first.size} bytes` : ""], ["Internal id", String(first.internalId)], ["Last event", `${items[items.length - 1].event} at ${fmtDate(items[items.length - 1].time)}`]]
        .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      h("h2", {}, "Timeline"), h("div", { class: "card" }, timeline(items)), more);
  }
  // Many messages: one row per message, newest last, each opening its timeline.
  const byMessage = new Map();
  for (const e of items) {
    const m = byMessage.get(e.messageId) || { first: e, last: e, events: [] };
    m.last = e; m.events.push(e.event); byMessage.set(e.messageId, m);
  }
  const rows = [...byMessage.entries()].map(([id, m]) => h("tr", {},
    h("td", { "data-label": "Message" }, h("a", { href: `#/tracking?messageId=${encodeURIComponent(id)}` }, m.first.subject || id)),
    h("td", { "data-label": "From" }, m.first.sender || "<>"), h("td", { "data-label": "Events" }, m.events.map((x) => [tag(x), " "])),
    h("td", { "data-label": "Last" }, fmtDate(m.last.time))));
  page("Track a message", form,
    h("h2", {}, `${items.length} event${items.length === 1 ? "" : "s"}`),
    h("div", { class: "card" }, rows.length ? h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Message", "From", "Events", "Last"].map((x) => h("th", {}, x)))), h("tbody", {}, rows)) : h("p", { class: "muted" }, "No event matches.")),
    more);
}

// ----- admin audit log -------------------------------------------------------------------

// Search-AdminAuditLog: who changed what, newest first, each change with its
// fields' old and new values (secrets arrive masked from the server).
function changeList(e) {
  const show = (v) => (v === undefined ? "" : JSON.stringify(v));
  const items = e.changes.map((c) => h("li", {}, h("code", {}, c.path), " ", tag(c.op), " ",
    c.op !== "add" ? h("span", { class: "old" }, show(c.old)) : "", c.op === "replace" ? " → " : "",
    c.op !== "remove" ? h("span", { class: "new" }, show(c.new)) : ""));
  if (e.moreChanges) items.push(h("li", { class: "muted" }, `and ${e.moreChanges} more`));
  return items.length ? h("ul", { class: "changes" }, items) : null;
}

async function auditPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const field = (name, label, type = "text") => h("label", {}, label, h("input", { name, type, value: params.get(name) || "", autocomplete: "off" }));
  const form = h("form", { class: "card search", "aria-label": "Search the audit log", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = `#/audit-log?${p}`;
  } }, field("object", "Object"), field("token", "Token"),
    h("label", {}, "Result", h("select", { name: "succeeded" }, [["", "Any"], ["true", "Succeeded"], ["false", "Failed"]].map(([v, l]) => h("option", { value: v, selected: params.get("succeeded") === v }, l)))),
    h("button", { type: "submit" }, "Search"));
  const r = await api("GET", `/audit-log?${params}`);
  if (!r.ok) return page("Audit log", form, banner("bad", r.data.detail));
  const rows = r.data.items.map((e) => h("tr", {},
    h("td", { "data-label": "When" }, fmtDate(new Date(e.timeMs).toISOString())),
    h("td", { "data-label": "Who" }, e.tokenName, h("div", { class: "muted" }, `${e.role}${e.clientIp ? ` from ${e.clientIp}` : ""}`)),
    h("td", { "data-label": "What" }, `${e.method} ${e.path}`, e.detail ? h("div", { class: "detail" }, e.detail) : null, changeList(e)),
    h("td", { "data-label": "Result" }, tag(e.succeeded ? "Succeeded" : "Failed"), " ", String(e.status))));
  const more = r.data.nextCursor ? h("a", { class: "button secondary", href: `#/audit-log?${(() => { const p = new URLSearchParams(params); p.set("cursor", r.data.nextCursor); return p; })()}` }, "Older") : null;
  page("Audit log", form, h("div", { class: "card" }, table(["When", "Who", "What", "Result"], rows, "No change matches.")), more);
}

// ----- anti-spam --------------------------------------------------------------------------

// A settings document edited through its schema (sender and recipient filter,
// IP list configs), saved with If-Match.
function settingsCard(title, path, schemaName, data, etag, skip = []) {
  const prefix = path.replace(/[^a-z]+/g, "-").replace(/^-/, "");
  const form = buildForm(schemaName, data, { skip: ["version", ...skip], prefix });
  const card = h("form", { class: "card", "aria-label": title }, h("h2", {}, title), h("div", { class: "note" }), form.element,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("PATCH", path, formValues(form, { changedOnly: true }), etag);
    if (!res.ok) return showProblem(card, form, res.data, res.status);
    etag = res.etag;
    for (const [n, f] of Object.entries(form.fields)) f.initial = res.data[n];
    card.querySelector(".note").replaceChildren(banner("good", `Saved (version ${res.data.version}).`));
  });
  return card;
}

// A small add form: fields by name, posted as JSON to `path`.
function addCard(title, path, names) {
  const form = { fields: {} };
  const grid = h("div", { class: "form" });
  const key = title.toLowerCase().replace(/[^a-z]+/g, "-");
  for (const spec of names) {
    // "name[]" is a list, one item per line.
    const list = spec.endsWith("[]");
    const name = list ? spec.slice(0, -2) : spec;
    const id = `f-${key}-${name}`;
    const input = list ? h("textarea", { id, rows: 2 }) : h("input", { id, type: "text", autocomplete: "off" });
    grid.append(h("div", { class: "field", "data-field": name }, h("label", { for: id }, label(name)), input,
      list ? h("span", { class: "hint" }, "One per line") : null,
      h("span", { class: "error", id: `err-${key}-${name}`, role: "alert" })));
    form.fields[name] = { kind: list ? "list" : "text", input };
  }
  const card = h("form", { class: "card", "aria-label": title }, h("h2", {}, title), h("div", { class: "note" }), grid,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("POST", path, formValues(form));
    if (!res.ok) return showProblem(card, form, res.data, res.status);
    route();
  });
  return card;
}

function removeButton(what, path) {
  return h("button", { type: "button", class: "danger", "aria-label": `Remove ${what}`, onclick: async () => {
    if (!confirm(`Remove ${what}?`)) return;
    const d = await api("DELETE", path);
    if (!d.ok) return alert(d.data.detail);
    route();
  } }, "Remove");
}

function table(headers, rows, empty) {
  return rows.length
    ? h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows))
    : h("p", { class: "muted" }, empty);
}

// The recipient directory: look an address up, add a recipient, remove one.
// (Bulk loads of many thousands go through the API: PUT /api/v1/recipients.)
function recipientsCard() {
  const find = h("input", { id: "dir-find", type: "text", autocomplete: "off" });
  const result = h("div", { class: "note", role: "status" });
  const look = h("form", { class: "card", "aria-label": "Recipient directory" }, h("h2", {}, "Recipient directory"),
    h("div", { class: "form" }, h("div", { class: "field" }, h("label", { for: "dir-find" }, "Find an address"), find)),
    result, h("div", { class: "actions" }, h("button", { type: "submit" }, "Find")));
  look.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("GET", `/recipients/${encodeURIComponent(find.value.trim())}`);
    if (!r.ok) return result.replaceChildren(banner("warn", `${find.value.trim()} is not in the directory.`));
    result.replaceChildren(h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "Primary address"), h("dd", {}, r.data.primaryAddress),
      h("dt", {}, "Aliases"), h("dd", {}, r.data.aliases.join(", ") || "none")),
      removeButton(r.data.primaryAddress, `/recipients/${encodeURIComponent(r.data.primaryAddress)}`)));
  });
  return [look, addCard("Add a recipient", "/recipients", ["primaryAddress", "aliases[]"])];
}

async function antiSpamPage() {
  await loadSchema();
  const today = new Date(); today.setUTCHours(0, 0, 0, 0);
  const [agents, blockCfg, blocks, allows, providers, sender, recipient, events, attach] = await Promise.all([
    api("GET", "/transport-agents"), api("GET", "/ip-block-list-config"), api("GET", "/ip-block-list-entries"),
    api("GET", "/ip-allow-list-entries"), api("GET", "/ip-block-list-providers"), api("GET", "/sender-filter-config"),
    api("GET", "/recipient-filter-config"), api("GET", `/tracking?event=AGENT&limit=1000&start=${encodeURIComponent(today.toISOString())}`),
    api("GET", "/attachment-filter-config")]);
  // What each agent did today, from message tracking: "<agent>: <action>: <reason>".
  const counts = new Map();
  for (const e of events.data.items || []) {
    const [agent, action] = (e.detail || "").split(": ");
    const k = `${agent}|${action}`;
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const todayRows = [...counts.entries()].map(([k, n]) => { const [agent, action] = k.split("|"); return h("tr", {},
    h("td", { "data-label": "Agent" }, agent), h("td", { "data-label": "Action" }, action), h("td", { "data-label": "Today" }, String(n))); });
  const agentRows = agents.data.items.map((a) => h("tr", {},
    h("td", { "data-label": "Priority" }, String(a.priority)), h("td", { "data-label": "Agent" }, a.identity),
    h("td", { "data-label": "State" }, tag(a.enabled ? "Enabled" : "Disabled")),
    h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `${a.enabled ? "Disable" : "Enable"} ${a.identity}`, onclick: async () => {
      const r = await api("PATCH", `/transport-agents/${encodeURIComponent(a.identity)}`, { enabled: !a.enabled }, agents.etag);
      if (!r.ok) return alert(r.data.detail);
      route();
    } }, a.enabled ? "Disable" : "Enable"))));
  const entryRows = (list, path) => list.data.items.map((e) => h("tr", {},
    h("td", { "data-label": "Range" }, e.ipRange), h("td", { "data-label": "Expires" }, e.expirationTime ? fmtDate(e.expirationTime) : "never", e.expired ? " (expired)" : ""),
    h("td", { "data-label": "Comment" }, e.comment || ""), h("td", {}, removeButton(e.ipRange, `${path}/${e.id}`))));
  const providerRows = providers.data.items.map((p) => h("tr", {},
    h("td", { "data-label": "Priority" }, String(p.priority)), h("td", { "data-label": "Provider" }, p.name),
    h("td", { "data-label": "Zone" }, p.lookupDomain), h("td", { "data-label": "Match" }, p.match.type),
    h("td", { "data-label": "State" }, tag(p.enabled ? "Enabled" : "Disabled")), h("td", {}, removeButton(p.name, `/ip-block-list-providers/${p.id}`))));
  page("Anti-spam",
    h("h2", {}, "Today"),
    h("div", { class: "card", "aria-label": "What the agents did today" }, table(["Agent", "Action", "Today"], todayRows, "No agent acted today.")),
    h("h2", {}, "Transport agents"),
    h("div", { class: "card" }, table(["Priority", "Agent", "State", ""], agentRows, "")),
    h("h2", {}, "IP Block list"),
    h("div", { class: "card" }, table(["Range", "Expires", "Comment", ""], entryRows(blocks, "/ip-block-list-entries"), "No entry.")),
    addCard("Block an address", "/ip-block-list-entries", ["ipRange", "comment"]),
    h("h2", {}, "IP Allow list"),
    h("div", { class: "card" }, table(["Range", "Expires", "Comment", ""], entryRows(allows, "/ip-allow-list-entries"), "No entry.")),
    addCard("Allow an address", "/ip-allow-list-entries", ["ipRange", "comment"]),
    h("h2", {}, "IP Block list providers"),
    h("div", { class: "card" }, table(["Priority", "Provider", "Zone", "Match", "State", ""], providerRows, "No provider.")),
    addCard("Add a block list provider", "/ip-block-list-providers", ["name", "lookupDomain", "rejectionResponse"]),
    ...recipientsCard(),
    h("h2", {}, "Attachment filter"),
    h("div", { class: "card", "aria-label": "Attachment filter entries" }, table(["Entry", ""],
      attach.data.entries.map((e) => { const id = `${e.type}:${e.name}`; return h("tr", {},
        h("td", { "data-label": "Entry" }, id), h("td", {}, removeButton(id, `/attachment-filter-entries/${encodeURIComponent(id)}`))); }),
      "No entry.")),
    addCard("Filter an attachment", "/attachment-filter-entries", ["type", "name"]),
    settingsCard("Attachment filter settings", "/attachment-filter-config", "AttachmentFilterConfig", attach.data, attach.etag, ["entries"]),
    settingsCard("IP Block list settings", "/ip-block-list-config", "IpListConfig", blockCfg.data, blockCfg.etag),
    settingsCard("Sender filter", "/sender-filter-config", "SenderFilterConfig", sender.data, sender.etag),
    settingsCard("Recipient filter", "/recipient-filter-config", "RecipientFilterConfig", recipient.data, recipient.etag));
}

// The content agents: the Content Filter's settings, address rewriting and
// Edge transport rules (a rule is written as JSON: its conditions and
// actions are many; the API names the field at fault).
function ruleCard() {
  const id = "rule-json";
  const input = h("textarea", { id, rows: 6, spellcheck: "false" });
  input.value = JSON.stringify({ name: "", conditions: { fromScope: "NotInOrganization" }, actions: { prependSubject: "[EXTERNAL] " } }, null, 2);
  const note = h("div", { class: "note" });
  const card = h("form", { class: "card", "aria-label": "New transport rule" }, h("h2", {}, "New transport rule"), note,
    h("div", { class: "field" }, h("label", { for: id }, "Rule (JSON)"), input,
      h("span", { class: "hint" }, "name, priority, enabled, mode (Enforce or Audit), conditions, exceptions, actions — see the README")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add")));
  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let body;
    try { body = JSON.parse(input.value); } catch (e) { return note.replaceChildren(banner("bad", `Not JSON: ${e.message}`)); }
    const r = await api("POST", "/transport-rules", body);
    if (!r.ok) {
      const fields = (r.data.errors || []).map((x) => `${x.field}: ${x.message}`).join("; ");
      return note.replaceChildren(banner("bad", fields || r.data.detail || r.data.title));
    }
    route();
  });
  return card;
}

async function contentPage() {
  await loadSchema();
  const [cf, rewrites, rules] = await Promise.all([api("GET", "/content-filter-config"),
    api("GET", "/address-rewrite-entries"), api("GET", "/transport-rules")]);
  const rewriteRows = rewrites.data.items.map((e) => h("tr", {},
    h("td", { "data-label": "Name" }, e.name), h("td", { "data-label": "Internal" }, e.internalAddress),
    h("td", { "data-label": "External" }, e.externalAddress), h("td", { "data-label": "Outbound only" }, e.outboundOnly ? "yes" : "no"),
    h("td", {}, removeButton(e.name, `/address-rewrite-entries/${encodeURIComponent(e.name)}`))));
  const ruleRows = rules.data.items.map((r) => h("tr", {},
    h("td", { "data-label": "Priority" }, String(r.priority)), h("td", { "data-label": "Rule" }, r.name),
    h("td", { "data-label": "Mode" }, r.mode === "Audit" ? "Test (audit)" : "Enforce"),
    h("td", { "data-label": "State" }, tag(r.enabled ? "Enabled" : "Disabled")),
    h("td", { "data-label": "Does" }, Object.keys(r.actions).join(", ")),
    h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `${r.enabled ? "Disable" : "Enable"} ${r.name}`, onclick: async () => {
      const x = await api("PATCH", `/transport-rules/${encodeURIComponent(r.name)}`, { enabled: !r.enabled }, rules.etag);
      if (!x.ok) return alert(x.data.detail);
      route();
    } }, r.enabled ? "Disable" : "Enable"), " ", removeButton(r.name, `/transport-rules/${encodeURIComponent(r.name)}`))));
  page("Content agents",
    h("p", { class: "muted" }, "The agents that read the message at the end of data. Turn the Content Filter Agent on in Anti-spam › Transport agents once rspamd runs."),
    settingsCard("Content filter", "/content-filter-config", "ContentFilterConfig", cf.data, cf.etag),
    h("h2", {}, "Address rewriting"),
    h("div", { class: "card", "aria-label": "Address rewrite entries" }, table(["Name", "Internal", "External", "Outbound only", ""], rewriteRows, "No entry.")),
    addCard("Rewrite an address", "/address-rewrite-entries", ["name", "internalAddress", "externalAddress", "exceptionList[]"]),
    h("h2", {}, "Transport rules"),
    h("div", { class: "card", "aria-label": "Transport rules" }, table(["Priority", "Rule", "Mode", "State", "Does", ""], ruleRows, "No rule.")),
    ruleCard());
}

// Message authentication: DKIM signing keys with the DNS records to publish,
// the Sender Id agent's settings, today's verdicts, and the SPF lint.
async function authenticationPage() {
  await loadSchema();
  const today = new Date(); today.setUTCHours(0, 0, 0, 0);
  const [keys, sid, events, spf, dmarc, tls] = await Promise.all([api("GET", "/dkim-signing-keys"), api("GET", "/sender-id-config"),
    api("GET", `/tracking?event=AGENT&limit=1000&start=${encodeURIComponent(today.toISOString())}`), api("GET", "/spf-check"),
    api("GET", "/dmarc-reports"), api("GET", "/tls-reports")]);
  // Today's verdicts, from the Sender Id agent's tracking events: "spf=pass dkim=pass dmarc=pass arc=none".
  const counts = new Map();
  for (const e of events.data.items || []) {
    const m = /^Sender Id Agent: Verified: (.*)$/.exec(e.detail || "");
    if (!m) continue;
    for (const v of m[1].split(" ")) counts.set(v, (counts.get(v) || 0) + 1);
  }
  const verdictRows = [...counts.entries()].sort().map(([v, n]) => { const [method, result] = v.split("="); return h("tr", {},
    h("td", { "data-label": "Check" }, method.toUpperCase()), h("td", { "data-label": "Result" }, result), h("td", { "data-label": "Today" }, String(n))); });
  const keyRows = keys.data.items.map((k) => h("tr", {},
    h("td", { "data-label": "Domain" }, k.domain), h("td", { "data-label": "Selector" }, k.selector),
    h("td", { "data-label": "Algorithm" }, k.algorithm), h("td", { "data-label": "State" }, tag(k.state)),
    h("td", { "data-label": "DNS record" }, h("code", { class: "wrap" }, `${k.dnsRecordName} TXT "${k.dnsRecord}"`)),
    h("td", {}, ...["Active", "Retired"].filter((st) => st !== k.state).map((st) => h("button", { type: "button", class: "secondary",
      "aria-label": `${st === "Active" ? "Activate" : "Retire"} ${k.dnsRecordName}`, onclick: async () => {
        const r = await api("PATCH", `/dkim-signing-keys/${k.id}`, { state: st }, `"${k.version}"`);
        if (!r.ok) return alert(r.data.detail);
        route();
      } }, st === "Active" ? "Activate" : "Retire")), " ", removeButton(k.dnsRecordName, `/dkim-signing-keys/${k.id}`))));
  const spfRows = spf.data.items.flatMap((d) => d.paths.map((p) => h("tr", {},
    h("td", { "data-label": "Domain" }, d.domain), h("td", { "data-label": "Leaves by" }, p.connector),
    h("td", { "data-label": "From" }, p.sourceAddress || "unknown"), h("td", { "data-label": "SPF" }, tag(p.result)),
    h("td", { "data-label": "What to do" }, p.explanation))));
  const when = (s) => new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");
  const pendingRows = dmarc.data.pending.map((p) => h("tr", {},
    h("td", { "data-label": "Domain" }, p.policyDomain), h("td", { "data-label": "Messages" }, String(p.messages)),
    h("td", { "data-label": "Since (UTC)" }, when(p.sinceS))));
  const reportRows = dmarc.data.reports.map((r) => h("tr", {},
    h("td", { "data-label": "Domain" }, r.policyDomain), h("td", { "data-label": "Period (UTC)" }, `${when(r.beginS)} – ${when(r.endS)}`),
    h("td", { "data-label": "Messages" }, String(r.messages)), h("td", { "data-label": "Status" }, tag(r.status)),
    h("td", { "data-label": "To" }, r.recipients.join(", ")), h("td", { "data-label": "Left out" }, r.detail || "")));
  // "Send now" for a kind of report: its errors (reports off) shown in `note`.
  const sendNowButton = (path, note, label) => h("button", { type: "button", class: "secondary", "aria-label": label, onclick: async () => {
    const r = await api("POST", path);
    if (!r.ok) return note.replaceChildren(banner("bad", r.data.detail || r.data.title));
    route();
  } }, "Send now");
  const dmarcNote = h("div", { class: "note" });
  const sendNow = sendNowButton("/dmarc-reports/send", dmarcNote, "Send DMARC reports now");
  const tlsNote = h("div", { class: "note" });
  const tlsPendingRows = tls.data.pending.map((p) => h("tr", {},
    h("td", { "data-label": "Domain" }, p.policyDomain), h("td", { "data-label": "Sessions" }, String(p.sessions)),
    h("td", { "data-label": "Since (UTC)" }, when(p.sinceS))));
  const tlsRows = tls.data.reports.map((r) => h("tr", {},
    h("td", { "data-label": "Domain" }, r.policyDomain), h("td", { "data-label": "Period (UTC)" }, `${when(r.beginS)} – ${when(r.endS)}`),
    h("td", { "data-label": "Succeeded" }, String(r.successes)), h("td", { "data-label": "Failed" }, String(r.failures)),
    h("td", { "data-label": "Status" }, tag(r.status)), h("td", { "data-label": "To" }, r.recipients.join(", ")),
    h("td", { "data-label": "Left out" }, r.detail || "")));
  page("Authentication",
    h("h2", {}, "Today"),
    h("div", { class: "card", "aria-label": "Today's verdicts" }, table(["Check", "Result", "Today"], verdictRows, "No message was checked today.")),
    h("h2", {}, "DKIM signing keys"),
    h("div", { class: "card", "aria-label": "DKIM signing keys" }, table(["Domain", "Selector", "Algorithm", "State", "DNS record", ""], keyRows, "No key.")),
    addCard("New DKIM key", "/dkim-signing-keys", ["domain", "selector", "algorithm"]),
    h("h2", {}, "SPF of our domains"),
    h("div", { class: "card", "aria-label": "SPF of our domains" }, table(["Domain", "Leaves by", "From", "SPF", "What to do"], spfRows, "No send connector carries Internet mail.")),
    h("h2", {}, "DMARC aggregate reports"),
    h("div", { class: "card", "aria-label": "DMARC aggregate reports" },
      h("p", { class: "muted" }, dmarc.data.enabled
        ? "Counted per UTC day and sent after midnight to each domain's rua addresses."
        : "Off: turn on dmarcReportsEnabled in the Sender Id agent's settings below."), dmarcNote,
      table(["Domain", "Messages", "Since (UTC)"], pendingRows, "Nothing counted and unreported."),
      table(["Domain", "Period (UTC)", "Messages", "Status", "To", "Left out"], reportRows, "No report yet."),
      h("div", { class: "actions" }, sendNow)),
    h("h2", {}, "TLS reports"),
    h("div", { class: "card", "aria-label": "TLS reports" },
      h("p", { class: "muted" }, tls.data.enabled
        ? "Outbound TLS sessions to domains with an MTA-STS policy, reported daily to each domain's _smtp._tls address."
        : "Off: turn on tlsReportsEnabled in the transport settings."), tlsNote,
      table(["Domain", "Sessions", "Since (UTC)"], tlsPendingRows, "Nothing counted and unreported."),
      table(["Domain", "Period (UTC)", "Succeeded", "Failed", "Status", "To", "Left out"], tlsRows, "No report yet."),
      h("div", { class: "actions" }, sendNowButton("/tls-reports/send", tlsNote, "Send TLS reports now"))),
    settingsCard("Sender Id agent (SPF, DKIM, DMARC, ARC)", "/sender-id-config", "SenderIdConfig", sid.data, sid.etag));
}

// ----- overview --------------------------------------------------------------------------

async function overviewPage() {
  const [server, rcs, queues, certs] = await Promise.all([api("GET", "/server"), api("GET", "/receive-connectors"), api("GET", "/queues"), api("GET", "/certificates")]);
  const s = server.data;
  const byStatus = {};
  for (const q of queues.data.items) byStatus[q.status] = (byStatus[q.status] || 0) + q.messageCount;
  const soon = Date.now() + 30 * 86400e3;
  const expiring = certs.data.items.filter((c) => new Date(c.notAfter) < soon);
  const noCert = rcs.data.items.filter((c) => c.warnings.some((w) => w.includes("STARTTLS")));
  page("Overview",
    h("div", { class: "card" }, h("dl", { class: "kv" }, [["Role", s.role], ["Server", s.serverName], ["FQDN", s.fqdn], ["Version", s.version]].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
    h("h2", {}, "Listeners"),
    h("div", { class: "card" }, h("table", { class: "responsive" }, h("thead", {}, h("tr", {}, ["Connector", "Binding", "State"].map((x) => h("th", {}, x)))),
      h("tbody", {}, rcs.data.items.flatMap((c) => c.listeners.map((l) => h("tr", {}, h("td", { "data-label": "Connector" }, h("a", { href: `#/receive-connectors/${c.id}` }, c.name)),
        h("td", { "data-label": "Binding" }, l.binding), h("td", { "data-label": "State" }, tag(l.state), l.error ? ` ${l.error}` : ""))))))),
    h("h2", {}, "Queued messages by queue status"),
    h("div", { class: "card" }, h("dl", { class: "kv" }, Object.entries(byStatus).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))),
    h("h2", {}, "Certificates close to expiry"),
    h("div", { class: "card" }, expiring.length ? h("ul", {}, expiring.map((c) => h("li", {}, `${c.subject} — ${fmtDate(c.notAfter)}`))) : h("p", { class: "muted" }, "None within 30 days.")),
    h("h2", {}, "Connectors without a certificate for their FQDN"),
    h("div", { class: "card" }, noCert.length ? h("ul", {}, noCert.map((c) => h("li", {}, h("a", { href: `#/receive-connectors/${c.id}` }, c.name), ` (${c.effectiveFqdn})`))) : h("p", { class: "muted" }, "None.")));
}

// ----- sign-in and routing ------------------------------------------------------------------

function signOut() {
  sessionStorage.removeItem("ferry-token");
  signInPage();
}

function signInPage() {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const note = h("div", { class: "note" });
  const form = h("form", { class: "card", "aria-label": "Sign in" },
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input, h("span", { class: "hint" }, "The admin token (<data-dir>/admin-token or FERRY_ADMIN_TOKEN) or a named API token; what you can change follows its role. Kept for this browser session only.")),
    note, h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch(`${API}/server`, { headers: { Authorization: `Bearer ${input.value.trim()}` } });
    if (!r.ok) return note.replaceChildren(banner("bad", "That token is not accepted."));
    sessionStorage.setItem("ferry-token", input.value.trim());
    location.hash = "#/overview";
    route();
  });
  page("Sign in", form);
  input.focus();
}

// Back pressure or a failing queue is shown above every page, before anything fails.
async function showHealth() {
  const box = document.getElementById("health");
  const r = await fetch("/healthz", { cache: "no-store" }).then((x) => x.json()).catch(() => null);
  if (!r || r.status === "ok") return box.replaceChildren(), (box.hidden = true);
  const text = r.status === "failing" ? `Ferry is failing and refuses mail: ${r.reason}`
    : `Back pressure: new mail is refused with 452 4.3.1 until resources recover (${r.backPressure})`;
  box.replaceChildren(banner(r.status === "failing" ? "bad" : "warn", text));
  box.hidden = false;
}

async function route() {
  if (!token()) return signInPage();
  showHealth();
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path] = hash.split("?");
  const [section, id] = path.split("/");
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${section}`) && a.setAttribute("aria-current", "page");
  try {
    if (RESOURCES[section]) await (id ? editPage(section, id) : listPage(section));
    else if (section === "certificates") await certificatesPage();
    else if (section === "transport-settings") await settingsPage();
    else if (section === "queues") await queuesPage();
    else if (section === "messages" && id) await messagePage(id);
    else if (section === "tracking") await trackingPage();
    else if (section === "audit-log") await auditPage();
    else if (section === "anti-spam") await antiSpamPage();
    else if (section === "content") await contentPage();
    else if (section === "authentication") await authenticationPage();
    else await overviewPage();
  } catch (e) {
    if (e.message !== "signed out") page("Error", banner("bad", String(e)));
  }
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
// The banner follows the server's state while a page stays open.
setInterval(() => { if (token()) showHealth(); }, 5000);
route();
