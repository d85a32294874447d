"""In-process dspy.BetterTogether on the same inputs as a job spec: the parity reference.

Built directly from dspy and the fixture registry (not through the worker's code), so a parity test
compares the distributed system with dspy itself.
"""

import functools
import inspect
import json
from dataclasses import dataclass
from typing import Any

import dspy
from dspy import teleprompt

from tests import fixture_registry as reg


@dataclass
class Reference:
    """What in-process BetterTogether returned, in comparable form."""

    candidates: list[tuple[str, float | None, str]]
    best: tuple[str, float | None, str]
    flag: bool


def canonical(state: dict[str, Any]) -> str:
    """Program state as canonical JSON text."""
    return json.dumps(state, sort_keys=True)


def _examples(source: Any, input_keys: list[str] | None) -> list[dspy.Example] | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return reg.splits()[source["split"]]
    return [dspy.Example(**r).with_inputs(*(input_keys or [])) for r in source]


def _resolve(value: Any) -> Any:
    """Registered references in optimizer kwargs, as the worker resolves them."""
    if isinstance(value, dict) and set(value) == {"$lm"}:
        return reg.lm_for(value["$lm"])
    if isinstance(value, dict) and set(value) == {"$metric"}:
        return reg.METRICS[value["$metric"]]
    return value


def _optimizer(cls_name: str, kwargs: dict[str, Any], metric: Any) -> Any:
    kwargs = {k: _resolve(v) for k, v in kwargs.items()}
    cls = reg.FailingOptimizer if cls_name == "FailingOptimizer" else getattr(teleprompt, cls_name)
    takes_metric = "metric" in inspect.signature(cls.__init__).parameters
    if cls is not reg.FailingOptimizer and "metric" not in kwargs and takes_metric:
        kwargs = {**kwargs, "metric": metric}
    return cls(**kwargs)


def _with_student_lm_context(optimizer: Any) -> Any:
    """Make `optimizer.compile` run inside `dspy.context(lm=<the student's first predictor's LM>)`.

    The in-process way to get `prompt_steps_use_student_lm`: BetterTogether calls `optimizer.compile`
    with the current student; `functools.wraps` keeps the signature BetterTogether filters args by.
    """
    original = optimizer.compile

    @functools.wraps(original)
    def compile(student: Any, **kwargs: Any) -> Any:
        lm = next((p.lm for p in student.predictors() if p.lm is not None), None)
        with dspy.context(lm=lm or dspy.settings.lm):
            return original(student, **kwargs)

    optimizer.compile = compile
    return optimizer


PROGRAMS = {"t.qa": lambda: dspy.Predict("question -> answer"), "t.two": reg.TwoStep, "t.teacher": reg.teacher_program}


def _teacher(raw: Any) -> Any:
    """A teacher reference (one, or a list) as the programs dspy receives."""
    if raw is None:
        return None
    return [PROGRAMS[r["name"]]() for r in raw] if isinstance(raw, list) else PROGRAMS[raw["name"]]()


def _compile_args(raw: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
    if raw is None:
        return None
    return {key: {k: _teacher(v) if k == "teacher" else v for k, v in args.items()} for key, args in raw.items()}


def run_reference(spec: dict[str, Any]) -> Reference:
    """Run `dspy.BetterTogether(...).compile(...)` in this process for a job spec dict."""
    lm = reg.lm_for(spec["lm"])
    student = PROGRAMS[spec["program"]["name"]]()
    student.set_lm(lm)
    metric = reg.METRICS[spec.get("metric", "t.exact")]
    options = {
        k: spec[k]
        for k in (
            "num_threads",
            "max_errors",
            "provide_traceback",
            "valset_ratio",
            "shuffle_trainset_between_steps",
        )
        if k in spec
    }
    with dspy.context(lm=lm):
        # Inside the context: MIPROv2 reads the context LM in its constructor, as in the worker.
        optimizers = {
            k: _optimizer(o["optimizer"], o.get("kwargs", {}), metric) for k, o in spec.get("optimizers", {}).items()
        }
        if spec.get("prompt_steps_use_student_lm"):
            optimizers = {k: _with_student_lm_context(o) for k, o in optimizers.items()}
        bt = dspy.BetterTogether(metric=metric, **optimizers)
        out = bt.compile(
            student,
            trainset=_examples(spec["trainset"], spec.get("input_keys")),
            valset=_examples(spec.get("valset"), spec.get("input_keys")),
            seed=spec["seed"],
            strategy=spec["strategy"],
            teacher=_teacher(spec.get("teacher")),
            optimizer_compile_args=_compile_args(spec.get("optimizer_compile_args")),
            **options,
        )
    candidates = [(c["strategy"], c["score"], canonical(c["program"].dump_state())) for c in out.candidate_programs]
    # dspy returns the best candidate's program object itself; states alone can tie.
    best = next(c for c, raw in zip(candidates, out.candidate_programs, strict=True) if raw["program"] is out)
    return Reference(candidates=candidates, best=best, flag=out.flag_compilation_error_occurred)
