"""The job option `prompt_steps_use_student_lm`: prompt steps after `w` bootstrap with the fine-tuned model."""

from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from btq.schemas.result import JobResult
from tests.integration.test_parity import assert_same, spec
from tests.reference import run_reference

pytestmark = pytest.mark.integration

CASES = [("p -> w -> p", 3), ("w -> p", 17)]


def with_option(strategy: str, seed: int, on: bool) -> dict[str, Any]:
    return {**spec(strategy, "given", True, seed), "prompt_steps_use_student_lm": on}


def final_candidate(result: JobResult, strategy: str) -> Any:
    """The candidate the whole strategy produced (candidates are ranked by score, not by step)."""
    return next(c for c in result.candidates if c.strategy == strategy)


@pytest.fixture(scope="module")
def results(fleet: Any) -> dict[tuple[str, int, bool], tuple[str, JobResult]]:
    """Each case with the option on and off, submitted at once, shared by the two workers."""
    client: JobClient = fleet.client()
    ids = {(s, seed, on): client.submit(with_option(s, seed, on)) for s, seed in CASES for on in (True, False)}
    return {case: (job_id, client.wait(job_id, timeout_s=300)) for case, job_id in ids.items()}


@pytest.mark.parametrize(("strategy", "seed"), CASES)
def test_option_on_equals_in_process_better_together_with_the_student_lm_as_context(
    results: dict[tuple[str, int, bool], tuple[str, JobResult]], strategy: str, seed: int
) -> None:
    assert_same(results[(strategy, seed, True)][1], with_option(strategy, seed, True))


@pytest.mark.parametrize(("strategy", "seed"), CASES)
def test_option_changes_the_prompt_step_after_w(
    results: dict[tuple[str, int, bool], tuple[str, JobResult]], strategy: str, seed: int
) -> None:
    def last_state(on: bool) -> Any:
        return final_candidate(results[(strategy, seed, on)][1], strategy).program_state

    # The default stays dspy's behaviour (test_parity checks it); the option picks other demos.
    assert last_state(True) != last_state(False)
    reference = {on: run_reference(with_option(strategy, seed, on)).candidates for on in (True, False)}
    assert [c for c in reference[True] if c[0] == strategy] != [c for c in reference[False] if c[0] == strategy]


def test_events_name_the_fine_tuned_model_as_context_lm_after_w(
    results: dict[tuple[str, int, bool], tuple[str, JobResult]], client: JobClient
) -> None:
    job_id, result = results[("p -> w -> p", 3, True)]
    context = {
        e.step_index: e.detail["model"]
        for _, e in client.events(job_id)
        if e.type is EventType.STEP_PROGRESS and e.detail.get("phase") == "context_lm"
    }
    assert set(context) == {1, 2, 3}
    assert context[1] == context[2] == "sim/t-small"  # before the fine-tune: the job's LM
    assert context[3].startswith("sim/t-small:ft-")  # after `w`: the fine-tuned model bootstraps
    final = final_candidate(result, "p -> w -> p").program_state
    assert final is not None
    assert final["lm"]["model"] == context[3]  # the state names the model that bootstrapped its demos


def test_option_off_reports_no_context_lm(
    results: dict[tuple[str, int, bool], tuple[str, JobResult]], client: JobClient
) -> None:
    job_id, _ = results[("p -> w -> p", 3, False)]
    phases = {e.detail.get("phase") for _, e in client.events(job_id) if e.type is EventType.STEP_PROGRESS}
    assert "context_lm" not in phases
