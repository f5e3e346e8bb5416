// hera console. Reads /ui/state with blocking queries (it answers as soon as the node's view
// changes, or after `wait`), renders with DOM calls (never innerHTML: names and tags come from
// whoever registered them), and takes instances off-line through Consul's maintenance endpoint.
"use strict";

const WAIT = "25s";
const RETRY_MS = 2000;

const $ = (id) => document.getElementById(id);
const filters = { q: "", service: "", dc: "", health: "" };
let current = null;
let index = 0;

// ---- tiny DOM helper -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(kind, text) {
  return h("span", { class: "state " + kind }, text || kind);
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "now";
  if (seconds < 60) return Math.round(seconds) + "s";
  if (seconds < 3600) return Math.round(seconds / 60) + "m";
  return Math.round(seconds / 3600) + "h";
}

function toast(message, isError) {
  const t = $("toast");
  t.textContent = message;
  t.className = isError ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 3000);
}

// ---- filters, kept in the URL hash so a reload or a shared link keeps them -----------------

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of Object.keys(filters)) filters[k] = p.get(k) || "";
}

function writeHash() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
  const s = p.toString();
  history.replaceState(null, "", s ? "#" + s : location.pathname);
}

function setFilter(key, value) {
  filters[key] = value;
  writeHash();
  render();
}

function matches(inst) {
  if (filters.service && inst.service !== filters.service) return false;
  if (filters.dc && inst.dc !== filters.dc) return false;
  if (filters.health === "offline" && inst.online) return false;
  if (filters.health && filters.health !== "offline" && inst.health !== filters.health) return false;
  if (filters.q) {
    const hay = [inst.service, inst.id, inst.address + ":" + inst.port, inst.owner, inst.dc,
      inst.maintenance_reason || "", ...inst.tags].join(" ").toLowerCase();
    for (const word of filters.q.toLowerCase().split(/\s+/)) {
      if (word && !hay.includes(word)) return false;
    }
  }
  return true;
}

// ---- rendering ------------------------------------------------------------------------------

function renderHeader(s) {
  $("node-name").textContent = s.node;
  $("node-dc").textContent = s.dc;
  document.title = `hera · ${s.node}`;
  const q = s.quorum;
  const of = Math.max(q.known, q.expected || 0);
  const pill = $("quorum");
  pill.className = "pill " + (q.has_quorum ? "ok" : "bad");
  pill.textContent = (q.has_quorum ? "quorum " : "NO QUORUM ") + `${q.reachable}/${of}`;
  pill.title = `${q.reachable} reachable of ${q.known} known` +
    (q.expected ? `, ${q.expected} expected` : "") + `; a majority needs ${q.needed}`;

  const by = s.members_by_state;
  $("member-counts").replaceChildren(
    h("span", {}, h("b", {}, by.alive || 0), " alive"),
    h("span", { class: by.suspect ? "warn" : "" }, h("b", {}, by.suspect || 0), " suspect"),
    h("span", { class: by.failed ? "crit" : "" }, h("b", {}, by.failed || 0), " failed"),
    h("span", {}, h("b", {}, by.left || 0), " left"),
  );
  const online = s.instances.filter((i) => i.online).length;
  const critical = s.instances.filter((i) => i.online && i.health === "critical").length;
  const services = new Set(s.instances.map((i) => i.service)).size;
  $("instance-counts").replaceChildren(
    h("span", {}, h("b", {}, services), " services"),
    h("span", {}, h("b", {}, s.instances.length), " instances"),
    h("span", { class: s.instances.length - online ? "warn" : "" }, h("b", {}, s.instances.length - online), " off-line"),
    h("span", { class: critical ? "crit" : "" }, h("b", {}, critical), " critical"),
  );
}

function renderFilters(s) {
  const services = [...new Set(s.instances.map((i) => i.service))].sort();
  const dcs = [...new Set([...s.members.map((m) => m.dc), ...s.instances.map((i) => i.dc)])].sort();
  fillSelect($("service-filter"), services, filters.service);
  fillSelect($("dc-filter"), dcs, filters.dc);
  for (const b of $("health-filter").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.health === filters.health));
  }
  if (document.activeElement !== $("filter")) $("filter").value = filters.q;
}

function fillSelect(select, values, chosen) {
  const wanted = ["", ...values];
  // Keep a chosen value that has disappeared, so the filter does not silently reset.
  if (chosen && !values.includes(chosen)) wanted.push(chosen);
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") !== wanted.join("\n")) {
    select.replaceChildren(...wanted.map((v) => h("option", { value: v }, v || "all")));
  }
  select.value = chosen;
}

