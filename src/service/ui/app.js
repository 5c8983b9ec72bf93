// app.js - the dashboard: polls the service's JSON and metrics endpoints
// every two seconds and redraws. Every value from the network goes into
// the page as text (textContent), never as HTML, so a node named
// "<script>" stays a name.
"use strict";

const POLL_MS = 2000;
const MAX_ROWS = 500; // table rows drawn; the rest are counted
const BIG_CLUSTER = 2000; // above this many nodes the list is fetched every 5th round
const METRIC = "cluster_scheduler_";

const state = {
  round: 0,
  nodes: [],
  prev: null, // counters of the previous poll, for rates
  token: sessionStorage.getItem("cs-token") || "",
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function num(v, digits) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  return v.toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 1 : digits });
}

function ago(epoch) {
  if (typeof epoch !== "number") return "–";
  const s = Math.max(0, Date.now() / 1000 - epoch);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

class HttpError extends Error {
  constructor(status, text) {
    super("HTTP " + status + (text ? ": " + text : ""));
    this.status = status;
  }
}

async function get(path, asText) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401 || r.status === 403) $("token-box").hidden = false;
  if (!r.ok) {
    let why = "";
    try {
      const j = await r.json();
      if (j && j.error) why = j.error.field + ": " + j.error.message;
    } catch (e) {
      /* not JSON */
    }
    throw new HttpError(r.status, why);
  }
  return asText ? r.text() : r.json();
}

// Prometheus text -> {family: summed value}; histogram series keep their
// suffixed names (_sum, _count), buckets are skipped.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m || m[1].endsWith("_bucket")) continue;
    const v = parseFloat(m[3]);
    if (isFinite(v)) out[m[1]] = (out[m[1]] || 0) + v;
  }
  return out;
}

function metric(m, name) {
  const v = m[METRIC + name];
  return typeof v === "number" ? v : NaN;
}

// A bar: capacity is the track; reserved fills the upper band, the use
// the node reported the lower band. data-* attributes carry the figures.
function bar(kind, capacity, reserved, usedPct, unit) {
  const cap = typeof capacity === "number" ? capacity : 0;
  const res = typeof reserved === "number" ? reserved : 0;
  const resPct = cap > 0 ? Math.min(100, (res / cap) * 100) : 0;
  const used = typeof usedPct === "number" ? Math.min(100, Math.max(0, usedPct)) : null;
  const b = el("div", {
    class: "bar",
    "data-kind": kind,
    "data-capacity": String(cap),
    "data-reserved": String(res),
    "data-used-pct": used === null ? "" : String(used),
    title: kind + ": " + num(res) + " of " + num(cap) + " " + unit + " reserved" +
      (used === null ? "" : ", " + num(used) + "% used (reported)"),
  });
  b.append(el("div", { class: "reserved", style: "width:" + resPct.toFixed(2) + "%" }));
  if (used !== null) b.append(el("div", { class: "used", style: "width:" + used.toFixed(2) + "%" }));
  return b;
}

function barCell(kind, capacity, reserved, free, usedPct, unit) {
  const text = num(reserved) + " / " + num(capacity) + " reserved" +
    (typeof usedPct === "number" ? " · " + num(usedPct, 0) + "% used" : "") +
    " · " + num(free) + " free";
  return el("td", {}, bar(kind, capacity, reserved, usedPct, unit), el("div", { class: "bar-text" }, text));
}

function runtimes(n) {
  const v = n.virtualization || n.technology;
  return Array.isArray(v) ? v.join(", ") : typeof v === "string" ? v : "";
}

function nodeRow(n) {
  const free = n.free || {};
  const reserved = n.reserved || {};
  const active = n.active === true;
  const tr = el("tr", { class: active ? "active" : "inactive", "data-node-id": n._id });
  tr.append(
    el("td", {}, n._id),
    el("td", {}, n.host || ""),
    el("td", {}, el("span", { class: "badge " + (active ? "active" : "inactive") }, active ? "active" : "inactive")),
    el("td", {}, n.architecture || ""),
    el("td", {}, runtimes(n)),
    barCell("cpu", n.vcpus, reserved.vcpus, free.vcpus, n.cpu_percent, "vCPU"),
    barCell("memory", n.memory, reserved.memory, free.memory, n.memory_percent, "MB"),
    el("td", {}, typeof n.vgpus === "number" && n.vgpus > 0 ? num(free.vgpus, 0) + " / " + num(n.vgpus, 0) + " free" : "–"),
    el("td", {}, num(n.reservations, 0)),
    el("td", { title: typeof n.last_report === "number" ? new Date(n.last_report * 1000).toISOString() : "" }, ago(n.last_report)),
  );
  return tr;
}

