"""`btq demo` runs a p -> w -> p job end to end, live, and prints the table (simulated LM here; the
real local model, the README's main job, in the opt-in slow test)."""

import os
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import ROOT, redis_url

pytestmark = pytest.mark.integration


def run_demo(model: str, timeout_s: int) -> str:
    with tempfile.TemporaryDirectory(prefix="btq-test-demo-") as artifacts:
        return _run_demo(model, timeout_s, artifacts)


def _run_demo(model: str, timeout_s: int, artifacts: str) -> str:
    env = {**os.environ, "BTQ_REDIS_URL": redis_url(4), "BTQ_QUEUE": f"btq-demo-{model}", "BTQ_ARTIFACT_DIR": artifacts}
    run = subprocess.run(
        [sys.executable, "-m", "btq.producer.cli", "demo", "--model", model, "--timeout", str(timeout_s)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s + 120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_btq_demo_runs_the_embedded_job_live_and_prints_the_ranked_table() -> None:
    out = run_demo("simulated", 120)
    for strategy in ("baseline", "p", "p -> w", "p -> w -> p"):
        assert f"ok       {strategy} " in out
    assert "job.succeeded" in out and "rank  strategy" in out
    assert "val    test" in out


@pytest.mark.slow
def test_readme_main_job_on_the_real_local_model() -> None:
    pytest.importorskip("llama_cpp")
    out = run_demo("local", 1800)
    for strategy in ("baseline", "p", "p -> w", "p -> w -> p"):
        assert f"ok       {strategy} " in out
    assert "phase=finetune" in out and "val    test" in out
