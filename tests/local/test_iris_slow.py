"""The Iris experiment end to end on the real model, one seed, a small setting (`make test-slow`).

Two worker processes run `p` and `p -> w -> p` on seed 0's split with 2 random-search candidates instead
of the paper's 6: every strategy ends with a final program scored on the held-out test split, and the
table over seeds carries the paper's figures beside ours. The full experiment is `btq compare --task iris`
(docs/iris.md has the measured table).
"""

import sys

import pytest

from btq.producer.demo.iris import print_iris_table, run_iris
from tests.conftest import running_fleet

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.timeout(3600)
def test_one_seed_of_the_iris_experiment_scores_every_strategy_beside_the_paper(local_extra: None) -> None:
    env = {"BTQ_IMPORTS": '["btq.worker.lm.local.registry"]'}
    with running_fleet(4, "btq-iris", ["ia", "ib"], env) as fleet:
        result = run_iris(fleet.client(), [0], ["p", "p -> w -> p"], timeout_s=2400, candidates=2)
    print_iris_table(result, sys.stdout)
    rows = {row.strategy: row for row in result.rows}
    assert set(rows) == {"(baseline)", "p", "p -> w -> p"}
    runs = result.comparisons[0].runs
    assert all(run.test is not None and run.error is None for run in runs), [run.error for run in runs]
    assert rows["p"].paper == (57.3, 56.7, 79.3)
    assert rows["(baseline)"].mean is not None and 0 <= rows["(baseline)"].mean <= 100
