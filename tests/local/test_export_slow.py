"""Export and load on the real model: a fine-tuned SmolLM2 program comes back with its LoRA and predicts alike.

Opt-in (`-m slow`, minutes on 2 CPU cores): a `w` job (a short CPU fine-tune) on one local worker, then
`btq export` writes the program and its manifest, and a fresh process gets a working module with
`JobClient.program` (the adapter fetched from the artifact store and served by llama.cpp). Its answers on
the held-out split score exactly what the worker's own held-out evaluation scored.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from btq.producer.demo.jobs import LOCAL
from btq.worker.artifacts.store import safe_artifact_name
from btq.worker.lm.local.tasks.catalog import author_splits, catalog_exact
from tests.conftest import ROOT, running_fleet

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PREDICT = """
import json, sys
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.worker.lm.local.tasks.catalog import author_splits
program = JobClient(ProducerSettings()).program(sys.argv[1], strategy="w")
print(json.dumps([program(**ex.inputs()).toDict() for ex in author_splits()["test"]]))
"""


@pytest.mark.timeout(3600)
def test_a_fine_tuned_local_program_exports_and_loads_with_its_adapter(local_extra: None, tmp_path: Path) -> None:
    spec = json.loads(json.dumps(LOCAL.spec))
    spec["strategy"] = "w"
    spec["optimizers"]["w"]["kwargs"]["train_kwargs"] = {"max_steps": 4}
    env = {"BTQ_IMPORTS": '["btq.worker.lm.local.registry"]'}
    with running_fleet(5, "btq-export-slow", ["xa"], env) as fleet:
        client = fleet.client()
        job_id = client.submit(spec)
        result = client.wait(job_id, timeout_s=2400)
        assert [c.strategy for c in result.candidates if c.strategy == "w"] == ["w"], result.error
        held_out = client.evaluate(job_id, *LOCAL.held_out, timeout_s=1200)
        step = next(c.step_index for c in result.candidates if c.strategy == "w")

        run_env = {
            **os.environ,
            "BTQ_REDIS_URL": fleet.url,
            "BTQ_QUEUE": fleet.queue,
            "BTQ_ARTIFACT_DIR": fleet.artifact_dir,
            **env,
            "PYTHONPATH": str(ROOT),
        }
        path = tmp_path / "catalog.json"
        subprocess.run(
            [sys.executable, "-m", "btq.producer.cli", "export", job_id, "--strategy", "w", "-o", str(path)],
            cwd=ROOT,
            env=run_env,
            check=True,
            timeout=120,
        )
        [lm] = json.loads((tmp_path / "catalog.manifest.json").read_text())["predictors"]
        assert lm["fine_tuned"] and lm["base_model"] == "llamacpp/smollm2-135m-instruct"
        assert (Path(fleet.artifact_dir) / safe_artifact_name(lm["artifact"])).is_dir()

        done = subprocess.run(
            [sys.executable, "-c", PREDICT, job_id],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=True,
        )
    answers = json.loads(done.stdout.splitlines()[-1])
    test = author_splits()["test"]
    correct = sum(bool(catalog_exact(ex, dspy.Prediction(**a))) for ex, a in zip(test, answers, strict=True))
    print(f"held-out: worker {held_out.scores[str(step)]}, fresh process {100 * correct / len(test):.2f}")
    assert held_out.scores[str(step)] == round(100 * correct / len(test), 2)
