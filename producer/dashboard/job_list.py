"""The jobs list at scale: an in-process index of small job summaries, refreshed incrementally.

Why an index in the dashboard process rather than reading jobs per request: a job's spec never changes,
and neither does a final job's status or result. So what the list searches and sorts on (strategy,
program, LM, submission id, comparison group, best score, failed steps) is read once per job and kept;
a refresh then reads the id index (`btq:jobs`, one ZRANGE), the status hash of each job that is not
final yet (pipelined), and re-checks that final jobs still exist at most every `recheck_s` (their keys
expire). Searching, filtering, sorting and paging are done in memory over those summaries: with 2,000
jobs a page costs a few milliseconds once the index is warm, instead of 2,000 x 3 reads of specs and
results. Nothing new is written to Redis, so every producer, worker and older dashboard keeps working
unchanged; the price is one cold fill per dashboard process (`python -m bench.dashboard_list`).
"""

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import redis

from btq.producer.dashboard.list_query import ListQuery
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.events import JobEvent
from btq.schemas.exceptions import DecodeError
from btq.schemas.result import JobResult, JobState

Json = dict[str, Any]

logger = logging.getLogger(__name__)

_BATCH = 500
_FINAL = frozenset(s.value for s in JobState if s.is_final)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def number(value: object) -> float:
    """A number from a record written by anyone: 0.0 when it is missing, not a number or not finite."""
    try:
        parsed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return parsed if math.isfinite(parsed) else 0.0  # NaN or inf would make the JSON answer fail


def _spec_fields(job_id: str, raw: bytes | None) -> Json:
    """The searchable fields of a stored spec: strategy, program name, LM name, metric."""
    if not raw:
        return {}
    try:
        spec = json.loads(raw)
    except ValueError:  # not JSON, not UTF-8
        logger.warning("skipping unreadable spec of job %s", job_id)
        return {}
    if not isinstance(spec, dict):
        return {}
    program = spec.get("program")
    lm = spec.get("lm")
    return {
        "strategy": spec.get("strategy") if isinstance(spec.get("strategy"), str) else None,
        "program": program.get("name") if isinstance(program, dict) else None,
        # A registered LM is a name; an inline one is a LiteLLM spec whose model string is shown.
        "lm": lm if isinstance(lm, str) else (lm.get("model") if isinstance(lm, dict) else None),
        "metric": spec.get("metric") if isinstance(spec.get("metric"), str) else None,
    }


def submitted_fields(entries: list[Any]) -> Json:
    """The submission id and comparison group recorded in the job's first event (`job.submitted`)."""
    if not entries:
        return {}
    _, fields = entries[0]
    raw = {_text(k): v for k, v in fields.items()}.get("event")
    try:
        event = JobEvent.model_validate_json(raw) if raw is not None else None
    except ValueError:
        return {}
    if event is None:
        return {}
    detail = event.detail or {}
    sid, group = detail.get("submission_id"), detail.get("group")
    return {"submission_id": sid if isinstance(sid, str) else None, "group": group if isinstance(group, str) else None}


def _result_fields(job_id: str, raw: bytes | None) -> Json | None:
    """What the list shows of a final result (None while there is none or it is unreadable)."""
    if raw is None:
        return None
    try:
        result = decode(JobResult, raw)
    except DecodeError as exc:
        logger.warning("skipping unreadable result of job %s: %s", job_id, str(exc)[:200])
        return None
    usage = result.usage
    return {
        "state_label": result.state_label,
        "failed_steps": result.failed_steps,
        "best_score": result.best.score if result.best else None,
        "finished_at": result.finished_at,
        "lm_usage": None
        if usage is None
        else {
            "calls": usage.calls,
            "tokens": usage.tokens,
            "cost": usage.cost_text(),
            "cached_calls": usage.cached_calls,
        },
    }


