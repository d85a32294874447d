"""Readable task labels: what Flower and `celery events` show instead of a task's raw arguments.

Sent as the message's `argsrepr` (Celery protocol 2), so monitoring names the job, the step and the
strategy; the arguments themselves stay the job id and step index the worker reads.
"""

from btq.schemas.job import STRATEGY_SEPARATOR


def step_label(job_id: str, index: int, steps: list[str]) -> str:
    """Return e.g. `job 1c95ab12 step 3/3 p -> w -> p` (step 0 is the baseline)."""
    done = STRATEGY_SEPARATOR.join(steps[:index]) if index else "baseline"
    return f"job {job_id[:8]} step {index}/{len(steps)} {done}"


def finalize_label(job_id: str, steps: list[str]) -> str:
    """Return e.g. `job 1c95ab12 finalize p -> w -> p`."""
    return f"job {job_id[:8]} finalize {STRATEGY_SEPARATOR.join(steps)}"


def shard_label(job_id: str, eval_id: str) -> str:
    """Return e.g. `job 1c95ab12 shards of evaluation 3f0e9a71`."""
    return f"job {job_id[:8]} shards of evaluation {eval_id[:8]}"
