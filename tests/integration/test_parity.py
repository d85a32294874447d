"""Parity: the distributed result equals in-process dspy.BetterTogether on the same inputs and seed."""

import itertools
from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.result import JobResult
from tests.reference import canonical, run_reference

pytestmark = pytest.mark.integration

P = {
    "optimizer": "BootstrapFewShotWithRandomSearch",
    "kwargs": {"num_candidate_programs": 2, "max_bootstrapped_demos": 2, "max_labeled_demos": 3},
}
W = {"optimizer": "BootstrapFinetune", "kwargs": {}}
STRATEGIES = ["p", "p -> p", "p -> w -> p", "w -> p"]
VALSETS = {
    "given": {"valset": {"dataset": "t.arith", "split": "val"}},
    "ratio": {"valset_ratio": 0.25},
    "none": {"valset_ratio": 0.0},
}


def spec(strategy: str, valset: str, shuffle: bool, seed: int, **extra: Any) -> dict[str, Any]:
    return {
        "program": {"name": "t.qa"},
        "lm": "t.sim",
        "metric": "t.exact",
        "optimizers": {"p": P, "w": W},
        "strategy": strategy,
        "trainset": {"dataset": "t.arith", "split": "train"},
        "seed": seed,
        "shuffle_trainset_between_steps": shuffle,
        **VALSETS[valset],
        **extra,
    }


CASES = list(itertools.product(STRATEGIES, VALSETS, [True, False], [3, 17]))


def assert_same(result: JobResult, job: dict[str, Any]) -> None:
    ref = run_reference(job)
    got = [(c.strategy, c.score, canonical(c.program_state)) for c in result.candidates]
    assert [g[:2] for g in got] == [r[:2] for r in ref.candidates]
    assert got == ref.candidates, "program states differ"
    assert result.best is not None
    assert (result.best.strategy, result.best.score, canonical(result.best.program_state)) == ref.best
    assert result.flag_compilation_error_occurred is ref.flag


@pytest.fixture(scope="module")
def matrix_results(fleet: Any) -> dict[tuple[str, str, bool, int], JobResult]:
    """Submit every case at once (the two workers share them), then wait for all."""
    client: JobClient = fleet.client()
    ids = {case: client.submit(spec(*case)) for case in CASES}
    return {case: client.wait(job_id, timeout_s=300) for case, job_id in ids.items()}


@pytest.mark.parametrize(("strategy", "valset", "shuffle", "seed"), CASES)
def test_candidates_scores_states_and_flag_equal_in_process(
    matrix_results: dict[tuple[str, str, bool, int], JobResult],
    strategy: str,
    valset: str,
    shuffle: bool,
    seed: int,
) -> None:
    case = (strategy, valset, shuffle, seed)
    assert_same(matrix_results[case], spec(*case))


def test_seeds_change_the_outcome_so_the_seed_really_travels(
    matrix_results: dict[tuple[str, str, bool, int], JobResult],
) -> None:
    states = {
        seed: [c.program_state for c in matrix_results[("p -> p", "given", True, seed)].candidates] for seed in (3, 17)
    }
    assert states[3] != states[17]


def test_default_dspy_optimizers_and_two_predictor_program(client: JobClient) -> None:
    job = spec("p -> w", "ratio", True, 5)
    job.pop("optimizers")
    job.update(program={"name": "t.two"}, num_threads=3)
    result = client.wait(client.submit(job), timeout_s=300)
    assert_same(result, job)
    finetuned = result.candidates[0].program_state if result.best else {}
    assert finetuned


def test_inline_examples_and_compile_args(client: JobClient) -> None:
    from tests.fixture_registry import splits

    data = splits(seed=23)
    records = [{"question": e.question, "answer": e.answer} for e in data["train"]]
    job = spec("p -> w -> p", "given", True, 9)
    job.update(
        trainset=records,
        valset=[{"question": e.question, "answer": e.answer} for e in data["val"]],
        input_keys=["question"],
        optimizer_compile_args={"p": {"labeled_sample": False}},
    )
    assert_same(client.wait(client.submit(job), timeout_s=300), job)


def test_seed_none_gets_a_concrete_recorded_seed_that_reproduces(client: JobClient) -> None:
    job = spec("p -> w", "given", True, 0)
    job["seed"] = None
    result = client.wait(client.submit(job), timeout_s=300)
    assert isinstance(result.seed, int)
    assert_same(result, {**job, "seed": result.seed})
