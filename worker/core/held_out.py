"""Scores of a finished job's candidates on a registered dataset split, as BetterTogether scores them."""

import random

import dspy
from dspy.teleprompt.bootstrap_finetune import launch_lms

from btq.schemas.result import JobResult
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.valset import evaluate_on_valset


def score_candidates(job: ResolvedJob, result: JobResult, dataset: str, split: str) -> dict[str, float | None]:
    """Return step index -> score on `dataset`/`split` for every candidate of `result`."""
    examples = job.registry.dataset_split(dataset, split)
    spec = job.spec
    max_errors = spec.max_errors if spec.max_errors is not None else dspy.settings.max_errors
    scores: dict[str, float | None] = {}
    with dspy.context(lm=job.lm, trace=[]):
        for candidate in result.candidates:
            program = job.student_from_state(candidate.program_state)
            launch_lms(program)
            scores[str(candidate.step_index)] = evaluate_on_valset(
                program,
                examples,
                job.metric,
                random.Random(0),  # a full evaluation never draws from it
                num_threads=spec.num_threads,
                max_errors=max_errors,
                provide_traceback=spec.provide_traceback,
            )
    return scores