function renderNodes() {
  const q = $("filter").value.trim().toLowerCase();
  const all = state.nodes.slice().sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0));
  const shown = q ? all.filter((n) => [n._id, n.host, n.architecture].some((s) => typeof s === "string" && s.toLowerCase().includes(q))) : all;
  const tbody = $("nodes").tBodies[0];
  const rows = shown.slice(0, MAX_ROWS).map(nodeRow);
  tbody.replaceChildren(...rows);
  $("nodes-empty").hidden = state.nodes.length > 0;
  let note = state.nodes.length + " nodes";
  if (shown.length !== state.nodes.length) note += ", " + shown.length + " match";
  if (shown.length > MAX_ROWS) note += ", first " + MAX_ROWS + " shown";
  $("nodes-note").textContent = "(" + note + ")";

  // Cluster totals over the active nodes.
  let cap = { cpu: 0, mem: 0 }, res = { cpu: 0, mem: 0 }, usedCpu = 0, usedMem = 0, nUsed = 0, active = 0;
  for (const n of state.nodes) {
    if (n.active !== true) continue;
    active++;
    cap.cpu += n.vcpus || 0;
    cap.mem += n.memory || 0;
    res.cpu += (n.reserved && n.reserved.vcpus) || 0;
    res.mem += (n.reserved && n.reserved.memory) || 0;
    if (typeof n.cpu_percent === "number") { usedCpu += (n.vcpus || 0) * n.cpu_percent / 100; nUsed++; }
    if (typeof n.memory_percent === "number") usedMem += (n.memory || 0) * n.memory_percent / 100;
  }
  const pct = (part, whole) => (whole > 0 ? (part / whole) * 100 : 0);
  $("total-cpu").replaceChildren(bar("cpu-total", cap.cpu, res.cpu, nUsed ? pct(usedCpu, cap.cpu) : null, "vCPU"),
    el("div", { class: "bar-text" }, num(res.cpu) + " of " + num(cap.cpu) + " vCPU reserved" + (nUsed ? " · " + num(pct(usedCpu, cap.cpu), 0) + "% used" : "")));
  $("total-mem").replaceChildren(bar("memory-total", cap.mem, res.mem, nUsed ? pct(usedMem, cap.mem) : null, "MB"),
    el("div", { class: "bar-text" }, num(res.mem, 0) + " of " + num(cap.mem, 0) + " MB reserved" + (nUsed ? " · " + num(pct(usedMem, cap.mem), 0) + "% used" : "")));
  $("t-nodes").textContent = active + " / " + state.nodes.length;
}

function renderMetrics(m) {
  $("t-queue").textContent = num(metric(m, "queue_depth"), 0);
  $("t-outbox").textContent = num(metric(m, "outbox_depth"), 0);
  $("t-reservations").textContent = num(metric(m, "reservations"), 0);
  const now = performance.now() / 1000;
  const cur = {
    t: now,
    received: metric(m, "jobs_received_total"),
    placed: metric(m, "jobs_placed_total"),
    unsched: metric(m, "jobs_unschedulable_total"),
    dsum: metric(m, "decision_seconds_sum"),
    dcount: metric(m, "decision_seconds_count"),
  };
  const p = state.prev;
  if (p && cur.t > p.t) {
    const dt = cur.t - p.t;
    const rate = (k) => Math.max(0, (cur[k] - p[k]) / dt);
    $("t-rate-received").textContent = num(rate("received"));
    $("t-rate-placed").textContent = num(rate("placed"));
    $("t-rate-unsched").textContent = num(rate("unsched"));
  }
  // Mean over the last interval, or since start before the first decision of it.
  let dn = cur.dcount, ds = cur.dsum;
  if (p && cur.dcount > p.dcount) { dn = cur.dcount - p.dcount; ds = cur.dsum - p.dsum; }
  $("t-decision").textContent = dn > 0 ? num((ds / dn) * 1000, 2) + " ms" : "–";
  state.prev = cur;
}

