"""`btq jobs`: the jobs index as a table or JSON lines, newest first, with a failed step marked."""

import json
import sys
import time
from typing import Any, TextIO, cast

import redis

from btq.producer.cli.exit_codes import ExitCode
from btq.producer.dashboard.reader import list_jobs
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import DecodeError
from btq.schemas.result import JobResult


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _label(r: redis.Redis, rows: list[dict[str, Any]]) -> None:
    """Add `state_label` and `failed_steps` to each row: `succeeded, 1 step failed` for a flagged job."""
    raws = cast(list[bytes | None], r.mget([keys.job_key(row["job_id"], "result") for row in rows])) if rows else []
    for row, raw in zip(rows, raws, strict=True):
        row["state_label"], row["failed_steps"] = row["state"], 0
        if raw is None:
            continue
        try:
            result = decode(JobResult, raw)
        except DecodeError:  # an unreadable result still lists the job by its state
            continue
        row["state_label"], row["failed_steps"] = result.state_label, result.failed_steps


def print_jobs(
    r: redis.Redis, *, state: str | None, limit: int, as_json: bool, strict: bool = False, out: TextIO = sys.stdout
) -> int:
    """Print jobs (optionally only those in `state`); return the exit code (`strict`: see ExitCode)."""
    rows = list_jobs(r, state=state, limit=limit)
    _label(r, rows)
    if as_json:
        for row in rows:
            print(json.dumps(row), file=out)
    elif not rows:
        print("no jobs" + (f" in state {state}" if state else ""), file=out)
    else:
        _table(rows, out)
        total = int(r.zcard(keys.JOBS_INDEX))
        shown = f"{len(rows)} of {total} jobs" + (f" ({len(rows)} in state {state} among the newest)" if state else "")
        more = f"; --limit {min(total, limit * 4)} shows more" if len(rows) == limit and total > limit else ""
        print(shown + more, file=out)
    if strict and any(row["state"] in ("failed", "cancelled") for row in rows):
        return ExitCode.JOB_NOT_SUCCEEDED
    if strict and any(row["failed_steps"] for row in rows):
        return ExitCode.STEP_FAILED
    return ExitCode.OK


def _table(rows: list[dict[str, Any]], out: TextIO) -> None:
    now = time.time()
    width = max(9, *(len(row["state_label"]) for row in rows))
    print(f"{'job':<32}  {'state':<{width}}  {'steps':>5}  {'best':>6}  {'age':>4}  {'cost':>13}  strategy", file=out)
    for row in rows:
        best = "-" if row["best_score"] is None else f"{row['best_score']:.2f}"
        steps = f"{row['steps_done']}/{row['steps_total']}"
        age = _age(now - row["submitted_at"])
        spent = row.get("lm_usage")
        cost = spent["cost"] if isinstance(spent, dict) else "-"
        print(
            f"{row['job_id']:<32}  {row['state_label']:<{width}}  {steps:>5}  {best:>6}  {age:>4}  {cost:>13}  "
            f"{row['strategy']}",
            file=out,
        )
