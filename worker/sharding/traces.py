"""Trace collection (dspy's `bootstrap_trace_data`, BootstrapFinetune's data) as a sharded evaluation.

BootstrapFinetune runs the program over the trainset through `dspy.Evaluate`, the program's forward
patched to return `(prediction, trace)` and the metric wrapped to unpack that pair. The call reaches the
Evaluate boundary like any other; `trace_call` recognises it and reads its options from dspy's own
closures (a dspy whose closures look different is not recognised, and the call runs in-process).
A shard elsewhere runs dspy's `bootstrap_trace_data` on its slice and captures each example's outcome
at the Evaluate boundary (`collect_traces`): the patched forward and the wrapped metric are dspy's code
on every worker, never a copy. The step then hands dspy's loop the combined `(prediction, trace)` pairs
with the predictors re-bound to its own objects (`outcomes.decode_traced`), so the fine-tuning data is
built exactly as in one process.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.evaluate.evaluate import Evaluate, EvaluationResult
from dspy.teleprompt import bootstrap_trace

from btq.schemas.sharding import TraceOptions
from btq.worker.sharding.examples import ScoredSlice
from btq.worker.sharding.hook import evaluating_with

_WRAPPED_METRIC = ("bootstrap_trace_data.<locals>.wrapped_metric", frozenset({"metric", "format_failure_score"}))
_PATCHED_FORWARD = (
    "bootstrap_trace_data.<locals>.patched_forward",
    frozenset({"original_forward", "capture_crashes", "log_format_failures", "failure_score", "format_failure_score"}),
)


@dataclass(frozen=True)
class TraceCall:
    """A recognised trace collection: the metric dspy's wrapper calls (None: none given) and its options."""

    metric: Callable[..., Any] | None
    options: TraceOptions


def is_trace_metric(metric: Any) -> bool:
    """Whether `metric` is the wrapper `bootstrap_trace_data` hands to `Evaluate`."""
    return (
        getattr(metric, "__module__", None) == bootstrap_trace.__name__
        and getattr(metric, "__qualname__", None) == _WRAPPED_METRIC[0]
    )


def _closure(fn: Any, expected: tuple[str, frozenset[str]]) -> dict[str, Any] | None:
    """The free variables of dspy's local function `fn`, or None if it is not the one expected."""
    code = getattr(fn, "__code__", None)
    if getattr(fn, "__qualname__", None) != expected[0] or code is None or frozenset(code.co_freevars) != expected[1]:
        return None
    try:
        return {name: cell.cell_contents for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True)}
    except ValueError:  # an empty cell, or a closure of another shape
        return None


def _number(value: Any) -> bool:
    return value is None or type(value) is int or (type(value) is float and math.isfinite(value))


def trace_call(program: dspy.Module, metric: Any) -> TraceCall | None:
    """Recognise `bootstrap_trace_data`'s `Evaluate` call on `program`; None for any other call.

    The program must carry dspy's patched forward around its class's own forward, and the options must
    travel as JSON; anything else (a forward already replaced on the instance, say) stays in-process.
    """
    if not is_trace_metric(metric):
        return None
    scoring = _closure(metric, _WRAPPED_METRIC)
    forward = vars(program).get("forward")
    running = _closure(getattr(forward, "__func__", None), _PATCHED_FORWARD)
    if scoring is None or running is None or getattr(forward, "__self__", None) is not program:
        return None
    original = running["original_forward"]
    if getattr(original, "__self__", None) is not program or getattr(original, "__func__", None) is not getattr(
        type(program), "forward", None
    ):
        return None
    fail_score = running["format_failure_score"]
    if not _number(fail_score) or not _number(running["failure_score"]):
        return None
    options = TraceOptions(
        has_metric=scoring["metric"] is not None,
        format_failure_score=fail_score,
        log_format_failures=bool(running["log_format_failures"]),
        capture_crashes=bool(running["capture_crashes"]),
    )
    return TraceCall(metric=scoring["metric"], options=options)


class _Captured(Exception):
    """Ends `bootstrap_trace_data` once its `Evaluate` call was captured (its own loop is the step's)."""


@dataclass
class _Capture:
    """An evaluator that scores the captured call with `score` and stops there."""

    score: Callable[[dspy.Module, Callable[..., Any], list[dspy.Example]], ScoredSlice]
    scored: ScoredSlice | None = None

    def evaluate(
        self,
        evaluate: Evaluate,
        program: dspy.Module,
        metric: Callable[..., Any],
        devset: list[dspy.Example],
        num_threads: int | None,
    ) -> EvaluationResult | None:
        self.scored = self.score(program, metric, devset)
        raise _Captured


def collect_traces(
    program: dspy.Module,
    examples: list[dspy.Example],
    metric: Callable[..., Any] | None,
    options: TraceOptions,
    failure_score: float,
    score: Callable[[dspy.Module, Callable[..., Any], list[dspy.Example]], ScoredSlice],
) -> ScoredSlice:
    """Run dspy's `bootstrap_trace_data` on `examples`, scoring its `Evaluate` call with `score`.

    `score(patched_program, wrapped_metric, examples)` keeps each example's `(prediction, trace)` and
    score; the program's forward is dspy's patched one while it runs and restored afterwards.
    """
    capture = _Capture(score)
    try:
        with evaluating_with(capture):
            bootstrap_trace.bootstrap_trace_data(
                program=program,
                dataset=examples,
                metric=metric,
                failure_score=failure_score,
                format_failure_score=options.format_failure_score,  # type: ignore[arg-type]
                log_format_failures=options.log_format_failures,
                capture_crashes=options.capture_crashes,
            )
    except _Captured:
        pass
    if capture.scored is None:
        raise RuntimeError("bootstrap_trace_data did not evaluate through dspy.Evaluate")
    return capture.scored
