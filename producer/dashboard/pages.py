"""HTML shells of the pages; the data comes from the JSON API and the event stream.

Pages carry no data of their own (only the job id, escaped), so nothing reaches the browser that the
API would not show; the scripts build the page with `textContent`, never with injected HTML.
"""

import html
import json

from btq.producer.dashboard.assets import COMMON, CSS
from btq.producer.dashboard.list_query import SORTS, STATES
from btq.producer.dashboard.script_compare import COMPARE
from btq.producer.dashboard.script_job import JOB
from btq.producer.dashboard.script_list import JOBS, WORKERS

_NAV = '<nav><a href="/">jobs</a> <a href="/workers">workers</a></nav>'
_RUN = "\n(PAGES[BOOT.page] || (() => {}))();\n"
_BANNER = '<div id="banner" class="banner" role="alert" hidden></div>'


def _page(title: str, body: str, boot: dict[str, object], script: str = "", banner: str = "") -> str:
    # json.dumps alone would let "</script>" close the tag: escape "<" in the boot data.
    data = json.dumps(boot).replace("<", "\\u003c")
    shown = f'<div id="banner" class="banner" role="alert">{html.escape(banner)}</div>' if banner else _BANNER
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · btq</title><style>{CSS}</style></head>"
        f"<body>{_NAV}<main>{shown}{body}</main>"
        f"<script>const BOOT = {data};</script><script>{COMMON}{script}{_RUN}</script></body></html>"
    )


def _options(values: list[tuple[str, str]]) -> str:
    return "".join(f'<option value="{html.escape(v)}">{html.escape(label)}</option>' for v, label in values)


def jobs_page(per_page_max: int) -> str:
    """Return the jobs list: search, state filter, sort and page in the address; refreshed on every event."""
    states = _options([("", "all states"), *[(s, s) for s in STATES]])
    sorts = _options([(s, {"submitted": "submitted", "best": "best score"}.get(s, s)) for s in SORTS])
    body = (
        '<h1>Jobs <span id="total" class="muted"></span></h1>'
        '<form id="filters" class="filters" role="search">'
        '<input type="search" id="q" name="q" size="34" placeholder="job id, submission id, strategy, program">'
        f'<label>state <select id="state-filter" name="state">{states}</select></label>'
        f'<label>sort <select id="sort" name="sort">{sorts}</select></label>'
        '<label>order <select id="order" name="order"><option value="desc">descending</option>'
        '<option value="asc">ascending</option></select></label>'
        '<button type="submit">Search</button> <span id="took" class="muted"></span></form>'
        '<p id="state-counts" class="counts"></p>'
        '<table id="jobs"><thead><tr><th data-sort="submitted">job</th><th data-sort="state">state</th>'
        '<th data-sort="strategy">strategy</th><th data-sort="steps">progress</th><th data-sort="best">best score</th>'
        '<th data-sort="program">program</th><th>cost</th><th data-sort="submitted">age</th>'
        '<th><button id="compare-selected" type="button" disabled title="open the checked jobs side by side">'
        "compare</button></th></tr></thead><tbody></tbody></table>"
        '<p id="pager" class="pager"></p>'
    )
    return _page("jobs", body, {"page": "jobs", "per_page_max": per_page_max}, JOBS)


def job_page(job_id: str) -> str:
    """Return one job's page: header, spec, timings, steps, charts, candidates, programs, a diff, usage."""
    jid = html.escape(job_id)
    body = (
        f'<h1>Job <code id="job-id">{jid}</code> <span id="job-state" class="state">…</span></h1>'
        '<p id="job-summary"></p><p><button id="cancel">Cancel job</button> <span id="cancel-msg"></span>'
        ' <a id="group-link" hidden>open its comparison</a></p>'
        '<div class="cols"><section><h2>Spec</h2><table id="spec" class="kv"><tbody></tbody></table></section>'
        '<section><h2>Timings</h2><table id="timings" class="kv"><tbody></tbody></table></section></div>'
        '<h2>Steps</h2><table id="timeline"><thead><tr><th>step</th><th>strategy</th><th>worker</th>'
        "<th>attempt</th><th>outcome</th><th>duration</th><th>score</th><th>progress</th></tr></thead>"
        "<tbody></tbody></table>"
        '<div id="errors"></div>'
        '<section id="steps-section" hidden><h2>Score by step</h2><div id="step-chart"></div></section>'
        '<section id="loss-section" hidden><h2>Fine-tune loss</h2><div id="loss-chart"></div></section>'
        '<section id="result-section" hidden><h2>Candidates</h2><div id="score-chart"></div>'
        '<table id="candidates"><thead><tr><th>rank</th><th>strategy</th><th>val score</th><th>step</th>'
        "</tr></thead><tbody></tbody></table>"
        '<h2 id="diff-section">Compare two candidates</h2><form id="diff-form" class="filters">'
        '<label>from <select id="diff-a"></select></label> <label>to <select id="diff-b"></select></label></form>'
        '<div id="diff"></div>'
        '<h2>Programs</h2><div id="programs"></div></section>'
        '<section id="cost-section" hidden><h2>LM usage and cost</h2><table id="cost"><thead><tr><th>step</th>'
        "<th>calls</th><th>prompt tokens</th><th>completion tokens</th><th>cost</th><th>saved by cache</th>"
        "</tr></thead><tbody></tbody></table></section>"
        '<p class="muted">Events: <span id="event-count">0</span>, cursor <code id="cursor">-</code></p>'
    )
    return _page(f"job {job_id}", body, {"page": "job", "job_id": job_id}, JOB)


def unknown_job_page(job_id: str) -> str:
    """Return the page for a job id Redis does not hold (never submitted, or expired): no actions."""
    body = f'<h1>Unknown job <code id="job-id">{html.escape(job_id)}</code></h1><p>No such job (never submitted, or expired).</p>'
    return _page(f"unknown job {job_id}", body, {"page": "unknown"})


def compare_page() -> str:
    """Return the comparison page: one row per job's final program (val, held-out, wall time), and charts."""
    body = (
        '<h1>Comparison <span id="compare-title" class="muted"></span></h1><p id="compare-summary"></p>'
        '<table id="compare"><thead><tr><th>strategy</th><th>job</th><th>state</th><th>val</th>'
        '<th id="test-head">held-out</th><th>best val</th><th>wall s</th><th>compute s</th><th>LM calls</th>'
        "<th>cost</th><th>final model</th></tr></thead><tbody></tbody></table>"
        '<div class="cols"><section><h2>Score of each final program</h2><div id="compare-chart"></div></section>'
        '<section><h2>Wall time</h2><div id="wall-chart"></div></section></div>'
    )
    return _page("comparison", body, {"page": "compare"}, COMPARE)


def workers_page() -> str:
    """Return the workers page: who is live, what each registered, what each runs."""
    body = (
        '<h1>Workers</h1><table id="workers"><thead><tr><th>worker</th><th>live</th><th>published</th><th>registered</th>'
        "<th>running</th></tr></thead><tbody></tbody></table>"
    )
    return _page("workers", body, {"page": "workers"}, WORKERS)


def unavailable_page(message: str) -> str:
    """Return the page served while Redis cannot be reached: the banner, and a reload once it is back."""
    body = "<h1>Redis is not reachable</h1><p>This page reloads when it answers again.</p>"
    return _page("Redis unreachable", body, {"page": "unavailable"}, banner=message)