def _status_fields(status: dict[str, str]) -> Json:
    state = status.get("state", "unknown")
    return {
        "state": state,
        "state_label": state,  # until a result says more (`succeeded, 1 step failed`)
        "steps_done": int(number(status.get("steps_done"))),
        "steps_total": int(number(status.get("steps_total"))),
        "submitted_at": number(status.get("submitted_at")),
        "updated_at": number(status.get("updated_at")),
    }


_EMPTY: Json = {
    "strategy": None,
    "program": None,
    "lm": None,
    "metric": None,
    "submission_id": None,
    "group": None,
    "best_score": None,
    "failed_steps": 0,
    "finished_at": None,
    "lm_usage": None,
}
"""A summary's fields until the job's spec, first event and result say otherwise."""


def _chunks(items: list[str], size: int = _BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_state(state: str | None) -> None:
    """Raise ValueError naming the field unless `state` is None or a job state."""
    if state is not None and state not in {s.value for s in JobState}:
        raise ValueError(f"state: {state!r} is not one of {', '.join(s.value for s in JobState)}")


def read_summaries(r: redis.Redis, ids: list[str]) -> list[Json]:
    """Return the summaries of jobs `ids` (pipelined, in order); jobs whose keys expired are left out."""
    found: list[Json] = []
    for chunk in _chunks(ids):
        pipe = r.pipeline(transaction=False)
        for job_id in chunk:
            pipe.hgetall(keys.job_key(job_id, "status"))
            pipe.get(keys.job_key(job_id, "spec"))
            pipe.xrange(keys.job_key(job_id, "events"), count=1)
        values = pipe.execute()
        read: list[Json] = []
        for i, job_id in enumerate(chunk):
            status, spec, first = values[3 * i : 3 * i + 3]
            if not status:  # the index outlives expired jobs (their keys have a TTL): skip those
                continue
            fields = {_text(k): _text(v) for k, v in cast(dict[bytes, bytes], status).items()}
            summary = {"job_id": job_id, **_EMPTY, **_status_fields(fields)}
            summary.update(_spec_fields(job_id, spec))
            summary.update(submitted_fields(first))
            read.append(summary)
        _add_results(r, [j for j in read if j["state"] in _FINAL])
        found += read
    return found


def _add_results(r: redis.Redis, jobs: list[Json]) -> None:
    """Add what the list shows of each final job's result (a job whose result is not readable yet keeps none)."""
    if not jobs:
        return
    raws = cast(list[bytes | None], r.mget([keys.job_key(j["job_id"], "result") for j in jobs]))
    for job, raw in zip(jobs, raws, strict=True):
        fields = _result_fields(job["job_id"], raw)
        if fields is not None:
            job.update(fields)


class JobList:
    """Job summaries newest first, kept in memory and refreshed from Redis before each read.

    Safe to share across threads: one refresh runs at a time, and a refresh younger than `fresh_s`
    is reused by concurrent requests (a page and its event-driven reloads do not each read Redis).
    """

    def __init__(self, r: redis.Redis, recheck_s: float = 10.0, fresh_s: float = 0.2) -> None:
        self.r = r
        self.recheck_s = recheck_s
        self.fresh_s = fresh_s
        self._jobs: dict[str, Json] = {}
        self._order: list[str] = []  # newest first
        self._checked_at: dict[str, float] = {}
        self._absent: dict[str, float] = {}
        self._settled: set[str] = set()  # final, with its result read: never read again, only re-checked
        self._refreshed_at = float("-inf")
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------

    def rows(self, state: str | None = None, limit: int = 200) -> list[Json]:
        """Return up to `limit` jobs newest first, only those in `state` when given."""
        check_state(state)
        found = (j for j in self.refresh() if state is None or j["state"] == state)
        return [dict(row) for _, row in zip(range(limit), found, strict=False)]

    def page(self, query: ListQuery) -> Json:
        """Return one page of the jobs matching `query`, the total, and the count per state."""
        matched = [j for j in self.refresh() if query.matches(j)]
        states: dict[str, int] = {}
        for job in matched:
            states[job["state"]] = states.get(job["state"], 0) + 1
        if query.state is not None:
            matched = [j for j in matched if j["state"] == query.state]
        ordered = query.ordered(matched)
        start = (query.page - 1) * query.per_page
        return {
            "total": len(ordered),
            "page": query.page,
            "per_page": query.per_page,
            "pages": max(1, math.ceil(len(ordered) / query.per_page)),
            "states": states,
            "rows": [dict(j) for j in ordered[start : start + query.per_page]],
        }

    def in_group(self, group: str) -> list[Json]:
        """Return the jobs submitted together under `group` (one `btq compare`), oldest first."""
        return [j for j in reversed(self.refresh()) if j["group"] == group]

    # -- refreshing ------------------------------------------------------------------------------------

    def refresh(self) -> list[Json]:
        """Bring the index up to date and return every job's summary, newest first (do not modify them).

        New jobs are read in full, unfinished ones have their status re-read, final ones are re-checked
        for expiry every `recheck_s`.
        """
        with self._lock:
            if time.monotonic() - self._refreshed_at >= self.fresh_s:
                self._refresh()
            jobs = self._jobs
            # Summaries are replaced, never changed in place, so sharing them with the caller is safe.
            return [jobs[i] for i in self._order if i in jobs]

    def _refresh(self) -> None:
        order = [_text(member) for member in cast(list[bytes], self.r.zrevrange(keys.JOBS_INDEX, 0, -1))]
        now = time.monotonic()
        known = set(order)
        for gone in [j for j in self._jobs if j not in known]:
            self._forget(gone)
        # An id whose keys expired stays in the index until the workers' retention prunes it: look again later.
        self._absent = {j: at for j, at in self._absent.items() if j in known and now - at <= self.recheck_s}
        new = [j for j in order if j not in self._jobs and j not in self._absent]
        running = [j for j in order if j in self._jobs and j not in self._settled]
        stale = [j for j in order if j in self._settled and now - self._checked_at[j] > self.recheck_s]
        self._read_new(new, now)
        self._reread(running, now)
        self._recheck(stale, now)
        self._order = order
        self._refreshed_at = time.monotonic()

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._checked_at.pop(job_id, None)
        self._settled.discard(job_id)

    def _read_new(self, ids: list[str], now: float) -> None:
        found = {j["job_id"]: j for j in read_summaries(self.r, ids)}
        for job_id in ids:
            summary = found.get(job_id)
            if summary is None:
                self._absent[job_id] = now
                continue
            self._jobs[job_id] = summary
            self._checked_at[job_id] = now
            if summary["finished_at"] is not None:
                self._settled.add(job_id)

    def _reread(self, ids: list[str], now: float) -> None:
        """Read again the status of jobs not settled yet, and the result of those that became final."""
        for chunk in _chunks(ids):
            pipe = self.r.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hgetall(keys.job_key(job_id, "status"))
            updated: list[Json] = []
            for job_id, status in zip(chunk, pipe.execute(), strict=True):
                if not status:
                    self._forget(job_id)
                    continue
                fields = {_text(k): _text(v) for k, v in cast(dict[bytes, bytes], status).items()}
                # A new dict, not an update in place: snapshots handed out earlier share the old one.
                updated.append({**self._jobs[job_id], **_status_fields(fields)})
            _add_results(self.r, [j for j in updated if j["state"] in _FINAL])
            for summary in updated:
                self._jobs[summary["job_id"]] = summary
                self._checked_at[summary["job_id"]] = now
                if summary["finished_at"] is not None:
                    self._settled.add(summary["job_id"])

    def _recheck(self, ids: list[str], now: float) -> None:
        for chunk in _chunks(ids):
            pipe = self.r.pipeline(transaction=False)
            for job_id in chunk:
                pipe.exists(keys.job_key(job_id, "status"))
            for job_id, exists in zip(chunk, pipe.execute(), strict=True):
                if exists:
                    self._checked_at[job_id] = now
                else:
                    self._forget(job_id)
