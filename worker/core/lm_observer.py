"""Every LM request of this process is counted and, when tracing, wrapped in a span.

Installed once per worker process (`install`). The count (`lm_requests`, `lm_errors`) comes from the
metering wrapper of dspy's `execute` (`btq.worker.core.metering`), which sees cache hits too, so
`lm_requests` counts what programs asked for and the cache's own counters say how many were answered
without a call. The span needs a dspy callback, and any callback makes dspy inspect the arguments of
every module, adapter and LM call: it is added only when tracing is on.
"""

import sys
import threading
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from btq.worker.core import metering, tracing


class LMObserver(BaseCallback):  # type: ignore[misc]
    """Opens a `btq.lm_call` span per request (tracing only)."""

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
        """Close the request's span."""
        with self._lock:
            handle = self._spans.pop(call_id, None)
        tracing.end_span(handle, exception)


def install(spans: bool) -> None:
    """Count every LM request; with `spans`, add the observer to dspy's process-wide callbacks once.

    Any thread may call this: dspy lets only its first configuring thread call `dspy.configure`, and a pool's task thread may not be
    that thread: the callback goes into the process-wide settings directly, before any task's context.
    """
    metering.install()
    if not spans:
        return
    # The module (its name is shadowed by the `settings` object in its package): the process-wide config.
    config = sys.modules["dspy.dsp.utils.settings"].main_thread_config
    callbacks = list(config.get("callbacks") or [])
    if not any(isinstance(cb, LMObserver) for cb in callbacks):
        config["callbacks"] = [*callbacks, LMObserver()]
    assert dspy.settings.callbacks is not None
