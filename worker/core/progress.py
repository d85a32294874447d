"""Progress reports from inside a step (fine-tuning loss, for example) as `step.progress` events.

The step service installs a reporter for the duration of a step; code deep inside an optimizer or a
provider calls `report(...)` without knowing about Redis. Outside a step, reports go nowhere.
"""

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Reporter = Callable[[dict[str, Any]], None]

_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("btq_progress", default=None)
_global: list[Reporter] = []


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route `report` calls made while the block runs (in any thread) to `reporter`."""
    token = _reporter.set(reporter)
    _global.append(reporter)
    try:
        yield
    finally:
        _global.remove(reporter)
        _reporter.reset(token)


def report(**detail: Any) -> None:
    """Report progress of the running step, e.g. `report(phase="finetune", step=3, loss=1.2)`.

    Threads started by dspy (fine-tuning jobs run in their own thread) do not inherit context
    variables, so the reporter of the one step a worker process runs is used as a fallback.
    """
    reporter = _reporter.get() or (_global[-1] if _global else None)
    if reporter is not None:
        reporter(detail)
