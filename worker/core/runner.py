"""The step runner: one BetterTogether step, as plain Python (no Celery, no Redis).

It reproduces `dspy.BetterTogether._run_strategies` one step at a time. What the in-process loop keeps
in local variables travels in the previous `StepRecord`: the program state, the generator state and
the trainset order, so step k sees the trainset shuffled k times by the same `random.Random(seed)`.
"""

import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt.bootstrap_finetune import (
    all_predictors_have_lms,
    assert_all_predictors_have_lms,
    launch_lms,
    prepare_teacher,
)

from btq.schemas.errors import ErrorRecord
from btq.schemas.result import StepOutcome, StepRecord
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.program_state import dump_program
from btq.worker.core.rng import ReplayableRandom, carried, restore
from btq.worker.core.student_lm import optimizer_context
from btq.worker.core.valset import cancellable, evaluate_on_valset


@dataclass
class StepHooks:
    """How the runner learns about cancellation and reports timings; defaults do nothing."""

    is_cancelled: Callable[[], bool] = lambda: False
    worker: str | None = None
    attempt: int = 1
    timings: dict[str, float] = field(default_factory=dict)


def _evaluate(job: ResolvedJob, program: dspy.Module, rng: random.Random, hooks: StepHooks) -> float | None:
    spec = job.spec
    max_errors = spec.max_errors if spec.max_errors is not None else dspy.settings.max_errors
    return evaluate_on_valset(
        program,
        job.valset,
        cancellable(job.metric, hooks.is_cancelled),
        rng,
        num_threads=spec.num_threads,
        max_errors=max_errors,
        provide_traceback=spec.provide_traceback,
    )


def run_baseline(job: ResolvedJob, hooks: StepHooks) -> StepRecord:
    """Evaluate the un-optimized program (step 0) and start the generator and trainset order."""
    started = time.time()
    rng = ReplayableRandom(job.spec.seed)
    order = list(range(len(job.trainset)))
    # A fresh trace (the process-wide one only grows) and no per-call history nobody reads.
    with dspy.context(lm=job.lm, trace=[], disable_history=True):
        student = job.initial_student()
        assert_all_predictors_have_lms(student, role="student")
        for teacher in job.teachers() or []:
            prepare_teacher(student, teacher)  # dspy's structural checks, before anything runs
        launch_lms(student)
        score = _evaluate(job, student, rng, hooks)
    outcome = StepOutcome.CANCELLED if hooks.is_cancelled() else StepOutcome.SUCCEEDED
    return StepRecord(
        index=0,
        strategy="",
        optimizer_key=None,
        outcome=outcome,
        score=score,
        program_state=dump_program(student),
        **carried(rng, order),
        worker=hooks.worker,
        attempt=hooks.attempt,
        started_at=started,
        finished_at=time.time(),
        timings_s=dict(hooks.timings),
    )


def run_step(job: ResolvedJob, previous: StepRecord, hooks: StepHooks) -> StepRecord:
    """Run strategy step `previous.index + 1` from the previous step's program; never raises.

    An optimizer error is an outcome (FAILED, with the error record), as in BetterTogether, where it
    stops the loop and sets `flag_compilation_error_occurred`.
    """
    index = previous.index + 1
    key = job.spec.steps()[index - 1]
    started = time.time()
    rng, order = restore(previous, job.spec.seed)
    score: float | None = None
    state: dict[str, Any] | None = None
    error: ErrorRecord | None = None
    try:
        # A fresh trace (the process-wide one only grows); per-call history only for optimizers that read it.
        with dspy.context(lm=job.lm, trace=[], disable_history=not job.reads_lm_history(key)):
            student = job.student_from_state(previous.program_state or {})
            hooks.timings["load_s"] = time.time() - started
            if job.spec.shuffle_trainset_between_steps:
                rng.shuffle(order)
            trainset = [job.trainset[i] for i in order]
            student, score = _optimize_and_evaluate(job, key, student, trainset, rng, hooks)
            state = dump_program(student)
        outcome = StepOutcome.CANCELLED if hooks.is_cancelled() else StepOutcome.SUCCEEDED
    except Exception as exc:  # an optimizer's failure is a recorded outcome, as in BetterTogether
        outcome = StepOutcome.CANCELLED if hooks.is_cancelled() else StepOutcome.FAILED
        error = ErrorRecord.from_exception(exc)
    return StepRecord(
        index=index,
        strategy=job.spec.strategy_prefix(index),
        optimizer_key=key,
        outcome=outcome,
        score=score if outcome is StepOutcome.SUCCEEDED else None,
        program_state=state if outcome is StepOutcome.SUCCEEDED else None,
        **carried(rng, order),
        worker=hooks.worker,
        attempt=hooks.attempt,
        started_at=started,
        finished_at=time.time(),
        error=error,
        timings_s=dict(hooks.timings),
    )


def _optimize_and_evaluate(
    job: ResolvedJob,
    key: str,
    student: dspy.Module,
    trainset: list[dspy.Example],
    rng: random.Random,
    hooks: StepHooks,
) -> tuple[dspy.Module, float | None]:
    """Mirror `BetterTogether._run_and_evaluate_step` for one optimizer."""
    optimizer = job.optimizer(key)
    launch_lms(student)
    pred_lms_before = [pred.lm for pred in student.predictors()]
    student._compiled = False
    potential = {
        "trainset": trainset,
        "teacher": job.teachers(),
        "valset": job.valset,
        **job.compile_args(key),
    }
    accepted = set(inspect.signature(optimizer.compile).parameters)
    compile_start = time.time()
    with optimizer_context(job.spec.prompt_steps_use_student_lm, student, job.lm):
        student = optimizer.compile(student, **{k: v for k, v in potential.items() if k in accepted})
    hooks.timings["optimize_s"] = time.time() - compile_start
    if not all_predictors_have_lms(student):
        # BootstrapFewShotWithRandomSearch resets predictor LMs; BetterTogether restores them.
        for pred, lm in zip(student.predictors(), pred_lms_before, strict=False):
            pred.lm = lm
    before = [lm.model if lm else None for lm in pred_lms_before]
    if [p.lm.model if p.lm else None for p in student.predictors()] != before:
        launch_lms(student)
    eval_start = time.time()
    score = _evaluate(job, student, rng, hooks)
    hooks.timings["evaluate_s"] = time.time() - eval_start
    return student, score
