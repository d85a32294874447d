"""Export and load: `btq export` in one process, dspy's `Module.load` in a fresh one, the same predictions.

The program is a fine-tuned candidate (`p -> w`, the simulated LM): its predictions on the held-out split
depend on the demos, the instructions and the fine-tuned model its state names, so any of them lost on
the way shows. The reference is the worker's own path (`ResolvedJob.student_from_state`), and the real
workers' held-out score of the candidate must equal the loaded program's.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.result import JobResult
from btq.worker.artifacts.store import store_from_url
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.settings import WorkerSettings
from tests import fixture_registry as reg
from tests.conftest import ROOT, Fleet
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

# A fresh interpreter with plain dspy and the registry module: build the registered program, `Module.load`
# the exported file (the simulated LM's engine class is trusted here), predict the test split.
LOAD_AND_PREDICT = """
import json, sys
import dspy
from tests import fixture_registry as reg
program = dspy.Predict("question -> answer")  # what the registry's `t.qa` factory builds
program.load(sys.argv[1], allow_unsafe_lm_state=True)
print(json.dumps([program(**ex.inputs()).answer for ex in reg.splits()["test"]]))
"""

# A fresh interpreter asking the client for a live program (worker extra, registry from BTQ_IMPORTS).
CLIENT_PROGRAM = """
import json, sys
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from tests import fixture_registry as reg
program = JobClient(ProducerSettings()).program(sys.argv[1], strategy=sys.argv[2])
print(json.dumps([program(**ex.inputs()).answer for ex in reg.splits()["test"]]))
"""


def _env(fleet: Fleet) -> dict[str, str]:
    return {
        **os.environ,
        "BTQ_REDIS_URL": fleet.url,
        "BTQ_QUEUE": fleet.queue,
        "BTQ_IMPORTS": '["tests.fixture_registry"]',
        "BTQ_ARTIFACT_DIR": fleet.artifact_dir,
        "PYTHONPATH": str(ROOT),
    }


def _run(fleet: Fleet, *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _worker_predictions(fleet: Fleet, client: JobClient, result: JobResult, strategy: str) -> list[Any]:
    """Predictions of the candidate as a worker builds it (ResolvedJob.student_from_state, LMs launched)."""
    registry = Registry()
    reg.register(registry)
    settings = WorkerSettings(redis_url=fleet.url, artifact_dir=fleet.artifact_dir)
    resources = WorkerResources(artifacts=store_from_url(settings.artifact_dir))
    job = ResolvedJob.resolve(client.spec(result.job_id), registry, resources, settings)
    candidate = next(c for c in result.candidates if c.strategy == strategy)
    program = job.student_from_state(dict(candidate.program_state))
    return [program(**ex.inputs()).answer for ex in reg.splits()["test"]]


def test_exported_program_loads_in_plain_dspy_and_predicts_as_the_worker(
    fleet: Fleet, client: JobClient, tmp_path: Path
) -> None:
    job_id = client.submit(spec("p -> w", "given", True, 5))
    result = client.wait(job_id, timeout_s=120)
    held_out = client.evaluate(job_id, "t.arith", "test", timeout_s=120)
    candidate = next(c for c in result.candidates if c.strategy == "p -> w")

    path = tmp_path / "winner.json"
    exported = _run(fleet, "-m", "btq.producer.cli", "export", job_id, "--strategy", "p -> w", "-o", str(path))
    assert f"wrote {path}" in exported.stdout
    manifest = json.loads((tmp_path / "winner.manifest.json").read_text())
    [lm] = manifest["predictors"]
    assert (manifest["job_id"], manifest["strategy"], manifest["program"]) == (job_id, "p -> w", "t.qa")
    assert lm["fine_tuned"] and lm["base_model"] == "sim/t-small" and ":ft-" in lm["model"]
    assert (Path(fleet.artifact_dir) / lm["artifact"].replace("/", "__").replace(":", "_")).is_dir()
    assert json.loads(path.read_text())["metadata"]["dependency_versions"]["dspy"]
    assert client.export(job_id, strategy="p -> w").program_json() == path.read_text()  # the same file from Python

    loaded = json.loads(_run(fleet, "-c", LOAD_AND_PREDICT, str(path)).stdout)
    assert loaded == _worker_predictions(fleet, client, result, "p -> w")
    # The fine-tune and demos change answers: a load that lost them would predict as the baseline does.
    assert loaded != _worker_predictions(fleet, client, result, "")
    test = reg.splits()["test"]
    score = 100 * sum(str(p).strip() == str(ex.answer) for p, ex in zip(loaded, test, strict=True)) / len(test)
    assert held_out.scores[str(candidate.step_index)] == round(score, 2)

    live = json.loads(_run(fleet, "-c", CLIENT_PROGRAM, job_id, "p -> w").stdout)
    assert live == loaded


def test_export_names_a_missing_candidate_and_exits_2(fleet: Fleet, client: JobClient, tmp_path: Path) -> None:
    job_id = client.submit(spec("p", "given", True, 5))
    client.wait(job_id, timeout_s=120)
    done = subprocess.run(
        [sys.executable, "-m", "btq.producer.cli", "export", job_id, "--rank", "9", "-o", str(tmp_path / "x.json")],
        cwd=ROOT,
        env=_env(fleet),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"cannot export: --rank 9: job {job_id} has ranks 1..2"]
    assert not (tmp_path / "x.json").exists()
