"""MLflow: `btq mlflow` logs the fleet's real jobs into a real tracking server, one run per job with a nested
run per step; a replay of the whole stream creates no duplicate run and logs no metric twice."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from mlflow import MlflowClient

from btq.schemas import keys
from btq.worker.core.registry import Registry
from tests import fixture_registry
from tests.conftest import ROOT
from tests.observability.conftest import QUEUE, ObservedFleet, free_port
from tests.observability.mlflow_server import mlflow_server

pytestmark = pytest.mark.integration


def _registry() -> Registry:
    registry = Registry()
    fixture_registry.register(registry)
    return registry


def _export(observed: ObservedFleet, uri: str) -> str:
    env = {**os.environ, "BTQ_REDIS_URL": observed.fleet.url, "BTQ_QUEUE": QUEUE, "MLFLOW_TRACKING_URI": uri}
    argv = [sys.executable, "-m", "btq.producer.cli", "mlflow", "--once", "--experiment", "btq-test"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_jobs_become_nested_runs_and_a_replay_changes_nothing(observed: ObservedFleet) -> None:
    with mlflow_server(free_port()) as uri:
        # Given: the fixture's finished job (p -> w -> p) in the event stream.
        assert "events logged" in _export(observed, uri)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("btq-test")
        assert experiment is not None
        where = f"tags.`btq.job_id` = '{observed.job_id}'"
        runs = client.search_runs([experiment.experiment_id], filter_string=where)
        job_runs = [r for r in runs if r.data.tags["btq.kind"] == "job"]
        step_runs = sorted(
            (r for r in runs if r.data.tags["btq.kind"] == "step"), key=lambda r: int(r.data.tags["btq.step"])
        )
        # Then: one job run, with one nested run per step.
        assert len(job_runs) == 1
        job = job_runs[0]
        assert [r.data.tags["mlflow.parentRunId"] for r in step_runs] == [job.info.run_id] * 4
        assert job.info.status == "FINISHED"
        assert job.data.params["strategy"] == "p -> w -> p"
        assert job.data.params["seed"] == "5"
        assert job.data.params["optimizer.p"] == "BootstrapFewShotWithRandomSearch"
        assert json.loads(job.data.params["optimizer.p.kwargs"])["num_candidate_programs"] == 2
        assert json.loads(job.data.params["trainset"]) == {"dataset": "t.arith", "split": "train"}
        assert job.data.tags["outcome"] == "succeeded"
        best = observed.result.best
        assert best is not None
        assert job.data.metrics["best_score"] == best.score
        # LM usage: each step run and the job run carry calls and tokens; the steps add up to the job.
        usage = observed.result.usage
        assert usage is not None and usage.calls > 0
        assert job.data.metrics["lm.calls"] == usage.calls
        assert job.data.metrics["lm.prompt_tokens"] == usage.prompt_tokens
        assert sum(r.data.metrics.get("lm.calls", 0) for r in step_runs) == usage.calls
        assert [r.data.metrics.get("score") for r in step_runs] == [
            c.score for c in sorted(observed.result.candidates, key=lambda c: c.step_index)
        ]
        assert [r.data.params.get("optimizer") for r in step_runs] == [
            None,
            "BootstrapFewShotWithRandomSearch",
            "BootstrapFinetune",
            "BootstrapFewShotWithRandomSearch",
        ]
        assert all(
            r.data.tags["worker"] and r.data.tags["attempt"] == "1" and r.data.tags["outcome"] == "succeeded"
            for r in step_runs
        )
        artifacts = {a.path for a in client.list_artifacts(job.info.run_id)}
        assert {"spec.json", "best_program.json", "candidates"} <= artifacts
        assert len(client.list_artifacts(job.info.run_id, "candidates")) == 4
        path = client.download_artifacts(job.info.run_id, "best_program.json", str(observed.tmp))
        saved = json.loads(Path(path).read_text())
        assert "dependency_versions" in saved["metadata"]
        assert {k: v for k, v in saved.items() if k != "metadata"} == best.program_state
        # dspy loads it as a saved program (our own trusted state names the simulated LM's engine).
        program = _registry().get("programs", "t.qa")()
        program.load(path, allow_unsafe_lm_state=True)
        assert len(program.demos) == len(best.program_state["demos"])  # type: ignore[arg-type]  # t.qa is one Predict
        assert [a.path for a in client.list_artifacts(step_runs[1].info.run_id)] == ["program.json"]

        # When: the exporter starts over from the beginning of the stream (its cursor lost).
        redis.Redis.from_url(observed.fleet.url).delete(keys.MLFLOW_CURSOR)
        _export(observed, uri)
        # Then: the same runs, and the job's score curve has one point per step, not two.
        again = client.search_runs([experiment.experiment_id], filter_string=where)
        assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
        assert len(client.get_metric_history(job.info.run_id, "score")) == 4
        print(
            f"\nmlflow run tree of job {observed.job_id}: experiment {experiment.experiment_id}, run {job.info.run_id}"
        )