function decisionItem(d) {
  const placed = d.state === "placed";
  const li = el("li", { "data-job-id": d.job_id, "data-instance": String(d.instance), "data-state": d.state });
  li.append(el("div", { class: "head" },
    el("span", { class: "time" }, clock(d.at)),
    el("span", { class: "job" }, d.job_id + " / " + d.instance),
    el("span", { class: "badge " + (placed ? "placed" : "unschedulable") }, placed ? "placed on " + d.node_id : "unschedulable"),
    el("span", { class: "msg" }, d.message || ""),
    el("span", { class: "time" }, typeof d.decision_ms === "number" ? num(d.decision_ms, 3) + " ms" : ""),
  ));
  const details = el("div", { class: "details" });
  if (Array.isArray(d.candidates) && d.candidates.length) {
    const ol = el("ol", { class: "cands", title: "prioritized list, best first (score 0..100)" });
    d.candidates.forEach((c, i) => ol.append(el("li", { class: placed && c.node_id === d.node_id ? "chosen" : "", "data-node-id": c.node_id },
      (i + 1) + ". " + c.node_id + " (" + num(c.score, 2) + ")")));
    const more = d.qualified > d.candidates.length ? " of " + d.qualified + " qualified" : "";
    details.append(el("div", { class: "detail" }, el("span", { class: "k" }, "prioritized" + more), ol));
  }
  const reasons = d.reasons && typeof d.reasons === "object" ? Object.entries(d.reasons) : [];
  if (reasons.length) {
    const ul = el("ul", { class: "reasons", title: "nodes left out, by the first filter that rejected them" });
    reasons.sort((a, b) => b[1] - a[1]).forEach(([k, v]) => ul.append(el("li", { "data-reason": k }, k.replace(/_/g, " ") + " × " + v)));
    details.append(el("div", { class: "detail" }, el("span", { class: "k" }, "left out"), ul));
  }
  if (details.childElementCount) li.append(details);
  return li;
}

function renderDecisions(doc) {
  const list = Array.isArray(doc.decisions) ? doc.decisions : [];
  $("decisions").replaceChildren(...list.map(decisionItem));
  $("decisions-empty").hidden = list.length > 0 || doc.decides === false;
  const role = $("decisions-role");
  if (doc.decides === false) {
    role.hidden = false;
    role.textContent = doc.note || "This process makes no decisions.";
  } else {
    role.hidden = true;
  }
  $("decisions-note").textContent = doc.recorded !== undefined ? "(" + doc.recorded + " since start, last " + list.length + " shown)" : "";
}

function setConn(ok, text) {
  const c = $("conn");
  c.dataset.state = ok ? "ok" : "error";
  c.textContent = text;
}

async function poll() {
  state.round++;
  const wantNodes = state.nodes.length <= BIG_CLUSTER || state.round % 5 === 1;
  try {
    const [nodes, metrics, decisions] = await Promise.all([
      wantNodes ? get("/api/v1/nodes") : Promise.resolve(null),
      get("/metrics", true),
      get("/api/v1/decisions"),
    ]);
    if (nodes) state.nodes = Array.isArray(nodes.nodes) ? nodes.nodes : [];
    renderNodes();
    renderMetrics(parseMetrics(metrics));
    renderDecisions(decisions);
    setConn(true, "live");
    const r = $("refreshed");
    r.textContent = "updated " + new Date().toLocaleTimeString("en-GB", { hour12: false });
    r.dataset.round = String(state.round);
  } catch (e) {
    setConn(false, "cannot reach the service: " + e.message);
  }
  setTimeout(poll, POLL_MS);
}

$("filter").addEventListener("input", renderNodes);
$("token").value = state.token;
$("token").addEventListener("change", (ev) => {
  state.token = ev.target.value.trim();
  sessionStorage.setItem("cs-token", state.token);
});
poll();
