// The console page: reads the console's JSON API, draws tables and charts, and sends the
// operator's actions. Everything shown comes from the registry or from providers, so it is
// put into the page as text, never as markup.
"use strict";

const HISTORY = 60;          // samples kept per provider (one a second)
const METRICS_EVERY = 1000;  // ms between metrics reads
const SERVICES_EVERY = 2000; // ms between registry reads

const state = {
  services: [],
  selected: null,
  servicesText: "",
  history: new Map(), // address -> [{t, calls, errors, buckets}]
  writable: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "error";
}

async function getJson(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

async function post(path, payload) {
  const token = $("token").value;
  const r = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-admin-token": token },
    body: JSON.stringify(payload),
  });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// An action from a button or form: its result or error goes to the message line.
async function act(path, payload, after) {
  try {
    const body = await post(path, payload);
    say(body.done || "done", true);
    if (after) after(body);
    await refreshServices();
    if (state.selected) await refreshRules();
  } catch (e) {
    say(e.message, false);
  }
}

function current() {
  return state.services.find((s) => s.interface === state.selected);
}

async function refreshServices() {
  let services;
  try {
    services = await getJson("/api/services");
  } catch (e) {
    say(`cannot read the services: ${e.message}`, false);
    return;
  }
  const text = JSON.stringify(services);
  if (text === state.servicesText) return;
  state.servicesText = text;
  state.services = services;
  const list = $("services");
  list.replaceChildren();
  for (const s of services) {
    const online = s.providers.filter((p) => p.state === "online").length;
    // The versions and groups it is served under: `1.0.0`, `2.0.0/blue`.
    const keys = [...new Set(s.providers.map((p) => [p.version, p.group].filter((x) => x).join("/")))]
      .filter((k) => k).sort();
    const item = el("li", { "data-interface": s.interface },
      `${s.interface} (${online}/${s.providers.length} providers)`,
      el("div", { class: "keys" }, keys.length ? keys.join(", ") : "no version or group"));
    if (s.interface === state.selected) item.classList.add("selected");
    item.addEventListener("click", () => select(s.interface));
    list.append(item);
  }
  if (!state.selected && services.length > 0) {
    await select(services[0].interface);
  } else {
    renderDetail();
  }
}

async function select(name) {
  state.selected = name;
  for (const li of $("services").children) {
    li.classList.toggle("selected", li.dataset.interface === name);
  }
  $("detail").hidden = false;
  $("title").textContent = name;
  renderDetail();
  await Promise.all([refreshMethods(), refreshRules()]);
}

function renderDetail() {
  const s = current();
  if (!s) return;
  const body = $("providers").tBodies[0];
  body.replaceChildren();
  for (const p of s.providers) {
    const row = el("tr", { "data-address": p.address, class: p.state });
    for (const v of [p.address]) row.append(el("td", {}, v));
    row.append(el("td", { class: `state state-${p.state}` }, p.state));
    for (const v of [p.version, p.group, p.zone, p.weight, p.protocol, p.serialization, p.application]) {
      row.append(el("td", {}, v || "-"));
    }
    for (const k of ["rate", "errors", "p50", "p99"]) row.append(el("td", { class: k }, "-"));
    const actions = el("td", { class: "actions" });
    if (p.state === "online") {
      const off = el("button", { class: "offline", type: "button" }, "offline");
      off.addEventListener("click", () => act("/api/provider", { address: p.address, online: false }));
      const w = el("input", { class: "weight", value: p.weight, inputMode: "numeric" });
      const set = el("button", { class: "set-weight", type: "button" }, "set weight");
      set.addEventListener("click", () => {
        const weight = Number(w.value.trim());
        if (!Number.isInteger(weight) || weight < 0) {
          say(`weight must be a whole number of 0 or more, not "${w.value}"`, false);
          return;
        }
        act("/api/weight", { interface: s.interface, address: p.address, weight });
      });
      actions.append(off, " ", w, set);
    } else {
      const on = el("button", { class: "online", type: "button" }, "online");
      on.addEventListener("click", () => act("/api/provider", { address: p.address, online: true }));
      actions.append(on);
    }
    row.append(actions);
    body.append(row);
  }
  const consumers = $("consumers").tBodies[0];
  consumers.replaceChildren();
  for (const c of s.consumers) {
    consumers.append(el("tr", {}, el("td", {}, c.address), el("td", {}, c.application || "-"),
      el("td", {}, c.version || "-"), el("td", {}, c.zone || "-")));
  }
  drawMetrics();
}