function renderServices(s) {
  const by = new Map();
  for (const i of s.instances) {
    if (filters.dc && i.dc !== filters.dc) continue;
    const e = by.get(i.service) || { total: 0, passing: 0, warning: 0, critical: 0 };
    e.total += 1;
    e[i.online ? i.health : "critical"] += 1;
    by.set(i.service, e);
  }
  const names = [...by.keys()].sort();
  $("service-count").textContent = names.length ? String(names.length) : "";
  const item = (name, label, e) => {
    const bar = h("span", { class: "health-bar", "aria-hidden": "true" });
    if (e) {
      for (const k of ["passing", "warning", "critical"]) {
        if (!e[k]) continue;
        const seg = h("i", { class: k });
        seg.style.width = (100 * e[k] / e.total) + "%";
        bar.append(seg);
      }
    }
    return h("li", {}, h("button", {
      type: "button",
      "aria-current": String(filters.service === name),
      title: e ? `${e.passing} passing, ${e.warning} warning, ${e.critical} critical or off-line` : "",
      onclick: () => setFilter("service", filters.service === name ? "" : name),
    }, h("span", { class: "name" }, label), e ? bar : null,
    h("span", { class: "n" }, e ? e.total : s.instances.length)));
  };
  $("services").replaceChildren(item("", "All services", null),
    ...names.map((n) => item(n, n, by.get(n))));
}

