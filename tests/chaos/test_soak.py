"""A bounded chaos soak in the default run: a few minutes of faults, then every invariant must hold.

`BTQ_SOAK_MINUTES` (default 1.5 here), `BTQ_SOAK_SEED`, `BTQ_SOAK_JOBS` and the other `BTQ_SOAK_*` variables
of `tests/chaos/soak.py` apply; `make chaos-soak` runs the long version and writes its figures.
"""

import os

import pytest

from tests.chaos.soak import SoakConfig, run_soak, write_results

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

MINUTES = float(os.environ.get("BTQ_SOAK_MINUTES", "1.5"))


@pytest.mark.timeout(int(MINUTES * 60) + 900)  # the soak, then every job awaited (bounded) and checked
def test_soak_under_random_faults_keeps_every_invariant() -> None:
    report = run_soak(SoakConfig.from_env(minutes=MINUTES))
    print("\n" + report.table())
    print(f"results: {write_results(report)}")
    assert report.faults, "the injector injected nothing"
    assert report.terminal == len(report.jobs)
    assert report.violations == [], report.table()
