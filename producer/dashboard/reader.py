"""Read-only views of the Redis layout for the dashboard: jobs, one job, workers.

Everything here reads keys documented in README.md ("Redis layout"); nothing writes. Values are
returned as plain JSON-ready dicts so the HTML pages and the JSON API show the same thing.
"""

import json
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import redis

from btq.producer.dashboard.job_list import JobList, number
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.event_entry import event_from_entry
from btq.schemas.events import EventType, JobEvent
from btq.schemas.exceptions import DecodeError
from btq.schemas.result import EvaluationReport, JobResult, StepRecord
from btq.schemas.usage import Usage

Json = dict[str, Any]

logger = logging.getLogger(__name__)

_MOST_STEPS = 10_000

_STEP_END = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED}


def _text(value: bytes | str) -> str:
    # Records are written by anyone who can reach Redis: bytes that are not UTF-8 must not end a page.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _status(r: redis.Redis, job_id: str) -> dict[str, str]:
    raw = cast(dict[bytes, bytes], r.hgetall(keys.job_key(job_id, "status")))
    return {_text(k): _text(v) for k, v in raw.items()}


def _result(r: redis.Redis, job_id: str) -> JobResult | None:
    raw = r.get(keys.job_key(job_id, "result"))
    if raw is None:
        return None
    try:
        return decode(JobResult, cast(bytes, raw))
    except DecodeError as exc:  # shown as a job without a result, not as a page that fails
        logger.warning("skipping unreadable result of job %s: %s", job_id, str(exc)[:200])
        return None


def _spec(r: redis.Redis, job_id: str) -> Json:
    raw = r.get(keys.job_key(job_id, "spec"))
    if raw is None:
        return {}
    try:
        value = json.loads(cast(bytes, raw))
    except ValueError:  # not JSON or not UTF-8: the page shows the job without its spec
        logger.warning("skipping unreadable spec of job %s", job_id)
        return {}
    return value if isinstance(value, dict) else {}


def job_row(r: redis.Redis, job_id: str) -> Json | None:
    """Return one line of the jobs list, or None when the job's keys expired."""
    status = _status(r, job_id)
    if not status:
        return None
    result = _result(r, job_id)
    best = result.best.score if result and result.best else None
    return {
        "job_id": job_id,
        "state": status.get("state", "unknown"),
        "strategy": _spec(r, job_id).get("strategy"),
        "steps_done": int(number(status.get("steps_done"))),
        "steps_total": int(number(status.get("steps_total"))),
        "best_score": best,
        "submitted_at": number(status.get("submitted_at")),
        "updated_at": number(status.get("updated_at")),
    }


def list_jobs(r: redis.Redis, state: str | None = None, limit: int = 200) -> list[Json]:
    """Return jobs newest first, optionally only those in `state` (a one-off read; see JobList)."""
    return JobList(r).rows(state, limit)


def program_view(state: Json) -> list[Json]:
    """Return each predictor's instructions, demos and model name from a `dump_state()`; nothing else.

    Only these fields are copied, so LM kwargs (which could carry a provider setting) are never shown.
    """
    predictors: list[Json] = []
    # A program that is itself one predictor (dspy.Predict) dumps its fields at the top level.
    parts = {"self": state} if "signature" in state else state
    for name, part in parts.items():
        if not isinstance(part, dict) or "signature" not in part:
            continue
        signature = part.get("signature") or {}
        lm = part.get("lm") if isinstance(part.get("lm"), dict) else {}
        predictors.append(
            {
                "name": name,
                "instructions": signature.get("instructions", "") if isinstance(signature, dict) else "",
                "demos": [d for d in part.get("demos", []) if isinstance(d, dict)],
                "model": (lm or {}).get("model"),
            }
        )
    return predictors


def _step(record: StepRecord) -> Json:
    return {
        "index": record.index,
        "strategy": record.strategy,
        "outcome": record.outcome.value,
        "score": record.score,
        "worker": record.worker,
        "attempt": record.attempt,
        "duration_s": round(record.finished_at - record.started_at, 3),
        "error": record.error.model_dump() if record.error else None,
        "usage": _usage(record.usage),
    }


def job_detail(r: redis.Redis, job_id: str) -> Json | None:
    """Return a job's status, stored steps, ranked candidates and best program; None if unknown."""
    row = job_row(r, job_id)
    if row is None:
        return None
    spec = _spec(r, job_id)
    steps = []
    # A status hash anyone rewrote must not make one page read a billion keys.
    for index in range(min(row["steps_total"], _MOST_STEPS) + 1):
        raw = r.get(keys.step_key(job_id, index))
        if raw is not None:
            steps.append(_step(decode(StepRecord, cast(bytes, raw))))
    result = _result(r, job_id)
    detail: Json = {
        **row,
        "spec": {k: spec.get(k) for k in ("program", "lm", "metric", "strategy", "seed")},
        "steps": steps,
        "cancel_requested": bool(r.exists(keys.job_key(job_id, "cancel"))),
        "result": None,
    }
    if result is not None:
        detail["result"] = {
            "state": result.state.value,
            "flag_compilation_error_occurred": result.flag_compilation_error_occurred,
            "error": result.error.model_dump() if result.error else None,
            "candidates": [
                {"rank": rank, "strategy": c.strategy, "score": c.score, "step_index": c.step_index}
                for rank, c in enumerate(result.candidates, 1)
            ],
            "best_step_index": result.best.step_index if result.best else None,
            "held_out": _held_out(r, job_id),
            "best_program": program_view(result.best.program_state) if result.best else [],
            "usage": _usage(result.usage),
        }
    return detail


