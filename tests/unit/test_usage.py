"""LM usage accounting without a broker: the meter counts what dspy's calls spend and what a cache saved,
without changing a single prediction; budgets are validated at the edge, naming the field."""

from typing import Any

import dspy
import pytest

from btq.producer.fleet.validation import parse_spec
from btq.schemas.exceptions import JobValidationError
from btq.schemas.usage import Budget, Usage
from btq.worker.core.metering import Meter, metering
from btq.worker.lm.simulated import simulated_lm, simulated_tokens

BASE: dict[str, Any] = {"program": {"name": "t.qa"}, "lm": "t.sim", "metric": "t.exact", "trainset": [{"q": "1"}]}


def ask(questions: list[str], lm: dspy.BaseLM) -> list[str]:
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        return [predict(question=q).answer for q in questions]


def test_meter_counts_the_simulated_lms_deterministic_tokens_and_changes_no_answer() -> None:
    questions = [f"What is {i} * 3?" for i in range(6)]
    plain = ask(questions, simulated_lm("sim/u"))
    meter = Meter()
    with metering(meter):
        metered = ask(questions, simulated_lm("sim/u"))
    again = Meter()
    with metering(again):
        ask(questions, simulated_lm("sim/u"))

    assert metered == plain
    usage = meter.usage()
    assert usage.calls == 6 and usage.failed_calls == 0
    assert usage.prompt_tokens > 6 * 50 and usage.completion_tokens >= 6 * simulated_tokens("[[ ## answer ## ]]")
    assert usage.unpriced_calls == 6 and usage.cost_text() == "unknown", "a custom engine has no price"
    assert again.usage() == usage


def test_cache_hits_count_as_saved_not_spent() -> None:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    try:
        lm = simulated_lm("sim/u-cached", cache=True)
        meter = Meter()
        with metering(meter):
            ask(["What is 2 + 2?", "What is 2 + 2?", "What is 5 + 1?"], lm)
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    one = Meter()
    with metering(one):
        ask(["What is 2 + 2?"], simulated_lm("sim/u-cached"))
    usage = meter.usage()
    assert (usage.calls, usage.cached_calls) == (2, 1)
    assert usage.cached_tokens == one.usage().tokens > 0


def test_no_meter_no_accounting() -> None:
    meter = Meter()
    ask(["What is 1 + 1?"], simulated_lm("sim/u"))
    assert meter.usage() == Usage()


def test_usage_adds_up_and_says_when_a_cost_is_unknown_or_partial() -> None:
    a = Usage(calls=2, prompt_tokens=10, completion_tokens=2, cost_usd=0.5)
    b = Usage(calls=1, prompt_tokens=5, completion_tokens=1, unpriced_calls=1)
    total = a.plus(b)
    assert (total.calls, total.tokens, total.cost_usd) == (3, 18, 0.5)
    assert a.cost_text() == "$0.500000"
    assert total.cost_text() == ">=$0.500000"
    assert b.cost_text() == "unknown"


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"max_lm_calls": 0}, "budget.max_lm_calls"),
        ({"max_tokens": -5}, "budget.max_tokens"),
        ({"max_cost_usd": 0}, "budget.max_cost_usd"),
        ({"max_lm_calls": 10, "max_calls": 3}, "budget.max_calls"),
    ],
)
def test_a_bad_budget_is_refused_at_submission_naming_the_field(budget: dict[str, Any], field: str) -> None:
    with pytest.raises(JobValidationError, match=field.replace(".", r"\.")):
        parse_spec({**BASE, "budget": budget})


def test_a_budget_without_any_limit_is_refused() -> None:
    with pytest.raises(JobValidationError, match="budget names no limit"):
        parse_spec({**BASE, "budget": {}})


def test_a_budget_round_trips_through_json() -> None:
    spec = parse_spec({**BASE, "budget": {"max_lm_calls": 100, "max_cost_usd": 1.5}})
    assert spec.budget == Budget(max_lm_calls=100, max_cost_usd=1.5)
    assert parse_spec(spec.model_dump_json()).budget == spec.budget
