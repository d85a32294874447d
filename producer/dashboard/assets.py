"""The dashboard's stylesheet and the script every page shares, inline (no CDN, nothing to vendor).

Each page adds its own script (script_list, script_job, script_compare) and registers its entry point
in `PAGES`; `pages._page` runs the one named by the page's boot data. Charts are SVG drawn by hand.
"""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}
main{padding:8px 16px;max-width:1240px}h1{font-size:20px}h2{font-size:16px;margin-top:20px}h3{font-size:14px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e3e6ea;
text-align:left;vertical-align:top}th{background:#eef0f3}code{font-size:12px}
th[data-sort]{cursor:pointer}th.sorted{text-decoration:underline}
.state{font-size:13px;padding:2px 8px;border-radius:10px;background:#dde3ea}
.succeeded,.ok{color:#176b2c}.failed{color:#b00020}.running{color:#0b5cad}.cancelled,.skipped{color:#7a6400}
.cancelling,.queued{color:#5c4b8a}
.state.step-failed,td.step-failed{color:#a03c00;font-weight:600}.state.step-failed{background:#ffe8d6}
.bar{display:inline-block;width:90px;height:8px;background:#e3e6ea;border-radius:4px;vertical-align:middle}
.bar i{display:block;height:8px;background:#3b7ddd;border-radius:4px}
.muted{color:#6b7380;font-size:12px}pre{white-space:pre-wrap;background:#fff;padding:8px;border:1px solid #e3e6ea;margin:4px 0}
.error{border-left:4px solid #b00020;background:#fff;padding:4px 8px;margin:8px 0}
.pre{white-space:pre-line}svg text{font:11px system-ui,sans-serif;fill:#1d2330}button{padding:4px 12px}
.banner{background:#b00020;color:#fff;padding:8px 12px;margin:8px 0;border-radius:4px;font-weight:600}
.filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin:8px 0}
.filters input,.filters select{padding:3px 6px}
.counts a{margin-right:12px;text-decoration:none}.counts a.on{font-weight:700;text-decoration:underline}
.pager a,.pager span{margin-right:12px}.tag{font-size:11px;background:#e7eefc;color:#0b5cad;padding:1px 6px;
border-radius:8px;margin-left:6px;text-decoration:none}
.kv th{width:34%;background:#f3f4f6;font-weight:500}.kv td{font-family:ui-monospace,monospace;font-size:12px;
white-space:pre-wrap;word-break:break-word}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
details{background:#fff;border:1px solid #e3e6ea;margin:6px 0;padding:4px 10px}summary{cursor:pointer;font-weight:600}
.diff del{margin-right:2px;background:#ffd7d5;color:#82071e;text-decoration:line-through}.diff ins{background:#ccffd8;color:#055d20;
text-decoration:none}.diff pre{font-family:inherit}.diff .added{border-left:4px solid #2b8a3e}
.diff .removed{border-left:4px solid #b00020}
.diff pre.added::before{content:"+ added demo";display:block;color:#2b8a3e;font-size:11px}
.diff pre.removed::before{content:"- removed demo";display:block;color:#b00020;font-size:11px}.diff h3 .muted{font-weight:400}
"""

COMMON = r"""
"use strict";
const $ = (s) => document.querySelector(s);
const SVG = "http://www.w3.org/2000/svg";
const TYPES = ["job.submitted", "step.started", "step.progress", "step.succeeded", "step.failed",
  "step.skipped", "job.cancel_requested", "job.succeeded", "job.failed", "job.cancelled"];
const COLORS = ["#3b7ddd", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a"];
const PAGES = {};
const FINAL = ["succeeded", "failed", "cancelled"];

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function link(text, href, cls) { const a = el("a", text, cls); a.href = href; return a; }
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function score(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(2); }
function secs(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(1) + " s"; }
function when(t) { return t ? new Date(t * 1000).toLocaleString() : "-"; }
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
/* A job's state as a person reads it ("succeeded, 1 step failed"), styled so a failed step shows. */
function stateCell(tag, job) {
  const label = job.state_label || job.state;
  return el(tag, label, job.state + (job.failed_steps ? " step-failed" : ""));
}
/* Redis away: the API answers 503 with one line; every page shows it until a request succeeds. */
function banner(text) {
  const b = $("#banner");
  if (!b) return;
  b.hidden = !text;
  b.textContent = text || "";
}
async function getJSON(url) {
  let r;
  try {
    r = await fetch(url, {credentials: "same-origin"});
  } catch (e) {
    banner("the dashboard does not answer: " + e.message);
    throw e;
  }
  const body = await r.json().catch(() => ({}));
  if (r.status === 503) {
    banner(body.error || "HTTP 503: Redis is not reachable");
    const err = new Error(body.error || "HTTP 503"); err.status = 503; throw err;
  }
  banner(null);
  if (!r.ok) {
    const err = new Error(body.error || url + ": HTTP " + r.status); err.status = r.status; throw err;
  }
  return body;
}
/* Server-sent events from `base`, after cursor `after` ("" = from the start, "$" = only new ones). A
   stream refused (Redis away: 503) is reopened every 3 s after the last event seen; the browser's own
   reconnect (Last-Event-ID) covers a stream that merely dropped. */
function listen(base, after, onEvent, probe) {
  let last = after, es = null, stopped = false;
  const handle = {close() { stopped = true; if (es) es.close(); }};
  const open = () => {
    es = new EventSource(base + (last ? "?after=" + encodeURIComponent(last) : ""));
    for (const t of TYPES) es.addEventListener(t, (m) => {
      if (m.lastEventId) last = m.lastEventId;
      onEvent(JSON.parse(m.data), m.lastEventId, handle);
    });
    es.onopen = () => banner(null);  // the stream began: Redis answered
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED || stopped) return;
      getJSON(probe).catch(() => {});
      setTimeout(() => { if (!stopped) open(); }, 3000);
    };
  };
  open();
  return handle;
}
function kvTable(selector, pairs) {
  const body = $(selector + " tbody");
  body.replaceChildren();
  for (const [k, v] of pairs) {
    const tr = el("tr");
    tr.appendChild(el("th", k));
    const flat = typeof v === "string" ? v : JSON.stringify(v);
    tr.appendChild(el("td", flat.length > 90 ? JSON.stringify(v, null, 1) : flat));
    body.appendChild(tr);
  }
}
PAGES.unavailable = () => {
  setInterval(() => getJSON("/api/jobs?per_page=1").then(() => location.reload()).catch(() => {}), 3000);
};
/* Horizontal grouped bars: rows of labels, one bar per series (values in percent). */
function groupedBars(id, labels, series, width, top) {
  const W = width || 600, bh = 11, row = bh * series.length + 10, P = 120;
  const H = row * labels.length + 16 + 14 * series.length;
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: id, role: "img"});
  const max = top || Math.max(100, ...series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined)));
  labels.forEach((label, i) => {
    const y = 6 + i * row;
    root.appendChild(svg("text", {x: 4, y: y + bh + 1}, String(label).slice(0, 24)));
    series.forEach((s, k) => {
      const v = s.values[i], w = v === null || v === undefined ? 0 : (W - P - 70) * v / max;
      root.appendChild(svg("rect", {x: P, y: y + k * bh, width: Math.max(w, 1), height: bh - 1, fill: s.color,
        class: s.cls, "data-value": s.format(v)}));
      root.appendChild(svg("text", {x: P + w + 4, y: y + k * bh + bh - 2}, s.format(v)));
    });
  });
  series.forEach((s, k) => {
    const y = H - 14 * (series.length - k) + 4;
    root.appendChild(svg("rect", {x: P, y: y - 9, width: 10, height: 10, fill: s.color}));
    root.appendChild(svg("text", {x: P + 14, y: y}, s.name));
  });
  return root;
}
"""