def _usage(usage: Usage | None) -> Json | None:
    """LM usage as the job page shows it: the counters, tokens, and the cost as text (`unknown` if unpriced)."""
    if usage is None:
        return None
    return {**usage.model_dump(mode="json"), "tokens": usage.tokens, "cost": usage.cost_text()}


def _held_out(r: redis.Redis, job_id: str) -> list[Json]:
    """Return the job's stored held-out evaluations: dataset, split, step index -> score, error."""
    raw = cast(dict[bytes, bytes], r.hgetall(keys.held_out_key(job_id)))
    reports = [decode(EvaluationReport, value) for _, value in sorted(raw.items())]
    return [
        {
            "dataset": rep.dataset,
            "split": rep.split,
            "scores": rep.scores,
            "error": rep.error.model_dump() if rep.error else None,
        }
        for rep in reports
    ]


def running_steps(events: Iterable[JobEvent]) -> dict[str, list[Json]]:
    """Return worker name -> steps it started and has not finished, from events oldest first."""
    open_steps: dict[tuple[str, int], JobEvent] = {}
    for event in events:
        if event.type is EventType.STEP_STARTED and event.step_index is not None:
            open_steps[(event.job_id, event.step_index)] = event
        elif event.type in _STEP_END and event.step_index is not None:
            open_steps.pop((event.job_id, event.step_index), None)
        elif event.type.is_terminal:
            open_steps = {k: v for k, v in open_steps.items() if k[0] != event.job_id}
    running: dict[str, list[Json]] = {}
    for (job_id, index), event in open_steps.items():
        # Events name the worker process ("name@host:pid"); manifests name the worker ("name@host").
        worker = (event.worker or "?").rsplit(":", 1)[0]
        running.setdefault(worker, []).append(
            {"job_id": job_id, "step_index": index, "strategy": event.strategy, "since": event.at}
        )
    return running


def _recent_events(r: redis.Redis, count: int) -> list[JobEvent]:
    entries = cast(list[Any], r.xrevrange(keys.GLOBAL_EVENTS, count=count))
    events = (event_from_entry(keys.GLOBAL_EVENTS, eid, data) for eid, data in reversed(entries))
    return [event for event in events if event is not None]


def _registered(info: Json) -> Json:
    return {k: info[k] for k in ("programs", "metrics", "lms", "datasets") if k in info}


def worker_entries(r: redis.Redis) -> list[Json]:
    """Return what workers published: each live worker's `btq:worker:<name>:manifest`.

    Per-worker keys may be JSON strings or hashes; whichever fields they carry (`worker`/`name`,
    `published_at`, `heartbeat_at`, registered names) are kept, so new fields need no change here.
    """
    found: dict[str, Json] = {}
    for key in cast(Iterable[bytes], r.scan_iter(match=keys.worker_key("*", "manifest"), count=500)):
        info = _read_worker_key(r, _text(key))
        if info is None:
            continue
        name = str(info.get("worker") or info.get("name") or _text(key).split(":")[2])
        found[name] = {**found.get(name, {}), "source": _text(key), **info}
    return [{"worker": name, **info} for name, info in sorted(found.items())]


def _read_worker_key(r: redis.Redis, key: str) -> Json | None:
    kind = _text(cast(bytes, r.type(key)))
    if kind == "string":
        try:
            value = json.loads(cast(bytes, r.get(key)))
        except (TypeError, ValueError):  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            logger.warning("skipping unreadable worker record %s: not JSON", key)
            return None
        if not isinstance(value, dict):
            logger.warning("skipping unreadable worker record %s: not a JSON object", key)
            return None
        return value
    if kind == "hash":
        return {_text(k): _text(v) for k, v in cast(dict[bytes, bytes], r.hgetall(key)).items()}
    return None


def list_workers(r: redis.Redis, scan_events: int = 2000, live: set[str] | None = None) -> list[Json]:
    """Return each known worker with what it registered, when it was last heard of, and what it runs.

    `live` is the set of worker names that answered a ping just now (None: not asked); workers that
    answered but published nothing readable are listed too.
    """
    running = running_steps(_recent_events(r, scan_events))
    now = time.time()
    workers = []
    entries = worker_entries(r)
    # A heartbeat record says how long it is good for; one that says nothing proves nothing either way.
    beating = {info["worker"] for info in entries if number(info.get("expires_at")) > now}
    timed = {info["worker"] for info in entries if number(info.get("expires_at")) > 0}
    alive = (live or set()) | beating
    known = {info["worker"] for info in entries}
    entries += [{"worker": name, "source": "ping"} for name in sorted(alive - known)]
    for info in entries:
        name = info["worker"]
        seen = number(info.get("heartbeat_at") or info.get("published_at"))
        workers.append(
            {
                "worker": name,
                "source": info.get("source"),
                "live": name in alive if live is not None or name in timed else None,
                "slots": int(number(info.get("pool_size"))) or None,
                "last_seen_s_ago": round(now - float(seen), 1) if seen else None,
                "registered": _registered(info),
                "running": running.pop(name, []),
            }
        )
    # Steps started by workers that published nothing we can read still show up.
    workers += [
        {
            "worker": n,
            "source": "events",
            "live": None,
            "slots": None,
            "last_seen_s_ago": None,
            "registered": {},
            "running": s,
        }
        for n, s in running.items()
    ]
    return workers
