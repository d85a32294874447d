"""The README's main-job command: `btq demo` runs a real p -> w -> p job end to end and prints the table."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, redis_url

pytestmark = pytest.mark.integration


def test_btq_demo_runs_the_embedded_job_live_and_prints_the_ranked_table() -> None:
    env = {**os.environ, "BTQ_REDIS_URL": redis_url(4), "BTQ_QUEUE": "btq-demo-test"}
    run = subprocess.run(
        [sys.executable, "-m", "producer.cli", "demo", "--timeout", "120"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for strategy in ("baseline", "p", "p -> w", "p -> w -> p"):
        assert f"ok       {strategy} " in out
    assert "job.succeeded" in out and "rank  strategy" in out
