"""Script of the comparison page: several jobs' final programs side by side (table, score chart, wall time)."""

COMPARE = r"""
async function loadComparison() {
  const p = new URLSearchParams(location.search), q = new URLSearchParams();
  for (const k of ["group", "jobs"]) if (p.get(k)) q.set(k, p.get(k));
  let cmp;
  try {
    cmp = await getJSON("/api/compare?" + q);
  } catch (e) {
    $("#compare-summary").textContent = e.message;
    if (e.status === 503) setTimeout(loadComparison, 5000);
    return;
  }
  $("#compare-title").textContent = cmp.group ? cmp.group : cmp.jobs.length + " jobs";
  const split = cmp.split || "held-out";
  $("#test-head").textContent = split;
  $("#compare-summary").textContent = "program " + (cmp.program || "?") + ", LM " + (cmp.lm || "?") +
    ", held-out split " + split + (cmp.slowest_wall_s !== null ? ", slowest job " + secs(cmp.slowest_wall_s) : "");
  const body = $("#compare tbody");
  body.replaceChildren();
  if (cmp.baseline) {
    const tr = el("tr", null, "baseline");
    for (const v of ["(baseline)", "", "", score(cmp.baseline.val), score(cmp.baseline.test), "", "", "", "", "", ""]) {
      tr.appendChild(el("td", v));
    }
    body.appendChild(tr);
  }
  for (const j of cmp.jobs) {
    const tr = el("tr");
    tr.appendChild(el("td", j.strategy));
    const id = el("td"); id.appendChild(link(j.job_id.slice(0, 12), "/jobs/" + encodeURIComponent(j.job_id)));
    tr.appendChild(id);
    tr.appendChild(stateCell("td", j));
    for (const v of [score(j.val), score(j.test), score(j.best_score), secs(j.wall_s), secs(j.compute_s),
      j.lm_calls === null ? "-" : j.lm_calls, j.cost || "-", j.models.join(", ")]) tr.appendChild(el("td", v));
    if (j.error) tr.title = j.error;
    body.appendChild(tr);
  }
  const labels = [...(cmp.baseline ? ["(baseline)"] : []), ...cmp.jobs.map((j) => j.strategy)];
  const pick = (f, base) => [...(cmp.baseline ? [base] : []), ...cmp.jobs.map(f)];
  $("#compare-chart").replaceChildren(groupedBars("compare-svg", labels, [
    {name: "val", color: "#3b7ddd", cls: "val-bar", format: score,
      values: pick((j) => j.val, cmp.baseline && cmp.baseline.val)},
    {name: split, color: "#e8590c", cls: "test-bar", format: score,
      values: pick((j) => j.test, cmp.baseline && cmp.baseline.test)},
  ]));
  const walls = cmp.jobs.map((j) => j.wall_s), most = Math.max(1, ...walls.filter((v) => v !== null));
  $("#wall-chart").replaceChildren(groupedBars("wall-svg", cmp.jobs.map((j) => j.strategy), [
    {name: "wall time, first step to result (s)", color: "#862e9c", cls: "wall-bar", format: secs, values: walls},
    {name: "compute time, sum of steps (s)", color: "#a5a5c8", cls: "compute-bar", format: secs,
      values: cmp.jobs.map((j) => j.compute_s)},
  ], 520, most));
  document.body.dataset.loaded = "compare";
}
PAGES.compare = loadComparison;
"""
