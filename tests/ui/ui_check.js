// ui_check.js - drives the dashboard (GET /ui) of a running service in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// and checks what it shows, as an operator would see it:
//
//   1. one table row per registered node, with CPU and memory bars whose
//      capacity, reservation and reported use match GET /api/v1/nodes;
//   2. no decision yet;
//   3. a job submitted now (POST /api/v1/jobs) appears among the last
//      decisions, placed, with its prioritized list, without reloading the
//      page (the page polls by itself), and the chosen node's bar shows
//      the reservation;
//   4. a job that fits nowhere appears as unschedulable with its reasons;
//   5. no error in the page's console; a full-page screenshot is kept.
//
// Usage: node ui_check.js --base http://127.0.0.1:PORT --screenshot FILE
//        [--chromium /usr/bin/chromium] [--timeout-ms 20000]
// Prints a JSON summary on stdout; exits 1 with a message on any failure.
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

function args() {
  const a = { base: null, screenshot: null, chromium: "/usr/bin/chromium", timeoutMs: 20000 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i], val = v[i + 1];
    if (k === "--base") a.base = val;
    else if (k === "--screenshot") a.screenshot = val;
    else if (k === "--chromium") a.chromium = val;
    else if (k === "--timeout-ms") a.timeoutMs = Number(val);
    else throw new Error("unknown argument " + k);
    i++;
  }
  if (!a.base || !a.screenshot) throw new Error("--base and --screenshot are required");
  return a;
}

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
}

// A CSS width such as "37.5%" against a percentage (drawn to 0.01).
function pct(width, want) {
  return typeof width === "string" && width.endsWith("%") && Math.abs(parseFloat(width) - want) <= 0.006;
}

function near(a, b) {
  return Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(b));
}

