"""Heterogeneous fleets: workers with different registries, jobs routed to the workers that can run them."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.exceptions import JobValidationError
from tests.conftest import ROOT, Fleet, redis_url, wait_until
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

DB = 8
QUEUE = "btq-hetero"
TTL_ENV = {"BTQ_WORKER_MANIFEST_TTL_S": "3"}


@pytest.fixture(scope="module")
def hetero() -> Iterator[Fleet]:
    """Worker `ha` registers tests.fixture_registry, worker `hb` tests.fixture_registry_b (b.* entries)."""
    url = redis_url(DB)
    redis.Redis.from_url(url).flushdb()
    with tempfile.TemporaryDirectory(prefix="btq-hetero-") as tmp:
        fleet = Fleet(url=url, queue=QUEUE, artifact_dir=tmp, extra_env=dict(TTL_ENV))
        try:
            fleet.start("ha")
            fleet.extra_env = {**TTL_ENV, "BTQ_IMPORTS": '["tests.fixture_registry_b"]'}
            fleet.start("hb")
            fleet.wait_ready(["ha", "hb"])
            live = redis.Redis.from_url(url)
            wait_until(lambda: live.zcard(keys.WORKERS) == 2, 30, "both manifests")
            yield fleet
        finally:
            fleet.stop()


def b_job(strategy: str = "p -> w", lm: str = "b.sim") -> dict[str, Any]:
    job = spec(strategy, "given", True, 3, program={"name": "b.qa"}, lm=lm, metric="b.exact")
    return {
        **job,
        "trainset": {"dataset": "b.arith", "split": "train"},
        "valset": {"dataset": "b.arith", "split": "val"},
    }


def test_a_job_naming_what_only_b_registered_runs_every_step_on_b(hetero: Fleet) -> None:
    # Given two workers, only hb registering the b.* entries
    client = hetero.client()
    # When a job naming them is submitted
    job_id = client.submit(b_job())
    result = client.wait(job_id, timeout_s=120)
    # Then it ran, and every step and the final task ran on hb
    assert result.state.value == "succeeded"
    workers = {e.worker for _, e in client.events(job_id) if e.worker}
    assert workers and all(w.startswith("hb@") for w in workers), workers
    records = [json.loads(client.redis.get(keys.step_key(job_id, i)) or "{}") for i in range(3)]
    assert all(r["worker"].startswith("hb@") for r in records)


def test_common_jobs_are_routed_to_one_profile_queue_both_can_share(hetero: Fleet) -> None:
    client = hetero.client()
    job_id = client.submit(spec("p", "given", True, 3))
    queue = client.redis.hget(keys.job_key(job_id, "status"), "queue")
    assert queue is not None and queue.decode().startswith(f"{QUEUE}.profile.")
    assert client.wait(job_id, timeout_s=120).state.value == "succeeded"


def test_a_job_naming_what_no_live_worker_has_is_refused_with_the_names(hetero: Fleet) -> None:
    client = hetero.client()
    before = client.redis.zcard(keys.JOBS_INDEX)
    with pytest.raises(JobValidationError) as refused:
        client.submit(spec("p", "given", True, 3, program={"name": "nowhere.qa"}))
    assert refused.value.field == "program.name"
    assert "'nowhere.qa' is not registered" in str(refused.value)
    # Every entry exists somewhere, but no one worker has them all: refused, naming what each lacks.
    with pytest.raises(JobValidationError) as split:
        client.submit({**b_job(), "metric": "t.exact"})
    message = str(split.value)
    assert "no live worker registers everything this job names" in message
    assert "lack metric 't.exact'" in message and "lack program 'b.qa'" in message
    assert client.redis.zcard(keys.JOBS_INDEX) == before


def test_btq_workers_lists_each_worker_with_what_it_registered(hetero: Fleet) -> None:
    env = {**os.environ, "BTQ_REDIS_URL": hetero.url, "BTQ_QUEUE": QUEUE, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "btq.producer.cli", "workers", "--json"],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    listed = {w["name"].split("@")[0]: w for w in map(json.loads, out.stdout.splitlines())}
    assert set(listed) == {"ha", "hb"}
    assert "b.qa" in listed["hb"]["registered"]["programs"]
    assert "b.qa" not in listed["ha"]["registered"]["programs"]
    assert listed["ha"]["profile"] != listed["hb"]["profile"]


def test_btq_workers_shows_what_a_worker_is_running(hetero: Fleet) -> None:
    client = hetero.client()
    job_id = client.submit(b_job("p -> p", lm="b.sim_slow"))

    def running_on_hb() -> bool:
        workers = {w.name.split("@")[0]: w for w in client.fleet.workers(with_running=True)}
        return any(job_id in r["args"] for r in workers["hb"].running.values())

    wait_until(running_on_hb, 60, "hb to report the job's step as running")
    client.wait(job_id, timeout_s=180)


def test_after_b_dies_and_its_manifest_expires_the_same_job_is_refused(hetero: Fleet) -> None:
    # Run last in this module: it kills hb.
    client: JobClient = hetero.client()
    hetero.procs["hb"].send_signal(signal.SIGKILL)
    hetero.procs["hb"].wait(timeout=10)
    started = time.monotonic()
    wait_until(lambda: len(client.fleet.workers()) == 1, 15, "hb's manifest to expire")
    assert time.monotonic() - started < 10  # the 3 s expiry, plus a heartbeat period at most
    with pytest.raises(JobValidationError) as refused:
        client.submit(b_job())
    assert "'b.qa' is not registered" in str(refused.value)
