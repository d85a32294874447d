"""Validation evaluation, exactly as `BetterTogether._evaluate_on_valset` does it."""

import random
import time
from collections.abc import Callable
from typing import Any

import dspy
from dspy.evaluate import Evaluate
from dspy.teleprompt.utils import eval_candidate_program

from btq.schemas.exceptions import BtqError


class CancelledDuringEvaluation(BtqError):
    """Raised inside the metric when the job was cancelled; Evaluate counts it as an error."""


def polled(check: Callable[[], bool], interval_s: float) -> Callable[[], bool]:
    """Wrap a cancel check so it asks Redis at most once per `interval_s` (it is called per example)."""
    last = {"at": 0.0, "value": False}

    def polled_check() -> bool:
        now = time.monotonic()
        if not last["value"] and now - last["at"] >= interval_s:
            last["at"], last["value"] = now, check()
        return bool(last["value"])

    return polled_check


def cancellable(metric: Callable[..., Any], is_cancelled: Callable[[], bool]) -> Callable[..., Any]:
    """Wrap `metric` so a cancelled job stops scoring (the score is then discarded by the runner)."""

    def wrapped(example: Any, prediction: Any, trace: Any = None) -> Any:
        if is_cancelled():
            raise CancelledDuringEvaluation("job cancelled")
        return metric(example, prediction, trace)

    # Lets the shard planner see which registered metric this wraps (see worker/sharding/plan.py).
    wrapped.__btq_metric__ = getattr(metric, "__btq_metric__", metric)  # type: ignore[attr-defined]
    return wrapped


def evaluate_on_valset(
    program: dspy.Module,
    valset: list[dspy.Example] | None,
    metric: Callable[..., Any],
    rng: random.Random,
    *,
    num_threads: int | None,
    max_errors: int | None,
    provide_traceback: bool | None,
) -> float | None:
    """Return the percentage score on the whole valset (2 decimals), or None without a valset."""
    if valset is None or len(valset) == 0:
        return None
    evaluate = Evaluate(
        devset=valset,
        metric=metric,
        num_threads=num_threads,
        max_errors=max_errors,
        display_table=False,
        display_progress=False,
        provide_traceback=provide_traceback,
    )
    score: float = eval_candidate_program(len(valset), valset, program, evaluate, rng).score
    return score
