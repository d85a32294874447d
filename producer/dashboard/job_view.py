"""One job as its page shows it: the spec, timings, steps, every candidate's program, usage and held-out scores.

Everything here reads keys documented in docs/redis-layout.md; nothing writes. Only what a person needs is
copied out of stored records (each predictor's instructions, demos and model name; an LM's kwarg names,
not their values), so no setting a worker holds reaches the browser.
"""

import json
import logging
from typing import Any, cast

import redis

from btq.producer.dashboard.job_list import number, submitted_fields
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import DecodeError
from btq.schemas.result import EvaluationReport, JobResult, StepRecord
from btq.schemas.secrets import credential_paths
from btq.schemas.usage import Usage

Json = dict[str, Any]

logger = logging.getLogger(__name__)

_MOST_STEPS = 10_000


def _text(value: bytes | str) -> str:
    # Records are written by anyone who can reach Redis: bytes that are not UTF-8 must not end a page.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def status(r: redis.Redis, job_id: str) -> dict[str, str]:
    """Return the job's status hash as text ({} when Redis does not hold the job)."""
    raw = cast(dict[bytes, bytes], r.hgetall(keys.job_key(job_id, "status")))
    return {_text(k): _text(v) for k, v in raw.items()}


def result(r: redis.Redis, job_id: str) -> JobResult | None:
    """Return the job's stored result; None while it has none or when it cannot be read."""
    raw = r.get(keys.job_key(job_id, "result"))
    if raw is None:
        return None
    try:
        return decode(JobResult, cast(bytes, raw))
    except DecodeError as exc:  # shown as a job without a result, not as a page that fails
        logger.warning("skipping unreadable result of job %s: %s", job_id, str(exc)[:200])
        return None


def spec(r: redis.Redis, job_id: str) -> Json:
    """Return the job's stored spec as JSON ({} when missing or unreadable)."""
    raw = r.get(keys.job_key(job_id, "spec"))
    if raw is None:
        return {}
    try:
        value = json.loads(cast(bytes, raw))
    except ValueError:  # not JSON or not UTF-8: the page shows the job without its spec
        logger.warning("skipping unreadable spec of job %s", job_id)
        return {}
    return value if isinstance(value, dict) else {}


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


def spec_view(data: Json) -> Json:
    """Return the spec as the page shows it: inline examples counted, start states summarized, LM kwargs named.

    A stored spec passed validation (no credentials), yet it is a record anyone who can reach Redis could
    rewrite: any key that looks like a credential is dropped here as well.
    """
    view: Json = {}
    for name, value in data.items():
        if name in ("trainset", "valset") and isinstance(value, list):
            view[name] = {"inline_examples": len(value)}
        elif name == "program" and isinstance(value, dict):
            view[name] = {"name": value.get("name"), "start_state": value.get("state") is not None}
        elif name == "teacher" and value is not None:
            teachers = value if isinstance(value, list) else [value]
            view[name] = [t.get("name") if isinstance(t, dict) else None for t in teachers]
        elif name == "lm" and isinstance(value, dict):
            kwargs = value.get("kwargs") if isinstance(value.get("kwargs"), dict) else {}
            view[name] = {"model": value.get("model"), "kwargs": sorted(kwargs or {})}
        else:
            view[name] = value
    refused = {path for path, _ in credential_paths(view)}
    return _without(view, refused, "") if refused else view


