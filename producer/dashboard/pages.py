"""HTML shells of the three pages; the data comes from the JSON API and the event stream.

Pages carry no data of their own (only the job id, escaped), so nothing reaches the browser that the
API would not show; the script builds the page with `textContent`, never with injected HTML.
"""

import html
import json

from btq.producer.dashboard.assets import CSS, SCRIPT

_NAV = '<nav><a href="/">jobs</a> <a href="/workers">workers</a></nav>'


def _page(title: str, body: str, boot: dict[str, str]) -> str:
    # json.dumps alone would let "</script>" close the tag: escape "<" in the boot data.
    data = json.dumps(boot).replace("<", "\\u003c")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · btq</title><style>{CSS}</style></head>"
        f"<body>{_NAV}<main>{body}</main>"
        f"<script>const BOOT = {data};</script><script>{SCRIPT}</script></body></html>"
    )


def jobs_page() -> str:
    """Return the jobs list: state filter, newest first, refreshed on every event of any job."""
    states = "".join(
        f'<option value="{s}">{s or "all states"}</option>'
        for s in ("", "queued", "running", "succeeded", "failed", "cancelled")
    )
    body = (
        '<h1>Jobs</h1><label>state <select id="state-filter">' + states + "</select></label>"
        '<table id="jobs"><thead><tr><th>job</th><th>state</th><th>strategy</th><th>progress</th>'
        "<th>best score</th><th>age</th></tr></thead><tbody></tbody></table>"
    )
    return _page("jobs", body, {"page": "jobs"})


def job_page(job_id: str) -> str:
    """Return one job's page: header, timeline, fine-tune loss, candidates chart and table, best program."""
    jid = html.escape(job_id)
    body = (
        f'<h1>Job <code id="job-id">{jid}</code> <span id="job-state" class="state">…</span></h1>'
        '<p id="job-summary"></p><p><button id="cancel">Cancel job</button> <span id="cancel-msg"></span></p>'
        '<h2>Steps</h2><table id="timeline"><thead><tr><th>step</th><th>strategy</th><th>worker</th>'
        "<th>attempt</th><th>outcome</th><th>duration</th><th>score</th><th>progress</th></tr></thead>"
        "<tbody></tbody></table>"
        '<div id="errors"></div>'
        '<section id="loss-section" hidden><h2>Fine-tune loss</h2><div id="loss-chart"></div></section>'
        '<section id="result-section" hidden><h2>Candidates</h2><div id="score-chart"></div>'
        '<table id="candidates"><thead><tr><th>rank</th><th>strategy</th><th>val score</th><th>step</th>'
        '</tr></thead><tbody></tbody></table><h2>Best program</h2><div id="best-program"></div></section>'
        '<section id="cost-section" hidden><h2>LM usage and cost</h2><table id="cost"><thead><tr><th>step</th>'
        "<th>calls</th><th>prompt tokens</th><th>completion tokens</th><th>cost</th><th>saved by cache</th>"
        "</tr></thead><tbody></tbody></table></section>"
        '<p class="muted">Events: <span id="event-count">0</span>, cursor <code id="cursor">-</code></p>'
    )
    return _page(f"job {job_id}", body, {"page": "job", "job_id": job_id})


def unknown_job_page(job_id: str) -> str:
    """Return the page for a job id Redis does not hold (never submitted, or expired): no actions."""
    body = f'<h1>Unknown job <code id="job-id">{html.escape(job_id)}</code></h1><p>No such job (never submitted, or expired).</p>'
    return _page(f"unknown job {job_id}", body, {"page": "unknown"})


def workers_page() -> str:
    """Return the workers page: who is live, what each registered, what each runs."""
    body = (
        '<h1>Workers</h1><table id="workers"><thead><tr><th>worker</th><th>live</th><th>published</th><th>registered</th>'
        "<th>running</th></tr></thead><tbody></tbody></table>"
    )
    return _page("workers", body, {"page": "workers"})
