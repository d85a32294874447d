"""Redis stopped and restarted mid-step (with AOF): the job finishes with the undisturbed result.

A Redis of our own (a free port, `--appendonly yes`, a temporary directory) holds broker, store and
events. While a step runs, Redis shuts down, stays down for a few seconds, and comes back with its data.
The step's Redis errors must not be scored: the step is retried (re-driven by the sweeper once its lease
lapsed), the waiting client reconnects, and the result equals the in-process reference.
"""

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from btq.schemas import keys
from btq.schemas.events import EventType
from tests.conftest import Fleet, wait_until
from tests.integration.test_crash import run_until_started, slow_job
from tests.integration.test_parity import assert_same

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

OUTAGE_S = 6.0
"""How long Redis stays down: longer than a lease renewal period, like a restart of a loaded server."""
FAST_RECOVERY = {"BTQ_STEP_LEASE_TTL_S": "6", "BTQ_SWEEP_INTERVAL_S": "2"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AofRedis:
    """A redis-server with append-only persistence in a directory, stoppable and restartable."""

    def __init__(self, directory: Path, extra_args: list[str] | None = None) -> None:
        self.directory = directory
        self.extra_args = extra_args or []
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", *self.extra_args]
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 20, "redis-server answering")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SHUTDOWN: the AOF is complete on disk
            self.proc.wait(timeout=20)


@pytest.fixture
def aof_redis() -> Iterator[AofRedis]:
    with tempfile.TemporaryDirectory(prefix="btq-aof-") as tmp:
        server = AofRedis(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def test_redis_restart_mid_step_loses_no_job_and_changes_no_score(aof_redis: AofRedis) -> None:
    with tempfile.TemporaryDirectory(prefix="btq-test-") as tmp:
        fleet = Fleet(url=aof_redis.url, queue="btq-restart", artifact_dir=tmp, extra_env=FAST_RECOVERY)
        try:
            for name in ("ra", "rb"):
                fleet.start(name)
            fleet.wait_ready(["ra", "rb"])
            client = fleet.client()
            wait_until(lambda: client.redis.zcard(keys.WORKERS) >= 2, 30, "both workers' manifests")
            job = slow_job("p -> p -> p")
            job["optimizers"]["p"]["kwargs"]["num_candidate_programs"] = 6
            job_id = client.submit(job)
            run_until_started(client, job_id, 2)
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(client.wait, job_id, 240)  # a client waiting through the outage

                aof_redis.stop()
                time.sleep(OUTAGE_S)  # the outage itself, not a wait for a condition
                aof_redis.start()

                result = waiting.result(timeout=260)
            assert_same(result, job)
            events = [e for _, e in client.events(job_id)]
            assert [e.step_index for e in events if e.type is EventType.STEP_SUCCEEDED] == [0, 1, 2, 3]
            assert events[-1].type is EventType.JOB_SUCCEEDED
            restarts = [e.attempt for e in events if e.type is EventType.STEP_STARTED and e.step_index == 2]
            assert len(restarts) >= 2, "the step cut by the outage ran again instead of being scored"
            assert client.redis.ttl(f"btq:job:{job_id}:spec") > 0, "the finished job's keys have their TTL"
        finally:
            fleet.stop()
