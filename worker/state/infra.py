"""Infrastructure failures during a step are never scored: they make the step retryable, not failed.

dspy's `Evaluate` counts an exception raised by a metric as a failed example, and optimizers record
failing steps. A Redis error inside the cancel check (called from the metric wrapper) would thus turn
into a wrong score. `InfraWatch` wraps the cancel check: on a Redis error it remembers the failure and
answers "cancelled", so evaluation stops at once; after the step, `raise_if_infra_failed` raises
`RetryableStepError` instead of letting that record be stored. The step task then ends without a record,
its lease lapses, and the sweeper re-drives it once Redis is back.
"""

import logging
from collections.abc import Callable

import redis

from btq.schemas.exceptions import RetryableStepError
from btq.schemas.result import StepRecord

log = logging.getLogger(__name__)

INFRA_ERROR_TYPES = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "RedisError", "ReadOnlyError"})
"""Error type names in a step record that mean the store was unreachable, not that the step failed."""


_current: list["InfraWatch"] = []


def report_failure(exc: BaseException) -> None:
    """Tell the running step that the store failed under it (e.g. a Redis-backed cache inside an LM call).

    Code that swallows such an error (so dspy would score a failed example) calls this; the step then
    ends as retryable instead of being recorded. Outside a step it does nothing.
    """
    if _current:
        _current[-1].failure = _current[-1].failure or exc


class InfraWatch:
    """Remembers whether Redis failed while a step ran; use as a context manager around the step."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None

    def __enter__(self) -> "InfraWatch":
        _current.append(self)  # process-wide: dspy's threads do not inherit context variables
        return self

    def __exit__(self, *_: object) -> None:
        _current.remove(self)

    def check(self, is_cancelled: Callable[[], bool]) -> Callable[[], bool]:
        """Wrap a cancel check: a Redis error stops the step (answers True) and is remembered."""

        def checked() -> bool:
            if self.failure is not None:
                return True
            try:
                return is_cancelled()
            except redis.RedisError as exc:
                log.warning("Redis unavailable during a step (%s): stopping it for a retry", exc)
                self.failure = exc
                return True

        return checked

    def raise_if_infra_failed(self, record: StepRecord) -> None:
        """Raise RetryableStepError when Redis failed during the step that produced `record`.

        Raises:
            RetryableStepError: The record reflects an outage, not the step; it must not be stored.
        """
        if self.failure is not None:
            raise RetryableStepError(f"Redis failed during step {record.index}: {self.failure}") from self.failure
        error = record.error
        if error is not None and error.type in INFRA_ERROR_TYPES and "redis" in (error.traceback or ""):
            raise RetryableStepError(f"step {record.index} failed on the store: {error.message}")
