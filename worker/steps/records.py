"""Step records of steps that did not run (skipped, cancelled, lost, stalled, or a bug escaped them)."""

import time

from btq.schemas.errors import ErrorRecord
from btq.schemas.job import JobSpec
from btq.schemas.result import StepOutcome, StepRecord


def record_without_running(
    spec: JobSpec,
    index: int,
    previous: StepRecord | None,
    outcome: StepOutcome,
    *,
    worker: str | None,
    attempt: int,
    error: ErrorRecord | None,
) -> StepRecord:
    """Return the record of step `index` ending with `outcome` without a candidate.

    The generator state and trainset order are the previous step's, unchanged, as in a step that stops
    before shuffling.
    """
    now = time.time()
    return StepRecord(
        index=index,
        strategy=spec.strategy_prefix(index),
        optimizer_key=spec.steps()[index - 1] if index else None,
        outcome=outcome,
        rng=previous.rng if previous else None,
        rng_state=previous.rng_state if previous else [],
        train_order=previous.train_order if previous else [],
        worker=worker,
        attempt=attempt,
        started_at=now,
        finished_at=now,
        error=error,
    )
