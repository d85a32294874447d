"""`btq jobs`: the jobs index as a table or JSON lines, newest first."""

import json
import sys
import time
from typing import TextIO

import redis

from btq.producer.dashboard.reader import list_jobs


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def print_jobs(r: redis.Redis, *, state: str | None, limit: int, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print jobs (optionally only those in `state`); return the exit code."""
    rows = list_jobs(r, state=state, limit=limit)
    if as_json:
        for row in rows:
            print(json.dumps(row), file=out)
        return 0
    if not rows:
        print("no jobs" + (f" in state {state}" if state else ""), file=out)
        return 0
    now = time.time()
    print(f"{'job':<32}  {'state':<9}  {'steps':>5}  {'best':>6}  {'age':>4}  {'cost':>13}  strategy", file=out)
    for row in rows:
        best = "-" if row["best_score"] is None else f"{row['best_score']:.2f}"
        steps = f"{row['steps_done']}/{row['steps_total']}"
        age = _age(now - row["submitted_at"])
        spent = row.get("lm_usage")
        cost = spent["cost"] if isinstance(spent, dict) else "-"
        print(
            f"{row['job_id']:<32}  {row['state']:<9}  {steps:>5}  {best:>6}  {age:>4}  {cost:>13}  {row['strategy']}",
            file=out,
        )
    return 0
