"""The dashboard's stylesheet and script, inline (no CDN, nothing to vendor): SVG charts drawn by hand."""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}
main{padding:8px 16px;max-width:1100px}h1{font-size:20px}h2{font-size:16px;margin-top:20px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e3e6ea;
text-align:left;vertical-align:top}th{background:#eef0f3}code{font-size:12px}
.state{font-size:13px;padding:2px 8px;border-radius:10px;background:#dde3ea}
.succeeded,.ok{color:#176b2c}.failed{color:#b00020}.running{color:#0b5cad}.cancelled,.skipped{color:#7a6400}
.bar{display:inline-block;width:90px;height:8px;background:#e3e6ea;border-radius:4px;vertical-align:middle}
.bar i{display:block;height:8px;background:#3b7ddd;border-radius:4px}
.muted{color:#6b7380;font-size:12px}pre{white-space:pre-wrap;background:#fff;padding:8px;border:1px solid #e3e6ea}
.error{border-left:4px solid #b00020;background:#fff;padding:4px 8px;margin:8px 0}
.pre{white-space:pre-line}svg text{font:11px system-ui,sans-serif;fill:#1d2330}button{padding:4px 12px}
"""

SCRIPT = r"""
"use strict";
const $ = (s) => document.querySelector(s);
const SVG = "http://www.w3.org/2000/svg";
const TYPES = ["job.submitted", "step.started", "step.progress", "step.succeeded", "step.failed",
  "step.skipped", "job.cancel_requested", "job.succeeded", "job.failed", "job.cancelled"];
const COLORS = ["#3b7ddd", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a"];

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function score(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(2); }
function age(t) {
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return Math.round(s) + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  if (s < 86400) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}
function bar(done, total) {
  const b = el("span", null, "bar"), i = el("i");
  i.style.width = (total ? Math.min(100, 100 * done / total) : 0) + "%";
  b.appendChild(i);
  return b;
}
async function getJSON(url) {
  const r = await fetch(url, {credentials: "same-origin"});
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}
function listen(url, onEvent) {
  const es = new EventSource(url);
  for (const t of TYPES) es.addEventListener(t, (m) => onEvent(JSON.parse(m.data), m.lastEventId, es));
  return es;
}

/* jobs list */
async function loadJobs() {
  const state = $("#state-filter").value;
  const rows = await getJSON("/api/jobs" + (state ? "?state=" + encodeURIComponent(state) : ""));
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const j of rows) {
    const tr = el("tr"), link = el("a", j.job_id.slice(0, 12));
    link.href = "/jobs/" + encodeURIComponent(j.job_id);
    const id = el("td"); id.appendChild(link); tr.appendChild(id);
    tr.appendChild(el("td", j.state, j.state));
    tr.appendChild(el("td", j.strategy));
    const p = el("td"); p.appendChild(bar(j.steps_done, j.steps_total));
    p.appendChild(document.createTextNode(" " + j.steps_done + "/" + j.steps_total)); tr.appendChild(p);
    tr.appendChild(el("td", score(j.best_score)));
    tr.appendChild(el("td", age(j.submitted_at)));
    body.appendChild(tr);
  }
}
function jobsPage() {
  $("#state-filter").onchange = loadJobs;
  loadJobs();
  let pending = null;
  listen("/api/events?after=$", () => {
    if (!pending) pending = setTimeout(() => { pending = null; loadJobs(); }, 300);
  });
}

/* one job */
const loss = new Map();  // step index -> [[x, loss], ...]
let eventCount = 0;
let heldOutPolls = 0;

function stepRow(index) {
  let row = document.getElementById("step-" + index);
  if (row) return row;
  row = el("tr"); row.id = "step-" + index; row.dataset.index = index;
  for (const name of ["step", "strategy", "worker", "attempt", "outcome", "duration", "score", "progress"]) {
    const td = el("td"); td.className = "c-" + name; row.appendChild(td);
  }
  row.querySelector(".c-step").textContent = index;
  const body = $("#timeline tbody");
  const after = [...body.children].find((r) => Number(r.dataset.index) > index);
  body.insertBefore(row, after || null);
  return row;
}
function setCell(row, name, value, cls) {
  const td = row.querySelector(".c-" + name);
  td.textContent = value === undefined || value === null ? "" : String(value);
  if (cls !== undefined) td.className = "c-" + name + " " + cls;
}
function progressText(d) {
  if (d.shards_total !== undefined) return (d.phase || "shards") + " " + d.shards_done + "/" + d.shards_total;
  if (d.total_steps !== undefined && d.step !== undefined) {
    let t = "fine-tune " + d.step + "/" + d.total_steps;
    if (d.loss !== undefined) t += "  loss " + Number(d.loss).toFixed(3);
    return t;
  }
  return Object.entries(d).filter(([k]) => k !== "model" && k !== "usage").map(([k, v]) => k + "=" + v).join(", ");
}
function onProgress(ev) {
  const row = stepRow(ev.step_index), td = row.querySelector(".c-progress"), d = ev.detail || {};
  td.replaceChildren();
  const done = d.shards_total !== undefined ? d.shards_done : d.step;
  const total = d.shards_total !== undefined ? d.shards_total : d.total_steps;
  if (total !== undefined) { td.appendChild(bar(done, total)); td.appendChild(document.createTextNode(" ")); }
  td.appendChild(document.createTextNode(progressText(d)));
  if (d.loss !== undefined && d.step !== undefined) {
    if (!loss.has(ev.step_index)) loss.set(ev.step_index, []);
    loss.get(ev.step_index).push([Number(d.step), Number(d.loss)]);
    drawLoss();
  }
}
function drawLoss() {
  const W = 640, H = 220, P = 40, series = [...loss.entries()];
  const pts = series.flatMap(([, s]) => s);
  if (!pts.length) return;
  $("#loss-section").hidden = false;
  const maxX = Math.max(...pts.map((p) => p[0]), 1), maxY = Math.max(...pts.map((p) => p[1])), minY = 0;
  const x = (v) => P + (W - 2 * P) * v / maxX, y = (v) => H - P + (H - 2 * P) * -(v - minY) / ((maxY - minY) || 1);
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "loss-svg", role: "img"});
  root.appendChild(svg("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#999"}));
  root.appendChild(svg("line", {x1: P, y1: P, x2: P, y2: H - P, stroke: "#999"}));
  root.appendChild(svg("text", {x: 4, y: P + 4}, maxY.toFixed(2)));
  root.appendChild(svg("text", {x: 4, y: H - P}, "0"));
  root.appendChild(svg("text", {x: W - P - 90, y: H - P + 16}, "training step " + maxX));
  series.forEach(([index, s], n) => {
    const color = COLORS[n % COLORS.length];
    root.appendChild(svg("polyline", {points: s.map((p) => x(p[0]) + "," + y(p[1])).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, class: "loss-line"}));
    root.appendChild(svg("text", {x: W - P - 90, y: P + 14 * n, fill: color}, "job step " + index));
  });
  $("#loss-chart").replaceChildren(root);
}
function showError(ev) {
  const box = el("div", null, "error");
  box.appendChild(el("strong", "step " + ev.step_index + " (" + (ev.strategy || "baseline") + "): "));
  box.appendChild(document.createTextNode(ev.error.type + ": " + ev.error.message));
  if (ev.error.traceback) box.appendChild(el("pre", ev.error.traceback));
  $("#errors").appendChild(box);
}
function onJobEvent(ev, id, es) {
  eventCount += 1;
  $("#event-count").textContent = eventCount;
  $("#cursor").textContent = id;
  if (ev.type === "job.submitted") {
    $("#job-summary").textContent = "strategy '" + ev.strategy + "', " + ev.steps_total + " steps, seed " + ev.detail.seed;
  } else if (ev.type === "step.started") {
    const row = stepRow(ev.step_index);
    setCell(row, "strategy", ev.strategy || "baseline");
    setCell(row, "worker", ev.worker);
    setCell(row, "attempt", ev.attempt);
    setCell(row, "outcome", "running", "running");
    setState("running");
  } else if (ev.type === "step.progress") {
    onProgress(ev);
  } else if (ev.type.startsWith("step.")) {
    const row = stepRow(ev.step_index), outcome = ev.type.slice(5);
    setCell(row, "strategy", ev.strategy || "baseline");
    if (ev.worker) setCell(row, "worker", ev.worker);
    setCell(row, "outcome", outcome, outcome);
    setCell(row, "duration", ev.duration_s === null ? "" : ev.duration_s.toFixed(2) + " s");
    setCell(row, "score", score(ev.score));
    if (ev.error) showError(ev);
  } else if (ev.type === "job.cancel_requested") {
    setState("cancelling");
  } else {
    setState(ev.type.slice(4));
    es.close();
    loadResult(10);
  }
}
function setState(state) {
  const s = $("#job-state");
  s.textContent = state;
  s.className = "state " + state;
  $("#cancel").disabled = ["succeeded", "failed", "cancelled"].includes(state);
}
function drawScores(cands, best, heldOut) {
  const ordered = [...cands].sort((a, b) => a.step_index - b.step_index);
  const test = (c) => heldOut ? heldOut.scores[String(c.step_index)] : undefined;
  const W = 640, bar = heldOut ? 11 : 18, row = heldOut ? 30 : 26, P = 170, H = row * ordered.length + 30;
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "score-svg", role: "img"});
  ordered.forEach((c, i) => {
    const y = 10 + i * row, w = (W - P - 60) * (c.score || 0) / 100;
    root.appendChild(svg("text", {x: 4, y: y + 12}, (c.step_index + ". " + (c.strategy || "baseline")).slice(0, 26)));
    root.appendChild(svg("rect", {x: P, y: y, width: Math.max(w, 1), height: bar, class: "score-bar",
      fill: c.step_index === best ? "#2b8a3e" : "#3b7ddd", "data-score": score(c.score)}));
    root.appendChild(svg("text", {x: P + w + 6, y: y + 10}, score(c.score)));
    if (heldOut) {
      const t = test(c), tw = (W - P - 60) * (t || 0) / 100;
      root.appendChild(svg("rect", {x: P, y: y + bar + 1, width: Math.max(tw, 1), height: bar, class: "test-bar",
        fill: "#e8590c", "data-score": score(t)}));
      root.appendChild(svg("text", {x: P + tw + 6, y: y + 2 * bar}, score(t)));
    }
  });
  const legend = heldOut ? "validation (blue, best green) and " + heldOut.split + " (orange) score, %"
    : "validation score (%), best in green";
  root.appendChild(svg("text", {x: P, y: H - 4}, legend));
  $("#score-chart").replaceChildren(root);
}
function showProgram(predictors) {
  const box = $("#best-program");
  box.replaceChildren();
  for (const p of predictors) {
    box.appendChild(el("h3", p.name + (p.model ? "  (" + p.model + ")" : "")));
    box.appendChild(el("pre", p.instructions || "(no instructions)"));
    box.appendChild(el("p", p.demos.length + " demos", "muted"));
    for (const d of p.demos.slice(0, 8)) {
      box.appendChild(el("pre", Object.entries(d).map(([k, v]) => k + ": " + JSON.stringify(v)).join("\n")));
    }
  }
}
async function loadResult(tries) {
  const job = await getJSON("/api/jobs/" + encodeURIComponent(BOOT.job_id));
  if (!job.result) { if (tries > 0) setTimeout(() => loadResult(tries - 1), 500); return; }
  setState(job.state);
  $("#result-section").hidden = false;
  const heldOut = job.result.held_out[0];
  if (heldOut && !document.getElementById("test-head")) {
    const th = el("th", heldOut.split + " score"); th.id = "test-head";
    $("#candidates thead tr").insertBefore(th, $("#candidates thead tr").lastChild);
  }
  const body = $("#candidates tbody");
  body.replaceChildren();
  for (const c of job.result.candidates) {
    const tr = el("tr");
    tr.appendChild(el("td", c.rank + (c.step_index === job.result.best_step_index ? " *" : "")));
    tr.appendChild(el("td", c.strategy || "(baseline)"));
    tr.appendChild(el("td", score(c.score)));
    if (heldOut) tr.appendChild(el("td", score(heldOut.scores[String(c.step_index)])));
    tr.appendChild(el("td", c.step_index));
    body.appendChild(tr);
  }
  drawScores(job.result.candidates, job.result.best_step_index, heldOut);
  // Held-out scores come after the job ended (btq evaluate, btq demo): look again for a while.
  if (!heldOut && heldOutPolls < 120) { heldOutPolls += 1; setTimeout(() => loadResult(0), 5000); }
  showProgram(job.result.best_program);
  showCost(job.steps, job.result.usage);
}
function showCost(steps, total) {
  const rows = steps.filter((s) => s.usage).map((s) => [s.index + " " + (s.strategy || "(baseline)"), s.usage]);
  if (total) rows.push(["total", total]);
  if (!rows.length) return;
  $("#cost-section").hidden = false;
  const body = $("#cost tbody");
  body.replaceChildren();
  for (const [label, u] of rows) {
    const tr = el("tr");
    const saved = u.cached_calls ? u.cached_calls + " calls, " + u.cached_tokens + " tokens" : "-";
    for (const v of [label, u.calls, u.prompt_tokens, u.completion_tokens, u.cost, saved]) tr.appendChild(el("td", String(v)));
    body.appendChild(tr);
  }
}
async function cancelJob() {
  const r = await fetch("/api/jobs/" + encodeURIComponent(BOOT.job_id) + "/cancel",
    {method: "POST", credentials: "same-origin"});
  const body = await r.json().catch(() => ({}));
  $("#cancel-msg").textContent = r.ok ? body.message : "refused: HTTP " + r.status;
}
async function jobPage() {
  $("#cancel").onclick = cancelJob;
  try {
    const job = await getJSON("/api/jobs/" + encodeURIComponent(BOOT.job_id));
    setState(job.state);
  } catch (e) {
    $("#job-state").textContent = "unknown job";
    return;
  }
  listen("/api/jobs/" + encodeURIComponent(BOOT.job_id) + "/events", onJobEvent);
}

/* workers */
async function loadWorkers() {
  const rows = await getJSON("/api/workers");
  const body = $("#workers tbody");
  body.replaceChildren();
  for (const w of rows) {
    const tr = el("tr");
    tr.appendChild(el("td", w.worker));
    const slots = w.slots ? " (" + w.slots + " slots)" : "";
    tr.appendChild(el("td", (w.live === true ? "live" : w.live === false ? "not answering" : "-") + slots,
      w.live === true ? "ok" : w.live === false ? "failed" : ""));
    tr.appendChild(el("td", w.last_seen_s_ago === null ? "-" : w.last_seen_s_ago + " s ago"));
    tr.appendChild(el("td", Object.entries(w.registered).map(([k, v]) =>
      k + ": " + (Array.isArray(v) ? v : Object.keys(v)).join(", ")).join("\n"), "pre"));
    const run = el("td");
    for (const s of w.running) {
      const a = el("a", s.job_id.slice(0, 12) + " step " + s.step_index + " (" + (s.strategy || "baseline") + ")");
      a.href = "/jobs/" + encodeURIComponent(s.job_id);
      run.appendChild(a); run.appendChild(el("br"));
    }
    if (!w.running.length) run.textContent = "idle";
    tr.appendChild(run);
    body.appendChild(tr);
  }
}
function workersPage() { loadWorkers(); setInterval(loadWorkers, 2000); }

({jobs: jobsPage, job: jobPage, workers: workersPage, unknown: () => {}})[BOOT.page]();
"""
