"""Scripts of the jobs list (server-side search, filters, sort and pages, kept in the address) and the workers page."""

JOBS = r"""
/* jobs list: the address is the state (bookmarkable); the server filters, sorts and pages */
const FIELDS = ["q", "state", "sort", "order", "page", "strategy", "program", "group"];
const DEFAULTS = {sort: "submitted", order: "desc", page: "1"};
const selected = new Set();
let listLoading = null, listAgain = false;

function listParams() {
  const p = new URLSearchParams(location.search), out = new URLSearchParams();
  for (const f of FIELDS) if (p.get(f) && p.get(f) !== DEFAULTS[f]) out.set(f, p.get(f));
  return out;
}
function go(changes, push) {
  const p = listParams();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === "" || v === DEFAULTS[k]) p.delete(k); else p.set(k, v);
  }
  const url = location.pathname + (p.toString() ? "?" + p : "");
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  loadJobs();
}
function fillForm() {
  const p = listParams();
  $("#q").value = p.get("q") || "";
  $("#state-filter").value = p.get("state") || "";
  $("#sort").value = p.get("sort") || "submitted";
  $("#order").value = p.get("order") || "desc";
  for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
    th.classList.toggle("sorted", th.dataset.sort === (p.get("sort") || "submitted"));
  }
}
function jobRow(j) {
  const tr = el("tr");
  tr.dataset.job = j.job_id;
  const id = el("td");
  id.appendChild(link(j.job_id.slice(0, 12), "/jobs/" + encodeURIComponent(j.job_id)));
  if (j.group) id.appendChild(link("comparison", "/compare?group=" + encodeURIComponent(j.group), "tag"));
  tr.appendChild(id);
  tr.appendChild(stateCell("td", j));
  tr.appendChild(el("td", j.strategy));
  const p = el("td"); p.appendChild(bar(j.steps_done, j.steps_total));
  p.appendChild(document.createTextNode(" " + j.steps_done + "/" + j.steps_total)); tr.appendChild(p);
  tr.appendChild(el("td", score(j.best_score)));
  tr.appendChild(el("td", j.program));
  tr.appendChild(el("td", j.lm_usage ? j.lm_usage.cost : "-"));
  tr.appendChild(el("td", age(j.submitted_at)));
  const pick = el("td"), box = el("input");
  box.type = "checkbox"; box.checked = selected.has(j.job_id); box.title = "compare this job";
  box.onchange = () => {
    if (box.checked) selected.add(j.job_id); else selected.delete(j.job_id);
    $("#compare-selected").disabled = selected.size < 2;
  };
  pick.appendChild(box); tr.appendChild(pick);
  return tr;
}
function pager(page) {
  const box = $("#pager");
  box.replaceChildren();
  const to = (n, text) => {
    if (n < 1 || n > page.pages || n === page.page) return el("span", text, "muted");
    const a = link(text, "#");
    a.onclick = (e) => { e.preventDefault(); go({page: String(n)}, true); };
    return a;
  };
  box.appendChild(to(1, "« first"));
  box.appendChild(to(page.page - 1, "\u2039 previous"));
  box.appendChild(el("span", "page " + page.page + " of " + page.pages, "page-of"));
  box.appendChild(to(page.page + 1, "next \u203a"));
  box.appendChild(to(page.pages, "last »"));
}
function counts(states, current) {
  const box = $("#state-counts");
  box.replaceChildren();
  const all = Object.values(states).reduce((a, b) => a + b, 0);
  for (const [name, n] of [["", all], ...Object.entries(states).sort()]) {
    const a = link((name || "all") + " " + n, "#", name === (current || "") ? "on" : "");
    a.dataset.state = name;
    a.onclick = (e) => { e.preventDefault(); go({state: name, page: null}, true); };
    box.appendChild(a);
  }
}
async function loadJobs() {
  // One request at a time; a change made meanwhile loads again right after (the newest address wins).
  if (listLoading) { listAgain = true; return listLoading; }
  fillForm();
  const began = performance.now();
  listLoading = (async () => {
    try {
      const page = await getJSON("/api/jobs?" + listParams());
      $("#total").textContent = page.total + " job" + (page.total === 1 ? "" : "s");
      $("#took").textContent = "server " + page.took_ms + " ms";
      const body = $("#jobs tbody");
      body.replaceChildren(...page.rows.map(jobRow));
      if (!page.rows.length) {
        const tr = el("tr"), td = el("td", "no jobs match", "muted"); td.colSpan = 9; tr.appendChild(td);
        body.appendChild(tr);
      }
      pager(page);
      counts(page.states, listParams().get("state"));
      window.lastListMs = performance.now() - began;  // read by the browser tests (printed, never asserted)
      if (window.firstRenderMs === undefined) window.firstRenderMs = performance.now();
      document.body.dataset.loaded = location.search;
    } catch (e) {
      if (e.status === 400) $("#total").textContent = e.message;
    } finally {
      listLoading = null;
      if (listAgain) { listAgain = false; loadJobs(); }
    }
  })();
  return listLoading;
}
PAGES.jobs = () => {
  const form = $("#filters");
  form.onsubmit = (e) => { e.preventDefault(); go({q: $("#q").value.trim(), page: null}, true); };
  let typing = null;
  $("#q").oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(() => go({q: $("#q").value.trim(), page: null}, false), 250);
  };
  $("#state-filter").onchange = () => go({state: $("#state-filter").value, page: null}, true);
  $("#sort").onchange = () => go({sort: $("#sort").value, page: null}, true);
  $("#order").onchange = () => go({order: $("#order").value, page: null}, true);
  for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
    th.onclick = () => {
      const p = listParams(), same = (p.get("sort") || "submitted") === th.dataset.sort;
      const order = same && (p.get("order") || "desc") === "desc" ? "asc" : "desc";
      go({sort: th.dataset.sort, order: order, page: null}, true);
    };
  }
  $("#compare-selected").onclick = () => { location.href = "/compare?jobs=" + [...selected].join(","); };
  window.onpopstate = loadJobs;
  loadJobs();
  // Any job's event refreshes the list (at most once a second); a timer covers a quiet or broken stream.
  let pending = null;
  listen("/api/events", "$", () => {
    if (!pending) pending = setTimeout(() => { pending = null; loadJobs(); }, 1000);
  }, "/api/jobs?per_page=1");
  setInterval(loadJobs, 10000);
};
"""

WORKERS = r"""
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
      run.appendChild(link(s.job_id.slice(0, 12) + " step " + s.step_index + " (" + (s.strategy || "baseline") + ")",
        "/jobs/" + encodeURIComponent(s.job_id)));
      run.appendChild(el("br"));
    }
    if (!w.running.length) run.textContent = "idle";
    tr.appendChild(run);
    body.appendChild(tr);
  }
}
PAGES.workers = () => { loadWorkers().catch(() => {}); setInterval(() => loadWorkers().catch(() => {}), 2000); };
"""