async function api(base, method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// What the page shows for one node row.
async function readRow(page, id) {
  return page.$eval(`#nodes tbody tr[data-node-id="${id}"]`, (tr) => {
    const bar = (kind) => {
      const b = tr.querySelector(`.bar[data-kind="${kind}"]`);
      if (!b) return null;
      const res = b.querySelector(".reserved");
      const used = b.querySelector(".used");
      return {
        capacity: Number(b.dataset.capacity),
        reserved: Number(b.dataset.reserved),
        usedPct: b.dataset.usedPct === "" ? null : Number(b.dataset.usedPct),
        reservedWidth: res ? res.style.width : null,
        usedWidth: used ? used.style.width : null,
        text: b.nextElementSibling ? b.nextElementSibling.textContent : "",
      };
    };
    return {
      cells: Array.from(tr.cells).map((c) => c.textContent),
      active: tr.classList.contains("active"),
      cpu: bar("cpu"),
      memory: bar("memory"),
    };
  });
}

async function main() {
  const a = args();
  const launchArgs = ["--disable-gpu", "--disable-dev-shm-usage"];
  // Chromium refuses to run as root with its sandbox on (CI runs as root).
  if (process.getuid && process.getuid() === 0) launchArgs.push("--no-sandbox");
  const browser = await chromium.launch({ executablePath: a.chromium, headless: true, args: launchArgs });
  const problems = [];
  const summary = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(a.timeoutMs);
    page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));

    const nodes = (await api(a.base, "GET", "/api/v1/nodes")).json.nodes;
    check(nodes.length >= 2, "the test needs at least two registered nodes, got " + nodes.length);
    summary.nodes = nodes.map((n) => n._id).sort();

    const resp = await page.goto(a.base + "/ui", { waitUntil: "load" });
    check(resp.status() === 200, "GET /ui answered " + resp.status());
    summary.title = await page.title();

    // 1. a row per node, bars as the API says
    await page.waitForFunction((n) => document.querySelectorAll("#nodes tbody tr[data-node-id]").length === n, nodes.length);
    await page.waitForSelector('#conn[data-state="ok"]');
    summary.rows = {};
    for (const n of nodes) {
      const row = await readRow(page, n._id);
      check(row.cells[0] === n._id, `row ${n._id}: first cell ${row.cells[0]}`);
      check(row.cells[1] === (n.host || ""), `row ${n._id}: host ${row.cells[1]} != ${n.host}`);
      check(row.active === n.active, `row ${n._id}: active ${row.active} != ${n.active}`);
      check(row.cpu && near(row.cpu.capacity, n.vcpus), `row ${n._id}: cpu capacity ${JSON.stringify(row.cpu)} != ${n.vcpus}`);
      check(row.memory && near(row.memory.capacity, n.memory), `row ${n._id}: memory capacity ${JSON.stringify(row.memory)} != ${n.memory}`);
      check(near(row.cpu.reserved, n.reserved.vcpus), `row ${n._id}: cpu reserved ${row.cpu.reserved} != ${n.reserved.vcpus}`);
      if (typeof n.cpu_percent === "number") {
        check(near(row.cpu.usedPct, n.cpu_percent), `row ${n._id}: cpu used ${row.cpu.usedPct} != ${n.cpu_percent}`);
        check(pct(row.cpu.usedWidth, n.cpu_percent), `row ${n._id}: cpu used bar width ${row.cpu.usedWidth}`);
      } else {
        check(row.cpu.usedPct === null && row.cpu.usedWidth === null, `row ${n._id}: a use bar without a reported use`);
      }
      summary.rows[n._id] = row;
    }

    // 2. no decision yet
    check((await page.$$("#decisions > li")).length === 0, "decisions listed before any job");
    check(await page.isVisible("#decisions-empty"), "the empty-decisions note is not shown");

    // 3. a job placed while the page is open appears by itself
    const big = nodes.reduce((x, y) => (y.vcpus > x.vcpus ? y : x));
    const job = { _id: "ui-job-1", vcpus: 1.5, memory: 256, virtualization: "container" };
    const sub = await api(a.base, "POST", "/api/v1/jobs", job);
    check(sub.status === 202, "POST /api/v1/jobs answered " + sub.status);
    const item = '#decisions > li[data-job-id="ui-job-1"]';
    await page.waitForSelector(item);
    const dec = await page.$eval(item, (li) => ({
      state: li.dataset.state,
      text: li.textContent,
      candidates: Array.from(li.querySelectorAll(".cands li")).map((c) => ({ id: c.dataset.nodeId, chosen: c.classList.contains("chosen"), text: c.textContent })),
    }));
    const status = (await api(a.base, "GET", "/api/v1/jobs/ui-job-1/0")).json;
    check(dec.state === "placed" && status.state === "placed", `decision ${JSON.stringify(dec)}, job ${JSON.stringify(status)}`);
    check(dec.text.includes("placed on " + status.node_id), "decision does not name the node: " + dec.text);
    check(dec.candidates.length === status.candidates.length, `prioritized list ${JSON.stringify(dec.candidates)} vs ${JSON.stringify(status.candidates)}`);
    dec.candidates.forEach((c, i) => check(c.id === status.candidates[i].node_id, `candidate ${i}: ${c.id} != ${status.candidates[i].node_id}`));
    check(dec.candidates.filter((c) => c.chosen).map((c) => c.id).join() === status.node_id, "the chosen candidate is not marked");
    summary.placed = { node: status.node_id, candidates: dec.candidates.map((c) => c.text), biggest: big._id };
    // the chosen node's CPU bar now carries the reservation
    await page.waitForFunction(([id, v]) => {
      const b = document.querySelector(`#nodes tbody tr[data-node-id="${id}"] .bar[data-kind="cpu"]`);
      return b && Math.abs(Number(b.dataset.reserved) - v) < 1e-6;
    }, [status.node_id, job.vcpus]);
    const after = await readRow(page, status.node_id);
    const cap = summary.rows[status.node_id].cpu.capacity;
    check(pct(after.cpu.reservedWidth, (job.vcpus / cap) * 100), "reserved bar width " + after.cpu.reservedWidth);
    check(after.cells[8] === "1", "placed count " + after.cells[8]);
    summary.reservedBar = after.cpu;

    // 4. an unschedulable job shows why
    const no = { _id: "ui-job-2", vcpus: 1000, virtualization: "container" };
    check((await api(a.base, "POST", "/api/v1/jobs", no)).status === 202, "second job not accepted");
    const item2 = '#decisions > li[data-job-id="ui-job-2"]';
    await page.waitForSelector(item2);
    const dec2 = await page.$eval(item2, (li) => ({
      state: li.dataset.state,
      text: li.textContent,
      reasons: Array.from(li.querySelectorAll(".reasons li")).map((r) => r.dataset.reason),
    }));
    check(dec2.state === "unschedulable", "second job state " + dec2.state);
    check(dec2.reasons.includes("insufficient_cpu"), "reasons " + JSON.stringify(dec2.reasons));
    // newest first
    const order = await page.$$eval("#decisions > li", (lis) => lis.map((l) => l.dataset.jobId));
    check(order[0] === "ui-job-2" && order[1] === "ui-job-1", "decision order " + order);
    summary.unschedulable = dec2;

    // tiles: the queue is empty again and the counters moved
    await page.waitForFunction(() => document.getElementById("t-queue").textContent === "0");
    summary.tiles = await page.$$eval(".tile", (ts) => Object.fromEntries(ts.map((t) => [t.querySelector(".label").textContent, t.querySelector(".value").textContent])));
    check(summary.tiles["nodes active"] === nodes.filter((n) => n.active).length + " / " + nodes.length, "nodes tile " + summary.tiles["nodes active"]);

    fs.mkdirSync(path.dirname(path.resolve(a.screenshot)), { recursive: true });
    await page.screenshot({ path: a.screenshot, fullPage: true });
    summary.screenshot = path.resolve(a.screenshot);
    check(problems.length === 0, "problems in the page:\n" + problems.join("\n"));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(summary) + "\n");
}

main().catch((e) => {
  process.stderr.write((e && e.stack) || String(e));
  process.stderr.write("\n");
  process.exit(1);
});