async function refreshMethods() {
  const name = state.selected;
  const list = $("methods");
  const select = $("call-method");
  try {
    const methods = await getJson(`/api/methods?interface=${encodeURIComponent(name)}`);
    if (name !== state.selected) return;
    list.replaceChildren(...methods.map((m) => {
      const notes = [];
      if (m.idempotent) notes.push("idempotent");
      if (m.oneway) notes.push("oneway");
      if (m.timeout_ms) notes.push(`timeout ${m.timeout_ms} ms`);
      return el("li", {}, m.signature + (notes.length ? `  [${notes.join(", ")}]` : ""));
    }));
    select.replaceChildren(...methods.map((m) => el("option", { value: m.name }, m.name)));
  } catch (e) {
    list.replaceChildren(el("li", {}, `methods unknown: ${e.message}`));
    select.replaceChildren();
  }
}

async function refreshRules() {
  const name = state.selected;
  const list = $("rules");
  let rules;
  try {
    rules = await getJson(`/api/rules?interface=${encodeURIComponent(name)}`);
  } catch (e) {
    list.replaceChildren(el("li", {}, `rules unknown: ${e.message}`));
    return;
  }
  if (name !== state.selected) return;
  const items = [];
  for (const r of [...rules.overrides, ...rules.routes]) {
    const remove = el("button", { class: "remove-rule", type: "button" }, "remove");
    remove.addEventListener("click", () => act("/api/rule/remove", { interface: name, url: r.url }));
    items.push(el("li", { "data-url": r.url }, r.text, " ", remove));
  }
  if (rules.warning) items.push(el("li", {}, `warning: consumers refuse these overrides: ${rules.warning}`));
  for (const d of rules.documents) {
    items.push(el("li", {}, `document ${d.key}: ${d.error ? `refused (${d.error})` : `${d.rules.length} rules`}`));
    for (const r of d.rules) items.push(el("li", {}, `  ${r.text}`));
  }
  if (items.length === 0) items.push(el("li", {}, "none"));
  list.replaceChildren(...items);
}

// The part of a metrics label that names the interface: `group/interface:version`.
function interfaceOf(service) {
  const noGroup = service.includes("/") ? service.slice(service.indexOf("/") + 1) : service;
  return noGroup.split(":")[0];
}

async function sampleMetrics() {
  const s = current();
  if (!s) return;
  const online = s.providers.filter((p) => p.state === "online").slice(0, 24);
  await Promise.all(online.map(async (p) => {
    let m;
    try {
      m = await getJson(`/api/metrics?provider=${encodeURIComponent(p.address)}`);
    } catch (e) {
      return;
    }
    const sample = { t: m.at_ms, calls: 0, errors: 0, buckets: new Map() };
    for (const row of m.methods) {
      if (interfaceOf(row.service) !== s.interface) continue;
      sample.calls += row.calls;
      sample.errors += row.errors;
      for (const [le, n] of row.buckets) {
        const key = le === null ? Infinity : le;
        sample.buckets.set(key, (sample.buckets.get(key) || 0) + n);
      }
    }
    const h = state.history.get(p.address) || [];
    h.push(sample);
    while (h.length > HISTORY + 1) h.shift();
    state.history.set(p.address, h);
  }));
  drawMetrics();
}

function quantile(buckets, q) {
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) return null;
  for (const [le, n] of sorted) if (n >= q * total) return le;
  return null;
}

// Per-second points between successive samples.
function points(h) {
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const a = h[i - 1], b = h[i];
    const dt = (b.t - a.t) / 1000;
    const calls = b.calls - a.calls;
    if (dt <= 0 || calls < 0) continue;
    const delta = new Map();
    for (const [le, n] of b.buckets) delta.set(le, n - (a.buckets.get(le) || 0));
    out.push({
      rate: calls / dt,
      errors: calls > 0 ? (b.errors - a.errors) / calls : 0,
      p50: quantile(delta, 0.5),
      p99: quantile(delta, 0.99),
    });
  }
  return out;
}

function ms(bound) {
  if (bound === null || bound === undefined) return "-";
  if (bound === Infinity) return "> 10 s";
  return `≤ ${+(bound * 1000).toPrecision(3)} ms`;
}

