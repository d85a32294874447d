"""What a job spends: token and dollar totals equal what the provider saw, on one worker or three;
a warm re-run spends nothing and reports what the cache saved; a budget stops the job in time."""

import json
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

from btq.schemas.events import EventType
from btq.schemas.result import JobResult
from tests.conftest import STUB_API_KEY, Fleet, running_fleet
from tests.reference import canonical
from tests.stub_openai import StubOpenAI

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"
"""A model the LiteLLM cost map prices, served by the stub."""


@pytest.fixture(scope="module")
def usage_stub() -> Iterator[StubOpenAI]:
    stub = StubOpenAI()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def usage_fleet(usage_stub: StubOpenAI) -> Iterator[Fleet]:
    env = {
        "BTQ_LM_API_BASES": json.dumps({"openai": usage_stub.url}),
        "BTQ_LM_API_KEYS": json.dumps({"openai": STUB_API_KEY}),
    }
    with running_fleet(11, "btq-usage", ["ua"], env) as fleet:
        yield fleet


def job(seed: int, cache: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "program": {"name": "t.qa"},
        "lm": {"model": MODEL, "kwargs": {"cache": cache, "temperature": 0.0}},
        "metric": "t.exact",
        "optimizers": {"p": {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": {"num_candidate_programs": 2}}},
        "strategy": "p -> p",
        "trainset": {"dataset": "t.arith", "split": "train"},
        "valset": {"dataset": "t.arith", "split": "val"},
        "seed": seed,
        "cache": cache,
        **extra,
    }


def price(prompt: int, completion: int) -> float:
    entry = litellm.model_cost["gpt-4o-mini"]
    return prompt * entry["input_cost_per_token"] + completion * entry["output_cost_per_token"]


def run(fleet: Fleet, stub: StubOpenAI, spec: dict[str, Any]) -> tuple[JobResult, tuple[int, int, int, int]]:
    """Run a job; return its result and what the stub saw meanwhile (requests, prompt, completion, 429s)."""
    before = stub.counts()
    client = fleet.client()
    result = client.wait(client.submit(spec), timeout_s=180)
    after = stub.counts()
    return result, (after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3])


def test_job_totals_equal_what_the_provider_saw_on_one_and_on_three_workers(
    usage_fleet: Fleet, usage_stub: StubOpenAI
) -> None:
    one, seen_one = run(usage_fleet, usage_stub, job(5))
    usage_fleet.start("ub")
    usage_fleet.start("uc")
    usage_fleet.wait_ready(["ub", "uc"])
    three, seen_three = run(usage_fleet, usage_stub, job(5))

    for result, (requests, prompt, completion, _) in ((one, seen_one), (three, seen_three)):
        usage = result.usage
        assert usage is not None and requests > 0
        assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (requests, prompt, completion)
        assert usage.unpriced_calls == 0
        assert usage.cost_usd == pytest.approx(price(prompt, completion), rel=1e-6)
    assert one.usage == three.usage, "the same job spends the same on one worker and on three"
    assert [(c.strategy, c.score, canonical(c.program_state)) for c in one.candidates] == [
        (c.strategy, c.score, canonical(c.program_state)) for c in three.candidates
    ]
    events = [e for _, e in usage_fleet.client().events(three.job_id)]
    workers = {w for e in events for w in e.detail.get("shard_workers", []) or []}  # type: ignore[union-attr]
    assert len(workers) > 1, "the three-worker run was sharded"
    finished = [e for e in events if e.type is EventType.STEP_SUCCEEDED]
    assert sum(e.detail["usage"]["calls"] for e in finished) == three.usage.calls  # type: ignore[index,call-overload,union-attr]


def test_warm_rerun_spends_nothing_and_reports_the_savings(usage_fleet: Fleet, usage_stub: StubOpenAI) -> None:
    cold, seen_cold = run(usage_fleet, usage_stub, job(8, cache=True))
    warm, seen_warm = run(usage_fleet, usage_stub, job(8, cache=True))

    assert cold.usage is not None and warm.usage is not None
    assert cold.usage.calls == seen_cold[0] > 0
    assert seen_warm[0] == 0
    assert (warm.usage.calls, warm.usage.tokens, warm.usage.cost_usd) == (0, 0, 0.0)
    assert warm.usage.cached_calls == cold.usage.calls + cold.usage.cached_calls
    assert warm.usage.cached_tokens == cold.usage.tokens + cold.usage.cached_tokens
    assert warm.usage.cached_cost_usd == pytest.approx(cold.usage.cost_usd + cold.usage.cached_cost_usd)
    assert [c.score for c in warm.candidates] == [c.score for c in cold.candidates]


def test_budget_stops_the_job_with_budget_exceeded_and_keeps_the_best_so_far(
    usage_fleet: Fleet, usage_stub: StubOpenAI
) -> None:
    unlimited, _ = run(usage_fleet, usage_stub, job(13))
    client = usage_fleet.client()
    spent = {
        e.step_index: e.detail["usage"]["calls"]  # type: ignore[index,call-overload]
        for _, e in client.events(unlimited.job_id)
        if e.type is EventType.STEP_SUCCEEDED
    }
    budget = spent[0] + spent[1] // 2  # the baseline and half of step 1

    result, (requests, *_rest) = run(usage_fleet, usage_stub, job(13, budget={"max_lm_calls": budget}))

    events = [e for _, e in client.events(result.job_id)]
    failed = [e for e in events if e.type is EventType.STEP_FAILED]
    assert result.state.value == "succeeded"
    assert result.flag_compilation_error_occurred is True
    assert result.error is not None and result.error.message.startswith("budget exceeded: max_lm_calls")
    assert [c.strategy for c in result.candidates] == [""], "the baseline, the best so far, is returned"
    assert [(e.step_index, e.error.type if e.error else None) for e in failed] == [(1, "BudgetExceededError")]
    assert [e.step_index for e in events if e.type is EventType.STEP_SKIPPED] == [2]
    concurrent = 3 * 16  # worker processes x dspy threads: the calls that can be in flight at once
    assert requests <= budget + concurrent
    assert result.usage is not None and result.usage.calls <= budget


def test_a_dollar_budget_stops_the_job_and_reports_the_bounded_overshoot(
    usage_fleet: Fleet, usage_stub: StubOpenAI
) -> None:
    unlimited, _ = run(usage_fleet, usage_stub, job(17))
    assert unlimited.usage is not None
    costs = unlimited.step_usage
    limit = costs[0].cost_usd + costs[1].cost_usd / 2

    result, (_, prompt, completion, _) = run(usage_fleet, usage_stub, job(17, budget={"max_cost_usd": limit}))

    assert result.error is not None
    assert result.error.message.startswith("budget exceeded: max_cost_usd reached")
    assert result.flag_compilation_error_occurred is True
    assert result.usage is not None and result.usage.cost_usd >= limit
    assert result.usage.cost_usd == pytest.approx(price(prompt, completion), rel=1e-6), "what the provider billed"
    per_call = max(u.cost_usd / u.calls for u in costs.values() if u.calls)
    in_flight = 3 * 16 + 3 * 8  # concurrent calls plus each process's unflushed reservation
    assert result.usage.cost_usd <= limit + in_flight * per_call
    assert f"${result.usage.cost_usd:.6f} of ${limit:.6f}" in result.error.message, "the overshoot is reported"
