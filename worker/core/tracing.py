"""Spans for the work inside a task (evaluation, shard, LM call), when OpenTelemetry is installed.

A facade over `opentelemetry.trace`: without the `otel` extra, or with no tracer provider configured
(`BTQ_OTEL_EXPORTER` unset), `span()` costs one function call and records nothing. The provider, the
exporters and the task spans that carry trace context between workers live in `worker/celery/tracing.py`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace as _trace
except ImportError:  # the optional extra is not installed
    _trace = None  # type: ignore[assignment]

TRACER_NAME = "btq"


class _State:
    """This process's tracing switch and the running task's context (one task at a time per process)."""

    enabled = False
    task_context: Any = None


_STATE = _State()


def enable() -> None:
    """Record spans from now on in this process (called once a tracer provider is installed)."""
    _STATE.enabled = _trace is not None


def enabled() -> bool:
    """True when spans are recorded in this process."""
    return _STATE.enabled


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """Run the block inside a child span of the current one (no-op unless tracing is enabled)."""
    if not _STATE.enabled or _trace is None:
        yield
        return
    clean = {k: v for k, v in attributes.items() if v is not None}
    parent = None if _trace.get_current_span().get_span_context().is_valid else _STATE.task_context
    outer = _STATE.task_context
    with _trace.get_tracer(TRACER_NAME).start_as_current_span(name, context=parent, attributes=clean) as current:
        # The innermost open span is the parent of what starts on dspy's threads meanwhile (LM calls).
        _STATE.task_context = _trace.set_span_in_context(current)
        try:
            yield
        finally:
            _STATE.task_context = outer


def set_task_context(context: Any) -> None:
    """Remember the running task's trace context: the parent of spans started where none is current.

    dspy scores examples on its own threads, which do not inherit OpenTelemetry's context; one task runs
    at a time per pool process, so the task's context is the right parent for spans started there.
    """
    _STATE.task_context = context


def start_span(name: str, **attributes: Any) -> Any:
    """Start a span under the current one (or the running task's); return it, or None when not tracing."""
    if not _STATE.enabled or _trace is None:
        return None
    parent = None
    if not _trace.get_current_span().get_span_context().is_valid:
        parent = _STATE.task_context
    clean = {k: v for k, v in attributes.items() if v is not None}
    return _trace.get_tracer(TRACER_NAME).start_span(name, context=parent, attributes=clean)


def end_span(handle: Any, error: BaseException | None = None) -> None:
    """End a span from `start_span` (None is ignored), marking it failed when `error` is given."""
    if handle is None or _trace is None:
        return
    if error is not None:
        handle.record_exception(error)
        handle.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))
    handle.end()
