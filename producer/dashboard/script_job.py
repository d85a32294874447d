"""Script of one job's page: live timeline and charts from the event stream, then spec, programs and a diff."""

JOB = r"""
const loss = new Map();  // step index -> [[x, loss], ...]
const stepScores = new Map();  // step index -> {strategy, outcome, score}
let diffAsked = 0;  // the newest diff request wins: an older answer arriving late is dropped
let eventCount = 0, heldOutPolls = 0, stepsTotal = 0, candidates = [], plannedKeys = [];

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
/* Score by step: validation score after each step (a failed step is a red cross), held-out in orange. */
function drawSteps(heldOut, best) {
  const known = [...stepScores.entries()].sort((a, b) => a[0] - b[0]);
  if (!known.length) return;
  $("#steps-section").hidden = false;
  const last = Math.max(stepsTotal, ...known.map(([i]) => i), 1);
  const W = 640, H = 230, L = 44, R = 20, T = 14, B = 46;
  const x = (i) => L + (W - L - R) * i / last, y = (v) => T + (H - T - B) * (1 - v / 100);
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "step-svg", role: "img"});
  for (const v of [0, 25, 50, 75, 100]) {
    root.appendChild(svg("line", {x1: L, y1: y(v), x2: W - R, y2: y(v), stroke: v ? "#eee" : "#999"}));
    root.appendChild(svg("text", {x: 8, y: y(v) + 4}, v));
  }
  for (let i = 0; i <= last; i++) {
    const key = i === 0 ? "base" : plannedKeys[i - 1] || "";
    root.appendChild(svg("text", {x: x(i) - 8, y: H - B + 16}, i + (key ? " " + key : "")));
  }
  const ok = known.filter(([, s]) => s.score !== null && s.score !== undefined && s.outcome !== "failed");
  root.appendChild(svg("polyline", {points: ok.map(([i, s]) => x(i) + "," + y(s.score)).join(" "),
    fill: "none", stroke: "#3b7ddd", "stroke-width": 2}));
  for (const [i, s] of known) {
    if (s.outcome === "failed") {
      const cx = x(i), cy = y(0) - 8;
      root.appendChild(svg("path", {d: `M${cx - 6},${cy - 6}L${cx + 6},${cy + 6}M${cx - 6},${cy + 6}L${cx + 6},${cy - 6}`,
        stroke: "#b00020", "stroke-width": 3, class: "failed-point", "data-step": i}));
      root.appendChild(svg("text", {x: cx + 9, y: cy + 4, fill: "#b00020"}, "failed"));
    } else if (s.score !== null && s.score !== undefined) {
      root.appendChild(svg("circle", {cx: x(i), cy: y(s.score), r: i === best ? 6 : 4,
        fill: i === best ? "#2b8a3e" : "#3b7ddd", class: "val-point", "data-step": i, "data-score": score(s.score)}));
    }
  }
  if (heldOut) {
    const pts = known.map(([i]) => [i, heldOut.scores[String(i)]]).filter(([, v]) => v !== null && v !== undefined);
    root.appendChild(svg("polyline", {points: pts.map(([i, v]) => x(i) + "," + y(v)).join(" "),
      fill: "none", stroke: "#e8590c", "stroke-width": 2, "stroke-dasharray": "5 3"}));
    for (const [i, v] of pts) root.appendChild(svg("circle", {cx: x(i), cy: y(v), r: 3, fill: "#e8590c",
      class: "test-point", "data-score": score(v)}));
  }
  const legend = "validation score % after each step (best in green)" + (heldOut ? ", " + heldOut.split + " dashed" : "");
  root.appendChild(svg("text", {x: L, y: H - 8}, legend));
  $("#step-chart").replaceChildren(root);
}
function showError(ev) {
  const box = el("div", null, "error");
  box.appendChild(el("strong", "step " + ev.step_index + " (" + (ev.strategy || "baseline") + "): "));
  box.appendChild(document.createTextNode(ev.error.type + ": " + ev.error.message));
  if (ev.error.traceback) box.appendChild(el("pre", ev.error.traceback));
  $("#errors").appendChild(box);
}
function onJobEvent(ev, id, stream) {
  eventCount += 1;
  $("#event-count").textContent = eventCount;
  $("#cursor").textContent = id;
  if (ev.type === "job.submitted") {
    $("#job-summary").textContent = "strategy '" + ev.strategy + "', " + ev.steps_total + " steps, seed " + ev.detail.seed;
    stepsTotal = ev.steps_total;
  } else if (ev.type === "step.started") {
    const row = stepRow(ev.step_index);
    setCell(row, "strategy", ev.strategy || "baseline");
    setCell(row, "worker", ev.worker);
    setCell(row, "attempt", ev.attempt);
    setCell(row, "outcome", "running", "running");
    setState({state: "running"});
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
    stepScores.set(ev.step_index, {strategy: ev.strategy, outcome: outcome, score: ev.score});
    drawSteps(null, null);
  } else if (ev.type === "job.cancel_requested") {
    setState({state: "cancelling"});
  } else {
    setState({state: ev.type.slice(4)});
    stream.close();
    loadResult(10);
  }
}
function setState(job) {
  const s = $("#job-state"), shown = stateCell("span", job);  // changed in place: tests hold the element
  s.textContent = shown.textContent;
  s.className = shown.className + " state";
  $("#cancel").disabled = FINAL.includes(job.state);
}
function drawScores(cands, best, heldOut) {
  const ordered = [...cands].sort((a, b) => a.step_index - b.step_index);
  const test = (c) => heldOut ? heldOut.scores[String(c.step_index)] : undefined;
  const W = 640, bh = heldOut ? 11 : 18, row = heldOut ? 30 : 26, P = 170, H = row * ordered.length + 30;
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "score-svg", role: "img"});
  ordered.forEach((c, i) => {
    const y = 10 + i * row, w = (W - P - 60) * (c.score || 0) / 100;
    root.appendChild(svg("text", {x: 4, y: y + 12}, (c.step_index + ". " + (c.strategy || "baseline")).slice(0, 26)));
    root.appendChild(svg("rect", {x: P, y: y, width: Math.max(w, 1), height: bh, class: "score-bar",
      fill: c.step_index === best ? "#2b8a3e" : "#3b7ddd", "data-score": score(c.score)}));
    root.appendChild(svg("text", {x: P + w + 6, y: y + 10}, score(c.score)));
    if (heldOut) {
      const t = test(c), tw = (W - P - 60) * (t || 0) / 100;
      root.appendChild(svg("rect", {x: P, y: y + bh + 1, width: Math.max(tw, 1), height: bh, class: "test-bar",
        fill: "#e8590c", "data-score": score(t)}));
      root.appendChild(svg("text", {x: P + tw + 6, y: y + 2 * bh}, score(t)));
    }
  });
  const legend = heldOut ? "validation (blue, best green) and " + heldOut.split + " (orange) score, %"
    : "validation score (%), best in green";
  root.appendChild(svg("text", {x: P, y: H - 4}, legend));
  $("#score-chart").replaceChildren(root);
}
function showDemos(box, demos, cls) {
  for (const d of demos.slice(0, 8)) {
    box.appendChild(el("pre", Object.entries(d).map(([k, v]) => k + ": " + JSON.stringify(v)).join("\n"), cls));
  }
  if (demos.length > 8) box.appendChild(el("p", "… and " + (demos.length - 8) + " more", "muted"));
}
function showPrograms(cands) {
  const box = $("#programs");
  box.replaceChildren();
  for (const c of cands) {
    const d = el("details");
    d.id = "program-" + c.step_index;
    d.open = c.best;
    const models = [...new Set(c.program.map((p) => p.model).filter((m) => m))].join(", ");
    d.appendChild(el("summary", "#" + c.rank + "  step " + c.step_index + "  " + (c.strategy || "(baseline)") +
      "  val " + score(c.score) + (c.best ? "  (best)" : "") + (models ? "  LM " + models : "")));
    const files = "/api/jobs/" + encodeURIComponent(BOOT.job_id) + "/candidates/" + c.step_index;
    const dl = el("p", "download for dspy's Module.load: ", "downloads");
    const prog = link("program.json", files + "/program.json", "download-program");
    prog.download = "";
    const man = link("manifest (program, LMs, artifacts)", files + "/manifest.json", "download-manifest");
    man.download = "";
    dl.appendChild(prog); dl.appendChild(document.createTextNode(" · ")); dl.appendChild(man);
    d.appendChild(dl);
    for (const p of c.program) {
      d.appendChild(el("h3", p.name + (p.model ? "  (" + p.model + ")" : "")));
      d.appendChild(el("pre", p.instructions || "(no instructions)"));
      d.appendChild(el("p", p.demos.length + " demos", "muted"));
      showDemos(d, p.demos);
    }
    box.appendChild(d);
  }
}
function diffOptions(cands) {
  const byStep = [...cands].sort((a, b) => a.step_index - b.step_index);
  const p = new URLSearchParams(location.search), best = cands.find((c) => c.best) || cands[cands.length - 1];
  for (const [sel, fallback] of [["#diff-a", byStep[0]], ["#diff-b", best]]) {
    const s = $(sel);
    if (s.options.length) continue;
    for (const c of byStep) {
      const o = el("option", c.step_index + ". " + (c.strategy || "(baseline)") + "  " + score(c.score));
      o.value = c.step_index; s.appendChild(o);
    }
    const wanted = p.get(sel === "#diff-a" ? "a" : "b");
    s.value = wanted !== null && byStep.some((c) => String(c.step_index) === wanted) ? wanted : fallback.step_index;
    s.onchange = loadDiff;
  }
}
async function loadDiff() {
  const a = $("#diff-a").value, b = $("#diff-b").value;
  const p = new URLSearchParams(location.search);
  p.set("a", a); p.set("b", b);
  history.replaceState(null, "", location.pathname + "?" + p);
  const asked = ++diffAsked;
  const diff = await getJSON("/api/jobs/" + encodeURIComponent(BOOT.job_id) + "/diff?a=" + a + "&b=" + b);
  if (asked !== diffAsked) return;
  const box = $("#diff");
  box.replaceChildren();
  box.className = "diff";
  for (const pr of diff.predictors) {
    const sec = el("section");
    sec.className = "predictor " + pr.status;
    const h = el("h3", pr.name + " ");
    h.appendChild(el("span", pr.status, "muted"));
    sec.appendChild(h);
    if (pr.model.changed) sec.appendChild(el("p", "LM: " + (pr.model.a || "(default)") + " → " + (pr.model.b || "(default)")));
    else if (pr.model.a) sec.appendChild(el("p", "LM: " + pr.model.a + " (same)", "muted"));
    const text = el("pre", null, "instructions");
    for (const seg of pr.instructions) {
      text.appendChild(seg.op === "same" ? document.createTextNode(seg.text) : el(seg.op === "add" ? "ins" : "del", seg.text));
    }
    sec.appendChild(text);
    const dm = pr.demos;
    sec.appendChild(el("p", "demos: " + dm.a + " → " + dm.b + " (" + dm.kept + " kept, " + dm.added.length +
      " added, " + dm.removed.length + " removed)", "demo-count"));
    showDemos(sec, dm.removed, "removed");
    showDemos(sec, dm.added, "added");
    box.appendChild(sec);
  }
}
function showSpec(spec) {
  if (typeof spec.strategy === "string") plannedKeys = spec.strategy.split(" -> ");
  kvTable("#spec", Object.entries(spec).filter(([k, v]) => v !== null && v !== undefined && k !== "schema_version"));
}
function showTimings(job) {
  const t = job.timings, rows = [["submitted", when(t.submitted_at)], ["waited in queue", secs(t.queued_s)],
    ["first step started", when(t.started_at)], ["finished", when(t.finished_at)],
    ["wall time (first step to result)", secs(t.wall_s)], ["compute time (sum of steps)", secs(t.compute_s)]];
  const u = job.result && job.result.usage;
  if (u) {
    rows.push(["LM calls", u.calls + (u.cached_calls ? " (+" + u.cached_calls + " from cache)" : "")]);
    rows.push(["tokens", u.tokens + " (" + u.prompt_tokens + " prompt, " + u.completion_tokens + " completion)"]);
    rows.push(["cost", u.cost]);
  }
  kvTable("#timings", rows);
}
async function loadResult(tries) {
  const job = await getJSON("/api/jobs/" + encodeURIComponent(BOOT.job_id));
  showSpec(job.spec); showTimings(job);
  for (const s of job.steps) stepScores.set(s.index, {strategy: s.strategy, outcome: s.outcome, score: s.score});
  stepsTotal = job.steps_total;
  if (!job.result) {
    drawSteps(null, null);
    if (tries > 0) setTimeout(() => loadResult(tries - 1), 500);
    return;
  }
  setState(job);
  $("#result-section").hidden = false;
  const heldOut = job.result.held_out[0];
  if (heldOut && !document.getElementById("test-head")) {
    const th = el("th", heldOut.split + " score"); th.id = "test-head";
    $("#candidates thead tr").insertBefore(th, $("#candidates thead tr").lastChild);
  }
  candidates = job.result.candidates;
  const body = $("#candidates tbody");
  body.replaceChildren();
  for (const c of candidates) {
    const tr = el("tr");
    tr.appendChild(el("td", c.rank + (c.best ? " *" : "")));
    tr.appendChild(el("td", c.strategy || "(baseline)"));
    tr.appendChild(el("td", score(c.score)));
    if (heldOut) tr.appendChild(el("td", score(heldOut.scores[String(c.step_index)])));
    tr.appendChild(el("td", c.step_index));
    body.appendChild(tr);
  }
  drawScores(candidates, job.result.best_step_index, heldOut);
  drawSteps(heldOut, job.result.best_step_index);
  // Held-out scores come after the job ended (btq evaluate, btq demo): look again for a while.
  if (!heldOut && heldOutPolls < 120) { heldOutPolls += 1; setTimeout(() => loadResult(0), 5000); }
  if (!$("#programs").children.length) showPrograms(candidates);
  if (!$("#diff-a").options.length && candidates.length) { diffOptions(candidates); loadDiff(); }
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
PAGES.job = async () => {
  $("#cancel").onclick = cancelJob;
  const api = "/api/jobs/" + encodeURIComponent(BOOT.job_id);
  let job;
  try {
    job = await getJSON(api);
  } catch (e) {
    $("#job-state").textContent = e.status === 404 ? "unknown job" : "not reachable";
    if (e.status === 503) setTimeout(() => location.reload(), 5000);
    return;
  }
  setState(job); showSpec(job.spec); showTimings(job);
  if (job.group) {
    const g = $("#group-link"); g.hidden = false; g.href = "/compare?group=" + encodeURIComponent(job.group);
  }
  listen(api + "/events", "", onJobEvent, api);
};
"""
