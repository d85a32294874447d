"""The shipped comparison on the real model: p -> w -> p beats prompts alone and weights alone on held-out data.

Opt-in (`make test-slow`): about 20 minutes on 2 CPU cores. Two worker processes run one job per strategy
concurrently, as `btq compare` does; the table is printed (`-s` shows it). Each prompt step adds to the
program it is given on the catalog-entry task (`local.catalog`): the README's "The real-model demo" has
the measured table and why.
"""

import sys

import pytest

from btq.producer.demo.compare import print_table, run_comparison
from btq.producer.demo.jobs import LOCAL
from tests.conftest import running_fleet

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.timeout(3600)
def test_p_w_p_beats_each_one_step_strategy_and_the_baseline_on_the_test_split(local_extra: None) -> None:
    with running_fleet(4, "btq-compare", ["ca", "cb"], {"BTQ_IMPORTS": '["btq.worker.lm.local.registry"]'}) as fleet:
        comparison = run_comparison(fleet.client(), LOCAL.spec, LOCAL.held_out, timeout_s=1800)
    print_table(comparison, sys.stdout)
    test = {run.strategy: run.test for run in comparison.runs}
    assert None not in test.values(), [run.error for run in comparison.runs]
    full = test["p -> w -> p"]
    assert full is not None and comparison.baseline_test is not None
    assert full > test["p"]  # type: ignore[operator]
    assert full > test["w"]  # type: ignore[operator]
    assert full >= comparison.baseline_test