function polyline(values, max, cls, w, h) {
  const n = values.length;
  const step = n > 1 ? w / (HISTORY - 1) : 0;
  const pts = values.map((v, i) => {
    const y = max > 0 ? h - (Math.min(v, max) / max) * (h - 4) - 2 : h - 2;
    return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("class", cls);
  return line;
}

function svg(w, h, lines) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  node.setAttribute("width", w);
  node.setAttribute("height", h);
  node.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const frame = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  for (const [k, v] of [["x", 0], ["y", 0], ["width", w], ["height", h], ["fill", "#fafbfc"], ["stroke", "#e1e5eb"]]) {
    frame.setAttribute(k, v);
  }
  node.append(frame, ...lines);
  return node;
}

function drawMetrics() {
  const s = current();
  if (!s) return;
  const charts = $("charts");
  charts.replaceChildren();
  for (const p of s.providers.filter((p) => p.state === "online")) {
    const pts = points(state.history.get(p.address) || []).slice(-HISTORY);
    const last = pts[pts.length - 1];
    const row = document.querySelector(`#providers tr[data-address="${CSS.escape(p.address)}"]`);
    if (row && last) {
      row.querySelector(".rate").textContent = last.rate.toFixed(1);
      row.querySelector(".errors").textContent = `${(last.errors * 100).toFixed(1)}%`;
      row.querySelector(".p50").textContent = ms(last.p50);
      row.querySelector(".p99").textContent = ms(last.p99);
    }
    const w = 300, h = 80;
    const rates = pts.map((x) => x.rate);
    const lat = (k) => pts.map((x) => (x[k] === null || x[k] === Infinity ? 0 : x[k] * 1000));
    const maxRate = Math.max(1, ...rates);
    const maxLat = Math.max(0.001, ...lat("p50"), ...lat("p99"));
    const legend = el("div", { class: "legend" },
      el("span", { class: "rate" }, `calls/s ${last ? last.rate.toFixed(1) : "-"}`),
      el("span", { class: "errors" }, `errors ${last ? (last.errors * 100).toFixed(1) + "%" : "-"}`),
      el("span", { class: "p50" }, `p50 ${last ? ms(last.p50) : "-"}`),
      el("span", { class: "p99" }, `p99 ${last ? ms(last.p99) : "-"}`));
    charts.append(el("div", { class: "chart", "data-address": p.address },
      el("h4", {}, p.address),
      svg(w, h, [polyline(rates, maxRate, "line-rate", w, h),
        polyline(pts.map((x) => x.errors * maxRate), maxRate, "line-errors", w, h)]),
      svg(w, h, [polyline(lat("p50"), maxLat, "line-p50", w, h),
        polyline(lat("p99"), maxLat, "line-p99", w, h)]),
      legend));
  }
}

function wireForms() {
  const token = $("token");
  token.value = sessionStorage.getItem("admin-token") || "";
  token.addEventListener("change", () => sessionStorage.setItem("admin-token", token.value));

  $("override-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("override-timeout").value.trim();
    if (!/^[0-9]+$/.test(t) || Number(t) === 0) {
      say(`the timeout must be a whole number of milliseconds above 0, not "${t}"`, false);
      return;
    }
    act("/api/override", {
      interface: state.selected,
      settings: `timeout=${t}`,
      address: $("override-address").value.trim() || null,
    });
  });

  $("route-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const rule = $("route-rule").value.trim();
    if (!rule.includes("=>")) {
      say(`a condition rule has the form "when => then", e.g. "=> host != 10.0.0.5"; got "${rule}"`, false);
      return;
    }
    act("/api/route", { interface: state.selected, rule, force: $("route-force").checked });
  });

  $("call-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("call-result");
    const args = $("call-args").value;
    try {
      if (!Array.isArray(JSON.parse(args))) throw new Error("not an array");
    } catch (e) {
      out.textContent = "";
      say(`arguments must be a JSON array, one element per parameter, e.g. ["ann"] (${e.message})`, false);
      return;
    }
    const s = current();
    const p = s && s.providers.find((x) => x.state === "online");
    out.textContent = "calling...";
    try {
      const body = await post("/api/invoke", {
        interface: state.selected,
        method: $("call-method").value,
        args,
        version: p ? p.version : null,
        group: p ? p.group : null,
      });
      out.textContent = (body.business_error ? "business error: " : "") + JSON.stringify(body.result, null, 2);
      out.className = body.business_error ? "business-error" : "value";
      say("call answered", true);
    } catch (e) {
      out.textContent = `failed: ${e.message}`;
      out.className = "failed";
      say(e.message, false);
    }
  });
}

async function start() {
  wireForms();
  try {
    const info = await getJson("/api/info");
    state.writable = info.writable;
    $("registry").textContent = `registry ${info.registry}`;
    $("mode").textContent = info.writable ? "changes need the admin token" : "read-only";
    $("token-box").hidden = !info.writable;
  } catch (e) {
    say(`the console does not answer: ${e.message}`, false);
  }
  await refreshServices();
  setInterval(refreshServices, SERVICES_EVERY);
  setInterval(() => { sampleMetrics(); }, METRICS_EVERY);
  setInterval(() => { if (state.selected) refreshRules(); }, SERVICES_EVERY * 2);
}

document.addEventListener("DOMContentLoaded", start);
