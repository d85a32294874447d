"""A dspy callback on every LM request of this process: counts it and, when tracing, wraps it in a span.

Installed once per worker process (`install`); it sees cache hits too (dspy calls callbacks around
`BaseLM.__call__`, outside the cache), so `lm_requests` counts what programs asked for and the cache's
own counters say how many were answered without a call.
"""

import sys
import threading
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from btq.schemas.metrics import WorkerCount
from btq.worker.core import tracing
from btq.worker.core.tally import TALLY


class LMObserver(BaseCallback):  # type: ignore[misc]
    """Counts LM requests and errors; opens a `btq.lm_call` span per request when tracing."""

    def __init__(self) -> None:
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Open the request's span (a no-op when not tracing)."""
        handle = tracing.start_span("btq.lm_call", **{"gen_ai.request.model": getattr(instance, "model", None)})
        if handle is not None:
            with self._lock:
                self._spans[call_id] = handle

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """Count the request (and its error) and close its span."""
        TALLY.add(WorkerCount.LM_REQUESTS)
        if exception is not None:
            TALLY.add(WorkerCount.LM_ERRORS)
        with self._lock:
            handle = self._spans.pop(call_id, None)
        tracing.end_span(handle, exception)


def install() -> None:
    """Add the observer to dspy's process-wide callbacks once (any thread may call this).

    dspy lets only its first configuring thread call `dspy.configure`, and a pool's task thread may not be
    that thread: the callback goes into the process-wide settings directly, before any task's context.
    """
    # The module (its name is shadowed by the `settings` object in its package): the process-wide config.
    config = sys.modules["dspy.dsp.utils.settings"].main_thread_config
    callbacks = list(config.get("callbacks") or [])
    if not any(isinstance(cb, LMObserver) for cb in callbacks):
        config["callbacks"] = [*callbacks, LMObserver()]
    assert dspy.settings.callbacks is not None
