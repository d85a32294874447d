"""The `dspy.Evaluate` boundary: inside a step, every `Evaluate` call goes to the step's sharded evaluator.

`Evaluate.__call__` is replaced once per process by a dispatcher. Outside a step (no active evaluator in
the calling context) it is dspy's own code path, untouched; inside a step it offers the call to the
evaluator, which shards it or declines (the call then runs in-process as dspy runs it). Optimizers that
evaluate through `Evaluate` (BootstrapFewShotWithRandomSearch, MIPROv2, COPRO, and the step's own
validation score) are sharded without forking their code.
"""

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import dspy
from dspy.evaluate.evaluate import Evaluate, EvaluationResult
from dspy.utils.callback import with_callbacks


class ShardingEvaluator(Protocol):
    """Something that may take over one `Evaluate` call (None means: run it in-process)."""

    def evaluate(
        self,
        evaluate: Evaluate,
        program: dspy.Module,
        metric: Callable[..., Any],
        devset: list[dspy.Example],
        num_threads: int | None,
    ) -> EvaluationResult | None:
        """Return the result of the call, or None to decline it."""


_active: contextvars.ContextVar[ShardingEvaluator | None] = contextvars.ContextVar("btq_evaluator", default=None)
_install_lock = threading.Lock()
_original: list[Callable[..., EvaluationResult]] = []
"""dspy's own `Evaluate.__call__` body, once installed."""


def _dispatch(
    self: Evaluate,
    program: dspy.Module,
    metric: Callable[..., Any] | None = None,
    devset: list[dspy.Example] | None = None,
    num_threads: int | None = None,
    display_progress: bool | None = None,
    display_table: bool | int | None = None,
    callback_metadata: dict[str, Any] | None = None,
    save_as_csv: str | None = None,
    save_as_json: str | None = None,
) -> EvaluationResult:
    original = _original[0]
    args = (program, metric, devset, num_threads, display_progress, display_table, callback_metadata)
    evaluator = _active.get()
    table = display_table if display_table is not None else self.display_table
    outputs = save_as_csv or save_as_json or self.save_as_csv or self.save_as_json
    if evaluator is None or table or outputs:  # tables and files are dspy's own business
        return original(self, *args, save_as_csv=save_as_csv, save_as_json=save_as_json)
    resolved_metric = metric if metric is not None else self.metric
    resolved_devset = devset if devset is not None else self.devset
    if not resolved_devset:
        raise ValueError("devset must contain at least one example, got an empty devset.")
    threads = num_threads if num_threads is not None else self.num_threads
    result = evaluator.evaluate(self, program, resolved_metric, list(resolved_devset), threads)
    if result is None:
        return original(self, *args, save_as_csv=save_as_csv, save_as_json=save_as_json)
    return result


def install() -> None:
    """Route `Evaluate.__call__` through the dispatcher (idempotent; dspy callbacks still fire once)."""
    with _install_lock:
        if _original:
            return
        _original.append(Evaluate.__call__.__wrapped__)  # dspy's body, under its `with_callbacks` decorator
        Evaluate.__call__ = with_callbacks(_dispatch)  # type: ignore[method-assign]


@contextmanager
def evaluating_with(evaluator: ShardingEvaluator) -> Iterator[None]:
    """Offer every `Evaluate` call made in this context (this thread) to `evaluator`."""
    install()
    token = _active.set(evaluator)
    try:
        yield
    finally:
        _active.reset(token)