def _without(value: Any, paths: set[str], where: str) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, sub in value.items():
            at = f"{where}.{key}" if where else str(key)
            if at not in paths:
                kept[key] = _without(sub, paths, at)
        return kept
    if isinstance(value, list):
        return [_without(v, paths, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def usage_view(usage: Usage | None) -> Json | None:
    """LM usage as the page shows it: the counters, tokens, and the cost as text (`unknown` if unpriced)."""
    if usage is None:
        return None
    return {**usage.model_dump(mode="json"), "tokens": usage.tokens, "cost": usage.cost_text()}


def _step(record: StepRecord) -> Json:
    return {
        "index": record.index,
        "strategy": record.strategy,
        "outcome": record.outcome.value,
        "score": record.score,
        "worker": record.worker,
        "attempt": record.attempt,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_s": round(record.finished_at - record.started_at, 3),
        "timings_s": {k: round(v, 3) for k, v in record.timings_s.items()},
        "error": record.error.model_dump() if record.error else None,
        "usage": usage_view(record.usage),
    }


def steps(r: redis.Redis, job_id: str, steps_total: int) -> list[Json]:
    """Return the job's stored step records, in order (a status hash anyone rewrote reads at most 10,000)."""
    count = min(steps_total, _MOST_STEPS) + 1
    raws = cast(list[bytes | None], r.mget([keys.step_key(job_id, i) for i in range(count)]))
    found = []
    for index, raw in enumerate(raws):
        if raw is None:
            continue
        try:
            found.append(_step(decode(StepRecord, raw)))
        except DecodeError as exc:
            logger.warning("skipping unreadable step %d of job %s: %s", index, job_id, str(exc)[:200])
    return found


def held_out(r: redis.Redis, job_id: str) -> list[Json]:
    """Return the job's stored held-out evaluations: dataset, split, step index -> score, error."""
    raw = cast(dict[bytes, bytes], r.hgetall(keys.held_out_key(job_id)))
    reports = []
    for _, value in sorted(raw.items()):
        try:
            reports.append(decode(EvaluationReport, value))
        except DecodeError as exc:
            logger.warning("skipping unreadable held-out report of job %s: %s", job_id, str(exc)[:200])
    return [
        {
            "dataset": rep.dataset,
            "split": rep.split,
            "scores": rep.scores,
            "error": rep.error.model_dump() if rep.error else None,
        }
        for rep in reports
    ]


def timings(submitted_at: float, step_rows: list[Json], finished_at: float | None) -> Json:
    """The job's clock: waiting in the queue, wall time from its first step to its result, compute time."""
    started = min((s["started_at"] for s in step_rows), default=None)
    return {
        "submitted_at": submitted_at,
        "started_at": started,
        "finished_at": finished_at,
        "queued_s": round(started - submitted_at, 3) if started is not None and submitted_at else None,
        "wall_s": round(finished_at - started, 3) if started is not None and finished_at is not None else None,
        "compute_s": round(sum(s["duration_s"] for s in step_rows), 3),
    }


def _candidates(done: JobResult, test: Json | None) -> list[Json]:
    best = done.best.step_index if done.best else None
    rows = []
    for rank, c in enumerate(done.candidates, 1):
        rows.append(
            {
                "rank": rank,
                "strategy": c.strategy,
                "score": c.score,
                "step_index": c.step_index,
                "test_score": test["scores"].get(str(c.step_index)) if test else None,
                "best": c.step_index == best,
                "final": c.strategy == done.strategy,
                "program": program_view(c.program_state),
            }
        )
    return rows


def job_detail(r: redis.Redis, job_id: str) -> Json | None:
    """Return everything the job page shows; None if Redis does not hold the job."""
    found = status(r, job_id)
    if not found:
        return None
    stored = spec(r, job_id)
    steps_total = int(number(found.get("steps_total")))
    step_rows = steps(r, job_id, steps_total)
    done = result(r, job_id)
    reports = held_out(r, job_id)
    state = found.get("state", "unknown")
    submitted = submitted_fields(cast(list[Any], r.xrange(keys.job_key(job_id, "events"), count=1)))
    detail: Json = {
        "job_id": job_id,
        "state": state,
        "state_label": done.state_label if done else state,
        "failed_steps": done.failed_steps if done else 0,
        "strategy": stored.get("strategy"),
        "submission_id": submitted.get("submission_id"),
        "group": submitted.get("group"),
        "best_score": done.best.score if done and done.best else None,
        "steps_done": int(number(found.get("steps_done"))),
        "steps_total": steps_total,
        "submitted_at": number(found.get("submitted_at")),
        "updated_at": number(found.get("updated_at")),
        "spec": spec_view(stored),
        "steps": step_rows,
        "timings": timings(number(found.get("submitted_at")), step_rows, done.finished_at if done else None),
        "cancel_requested": bool(r.exists(keys.job_key(job_id, "cancel"))),
        "result": None,
    }
    if done is not None:
        detail["result"] = {
            "state": done.state.value,
            "flag_compilation_error_occurred": done.flag_compilation_error_occurred,
            "error": done.error.model_dump() if done.error else None,
            "candidates": _candidates(done, reports[0] if reports else None),
            "best_step_index": done.best.step_index if done.best else None,
            "held_out": reports,
            "best_program": program_view(done.best.program_state) if done.best else [],
            "usage": usage_view(done.usage),
        }
    return detail
