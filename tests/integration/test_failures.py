"""Failure injection: a failing step gives the same candidates and flag as in-process BetterTogether."""

from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from btq.schemas.result import JobState
from tests.integration.test_parity import P, W, assert_same, spec

pytestmark = pytest.mark.integration

FAIL = {"optimizer": "FailingOptimizer", "kwargs": {"message": "boom at this step"}}


def failing_spec(strategy: str, **extra: Any) -> dict[str, Any]:
    job = spec(strategy, "given", True, 4, **extra)
    job["optimizers"] = {"p": P, "w": W, "f": FAIL}
    return job


@pytest.mark.parametrize("strategy", ["f", "p -> f -> p", "p -> w -> f", "p -> p -> f -> w"])
def test_optimizer_raising_at_step_k_matches_in_process(client: JobClient, strategy: str) -> None:
    job = failing_spec(strategy)
    job_id = client.submit(job)
    result = client.wait(job_id, timeout_s=300)
    assert_same(result, job)
    assert result.flag_compilation_error_occurred
    assert result.state is JobState.SUCCEEDED
    assert result.error is not None and "boom at this step" in result.error.message
    k = strategy.split(" -> ").index("f") + 1
    events = [e for _, e in client.events(job_id)]
    failed = [e.step_index for e in events if e.type is EventType.STEP_FAILED]
    skipped = [e.step_index for e in events if e.type is EventType.STEP_SKIPPED]
    assert failed == [k]
    assert skipped == list(range(k + 1, len(strategy.split(" -> ")) + 1))
    assert events[-1].type is EventType.JOB_SUCCEEDED


def test_weight_step_on_a_provider_that_cannot_finetune_fails_like_dspy(client: JobClient) -> None:
    job = spec("p -> w -> p", "ratio", True, 8)
    job["lm"] = "t.sim_fixed"
    result = client.wait(client.submit(job), timeout_s=300)
    assert_same(result, job)
    assert result.flag_compilation_error_occurred
    assert [c.strategy for c in result.candidates] in (["p", ""], ["", "p"])


def test_unknown_teacher_structure_fails_the_job_without_candidates(client: JobClient) -> None:
    job = spec("p", "given", True, 1)
    job["teacher"] = {"name": "t.two"}  # not structurally equivalent to t.qa: dspy refuses it up front
    result = client.wait(client.submit(job), timeout_s=120)
    assert result.state is JobState.FAILED
    assert result.candidates == [] and result.best is None
    assert result.error is not None


def test_job_level_teacher_reaches_bootstrapfewshot_as_a_list_and_fails_as_in_dspy(client: JobClient) -> None:
    job = spec("p -> w", "given", True, 6)
    job["optimizers"]["p"] = {"optimizer": "BootstrapFewShot", "kwargs": {"max_labeled_demos": 0}}
    job["teacher"] = {"name": "t.teacher"}
    result = client.wait(client.submit(job), timeout_s=120)
    assert_same(result, job)
    assert result.flag_compilation_error_occurred
    assert result.error is not None and "deepcopy" in result.error.message


def test_per_optimizer_teachers_keep_their_shape_and_match_in_process(client: JobClient) -> None:
    job = spec("p -> w -> p", "given", True, 6)
    job["optimizers"]["p"] = {"optimizer": "BootstrapFewShot", "kwargs": {"max_labeled_demos": 0}}
    job["optimizer_compile_args"] = {"p": {"teacher": {"name": "t.teacher"}}, "w": {"teacher": [{"name": "t.teacher"}]}}
    result = client.wait(client.submit(job), timeout_s=120)
    assert_same(result, job)
    assert not result.flag_compilation_error_occurred
