"""Scoring a list of examples with `dspy.Evaluate`'s per-example semantics, keeping each outcome.

`dspy.Evaluate` runs `program(**example.inputs())` then `metric(example, prediction)` in dspy's
`ParallelExecutor`, counts exceptions against `max_errors` and raises once they reach it. A shard does the
same on its slice and keeps every example's prediction, score or error, so the step that combines the
shards can rebuild exactly what one `Evaluate` call over the whole set returns.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy
import redis
from dspy.utils.parallelizer import ParallelExecutor

from btq.schemas.exceptions import BtqError, RetryableStepError
from btq.worker.state.infra import report_failure

EXECUTOR_ABORT_MESSAGE = "Execution cancelled due to errors or interruption."
"""What dspy's ParallelExecutor raises once errors reach max_errors (raised again when shards add up to it)."""

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, RetryableStepError)
"""Errors of our own infrastructure: never counted as an example's failure."""


class EvaluationCancelled(BtqError):
    """Raised when the job was cancelled while its examples were being scored."""


@dataclass
class Outcome:
    """One example's result: `(prediction, score)`, or the error its program or metric raised."""

    prediction: Any = None
    score: Any = None
    error: str | None = None


@dataclass
class ScoredSlice:
    """Outcomes of a slice of examples, in order; `aborted` when its own errors reached max_errors."""

    outcomes: list[Outcome]
    aborted: bool


def score_examples(
    program: dspy.Module,
    examples: list[dspy.Example],
    metric: Callable[..., Any],
    *,
    num_threads: int | None,
    max_errors: int,
    provide_traceback: bool | None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> ScoredSlice:
    """Score `examples` as `dspy.Evaluate` would, returning each outcome instead of a total.

    Raises:
        EvaluationCancelled: the job was cancelled while scoring.
        RetryableStepError: an infrastructure error (Redis) happened; no outcome is trustworthy.
    """
    infrastructure: list[BaseException] = []

    def process_item(example: dspy.Example) -> tuple[Any, Any]:
        if is_cancelled():
            raise EvaluationCancelled("job cancelled")
        try:
            prediction = program(**example.inputs())
            score = metric(example, prediction)
        except INFRASTRUCTURE_ERRORS as exc:
            infrastructure.append(exc)
            raise
        return prediction, score

    executor = ParallelExecutor(
        num_threads=num_threads,
        max_errors=max_errors,
        disable_progress_bar=True,
        provide_traceback=provide_traceback,
        compare_results=True,
    )
    aborted = False
    results: list[Any] = [None] * len(examples)
    try:
        results = executor.execute(process_item, examples)
    except Exception as exc:
        if str(exc) != EXECUTOR_ABORT_MESSAGE:
            raise
        aborted = True
    if is_cancelled():
        raise EvaluationCancelled("job cancelled")
    if infrastructure:
        report_failure(infrastructure[0])  # the step ends retryable, never with this evaluation's score
        raise RetryableStepError(f"infrastructure error while scoring: {infrastructure[0]!r}") from infrastructure[0]
    outcomes = []
    for position, result in enumerate(results):
        if result is None:
            error = executor.exceptions_map.get(position)
            outcomes.append(Outcome(error=repr(error) if error is not None else "not run"))
        else:
            outcomes.append(Outcome(prediction=result[0], score=result[1]))
    return ScoredSlice(outcomes=outcomes, aborted=aborted)