function renderInstances(s) {
  const focused = document.activeElement && document.activeElement.dataset.key;
  const rows = s.instances.filter(matches);
  const tbody = $("instances").tBodies[0];
  tbody.replaceChildren(...rows.map((i, n) => {
    // Rows come sorted by service: dim a name that repeats the row above, so groups stand out.
    const repeat = n > 0 && rows[n - 1].service === i.service;
    const key = i.service + "/" + i.id;
    const action = i.online
      ? h("button", { type: "button", class: "act take", dataset: { key, action: "offline", id: i.id, service: i.service },
        onclick: () => askOffline(i) }, "Take off-line")
      : h("button", { type: "button", class: "act bring", dataset: { key, action: "online", id: i.id, service: i.service },
        onclick: (e) => setMaintenance(i, false, "", e.currentTarget) }, "Bring on-line");
    return h("tr", { class: i.online ? "" : "offline", dataset: { service: i.service, id: i.id } },
      h("td", { class: repeat ? "service repeat" : "service" }, i.service),
      h("td", { class: "id" }, i.id),
      h("td", { class: "addr" }, `${i.address}:${i.port}`),
      h("td", {}, i.tags.map((t) => h("span", { class: "tag" }, t))),
      h("td", {}, i.dc),
      h("td", {}, i.owner),
      h("td", {}, i.stale
        ? [badge(i.health), h("span", { class: "reason", title: "kept for want of quorum: its owner is failed or gone" }, "stale")]
        : badge(i.health), checkList(i.checks)),
      h("td", {}, i.online ? badge("online", "on-line") : [badge("offline", "off-line"),
        i.maintenance_reason ? h("span", { class: "reason", title: i.maintenance_reason }, i.maintenance_reason) : null]),
      h("td", { class: "actions" }, action));
  }));
  $("instances-empty").hidden = rows.length > 0;
  $("instances-empty").textContent = s.instances.length ? "No instances match the filters." : "No services registered yet.";
  $("shown").textContent = `${rows.length} of ${s.instances.length} instances`;
  if (focused) {
    const again = tbody.querySelector(`button[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// Each check of an instance (or of the node): its id and status, its output on hover. An
// instance registered without a check has one of no kind, which says nothing: not listed.
function checkList(checks) {
  const shown = (checks || []).filter((c) => c.kind);
  if (!shown.length) return null;
  return h("ul", { class: "checks" }, shown.map((c) =>
    h("li", { class: "check " + c.status, dataset: { check: c.id, status: c.status },
      title: `${c.name || c.id} (${c.kind}): ${c.status}${c.output ? " · " + c.output : ""}` },
    h("span", { class: "dot", "aria-hidden": "true" }), c.id)));
}

function renderNode(s) {
  const on = !!s.node_maintenance;
  const button = $("node-maintenance");
  button.dataset.on = String(on);
  button.textContent = on ? "Node in maintenance · end" : "Node maintenance";
  button.title = on ? `Every instance of ${s.node} is off-line: ${s.node_maintenance}` : `Take every instance of ${s.node} off-line`;
  $("node-checks").replaceChildren(...(checkList(s.node_checks) ? [checkList(s.node_checks)] : []));
}

async function toggleNodeMaintenance() {
  const button = $("node-maintenance");
  const enable = button.dataset.on !== "true";
  const reason = enable ? "drained from the console" : "";
  button.disabled = true;
  const params = new URLSearchParams({ enable: String(enable) });
  if (reason) params.set("reason", reason);
  try {
    const r = await api(`/v1/agent/maintenance?${params}`, { method: "PUT" }, true);
    if (!r.ok) throw new Error(`${r.status}`);
    toast(enable ? "The node is in maintenance" : "The node is back on-line");
    await refresh(false);
  } catch (e) {
    toast(`Could not change node maintenance: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function renderMembers(s) {
  const rows = s.members.filter((m) => !filters.dc || m.dc === filters.dc);
  $("members").tBodies[0].replaceChildren(...rows.map((m) =>
    h("tr", { class: m.name === s.node ? "self" : "", dataset: { member: m.name } },
      h("td", { title: `${m.addr}, incarnation ${m.incarnation}` }, m.name),
      h("td", {}, m.dc),
      h("td", {}, badge(m.state)),
      h("td", { class: "num", title: "since the last ack from it" }, m.name === s.node ? "–" : ago(m.last_contact_seconds)))));
}

function render() {
  if (!current) return;
  renderHeader(current);
  renderNode(current);
  renderFilters(current);
  renderServices(current);
  renderInstances(current);
  renderMembers(current);
}

// ---- API token ------------------------------------------------------------------------------

// With a token configured on the node, writes (and reads, if so configured) need it. The
// console asks when the node answers 403, keeps the token for this tab only, and sends it as
// Consul's header. After one refusal to give it, only a user's action asks again.
const TOKEN_KEY = "hera-token";
let tokenDeclined = false;

function withToken(options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = Object.assign({}, options.headers || {}, token ? { "X-Consul-Token": token } : {});
  return Object.assign({}, options, { headers });
}

function askToken(userAction) {
  if (tokenDeclined && !userAction) return false;
  const token = window.prompt("This node requires an API token:");
  if (token && token.trim()) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    tokenDeclined = false;
    return true;
  }
  tokenDeclined = true;
  return false;
}

async function api(url, options, userAction) {
  const response = await fetch(url, withToken(options));
  if (response.status === 403 && askToken(userAction)) return fetch(url, withToken(options));
  return response;
}

// ---- live updates ---------------------------------------------------------------------------

function setLive(ok, text) {
  $("live").className = "live " + (ok ? "on" : "off");
  $("live-text").textContent = text;
}

async function refresh(block) {
  const url = block && index ? `/ui/state?index=${index}&wait=${WAIT}` : "/ui/state";
  const response = await api(url, { cache: "no-store" }, false);
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  current = await response.json();
  index = Number(response.headers.get("X-Consul-Index")) || current.index;
  setLive(true, "live · " + new Date().toLocaleTimeString());
  render();
}

async function loop() {
  for (;;) {
    try {
      await refresh(true);
    } catch (e) {
      setLive(false, "reconnecting…");
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}

// ---- actions --------------------------------------------------------------------------------

let pending = null;

function askOffline(inst) {
  pending = inst;
  $("offline-id").textContent = `${inst.service}/${inst.id}`;
  $("offline-reason").value = "";
  // Esc closes without a new return value; clear the last one so it cannot confirm.
  $("offline-dialog").returnValue = "";
  $("offline-dialog").showModal();
  $("offline-reason").focus();
}

async function setMaintenance(inst, enable, reason, button) {
  if (button) button.disabled = true;
  const params = new URLSearchParams({ enable: String(enable) });
  if (reason) params.set("reason", reason);
  try {
    const r = await api(`/v1/agent/service/maintenance/${encodeURIComponent(inst.id)}?${params}`, { method: "PUT" }, true);
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).error || detail; } catch (_) { /* not JSON */ }
      throw new Error(`${r.status}: ${detail}`);
    }
    toast(`${inst.service}/${inst.id} is ${enable ? "off-line" : "back on-line"}`);
    await refresh(false);
  } catch (e) {
    toast(`Could not change ${inst.id}: ${e.message}`, true);
    if (button) button.disabled = false;
  }
}

function wire() {
  readHash();
  const input = $("filter");
  input.addEventListener("input", () => setFilter("q", input.value.trim()));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { input.value = ""; setFilter("q", ""); input.blur(); }
  });
  $("service-filter").addEventListener("change", (e) => setFilter("service", e.target.value));
  $("dc-filter").addEventListener("change", (e) => setFilter("dc", e.target.value));
  for (const b of $("health-filter").querySelectorAll("button")) {
    b.addEventListener("click", () => setFilter("health", b.dataset.health));
  }
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (e.key === "/" && !typing && !$("offline-dialog").open) { e.preventDefault(); input.focus(); input.select(); }
  });
  window.addEventListener("hashchange", () => { readHash(); render(); });
  $("node-maintenance").addEventListener("click", toggleNodeMaintenance);
  $("offline-cancel").addEventListener("click", () => $("offline-dialog").close("cancel"));
  $("offline-dialog").addEventListener("close", () => {
    const inst = pending;
    pending = null;
    if (inst && $("offline-dialog").returnValue === "confirm") {
      const reason = $("offline-reason").value.trim() || "taken off-line from the console";
      const button = document.querySelector(`button[data-key="${CSS.escape(inst.service + "/" + inst.id)}"]`);
      setMaintenance(inst, true, reason, button);
    }
  });
  loop();
}

wire();
