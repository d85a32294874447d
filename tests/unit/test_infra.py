"""A Redis error while a step runs makes the step retryable; it never becomes a score or a failure record."""

import pytest
import redis

from btq.schemas.errors import ErrorRecord
from btq.schemas.exceptions import RetryableStepError
from btq.schemas.result import StepOutcome, StepRecord
from btq.worker.state.infra import InfraWatch, report_failure


def _record(error: ErrorRecord | None = None) -> StepRecord:
    return StepRecord(
        index=1, strategy="p", optimizer_key="p", outcome=StepOutcome.CANCELLED if error is None else StepOutcome.FAILED,
        rng_state=[], train_order=[], worker="w", attempt=1, started_at=0.0, finished_at=0.0, error=error,
    )  # fmt: skip


def _unreachable() -> bool:
    raise redis.ConnectionError("Connection refused")


def test_a_redis_error_in_the_cancel_check_stops_the_step_and_makes_it_retryable() -> None:
    watch = InfraWatch()
    check = watch.check(_unreachable)

    assert check() is True, "evaluation stops at once"
    with pytest.raises(RetryableStepError, match="Connection refused"):
        watch.raise_if_infra_failed(_record())


def test_a_failure_reported_from_inside_the_step_makes_it_retryable() -> None:
    with InfraWatch() as watch:
        report_failure(redis.ConnectionError("cache unreachable"))
    with pytest.raises(RetryableStepError):
        watch.raise_if_infra_failed(_record())
    report_failure(redis.ConnectionError("outside a step: ignored"))


def test_a_step_that_failed_on_redis_is_retryable_but_an_ordinary_failure_is_recorded() -> None:
    try:
        _unreachable()
    except redis.ConnectionError as exc:
        on_redis = ErrorRecord.from_exception(exc)
    with pytest.raises(RetryableStepError):
        InfraWatch().raise_if_infra_failed(_record(on_redis))
    InfraWatch().raise_if_infra_failed(_record(ErrorRecord(type="ValueError", message="bad optimizer kwargs")))
    InfraWatch().raise_if_infra_failed(_record(ErrorRecord(type="TimeoutError", message="LM call timed out")))
