"""The intake and the worker presence outlive a Redis outage (a restart that lost every key)."""

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from btq.producer.intake import submission_status
from btq.schemas import keys
from btq.schemas.intake import SubmissionState
from tests.conftest import Fleet, wait_until
from tests.intake_process import running_intake
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A memory-only redis-server of this test's own, stopped afterwards."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: _answers(client), 10, f"redis-server on port {port}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_after_redis_restarts_empty_workers_reappear_and_the_intake_serves_again() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    job = json.dumps(spec("p", "given", True, 3))
    with tempfile.TemporaryDirectory(prefix="btq-outage-") as tmp:
        fleet = Fleet(url=url, queue="btq-outage", artifact_dir=tmp, extra_env={"BTQ_WORKER_MANIFEST_TTL_S": "3"})
        with redis_server(port) as server:
            try:
                fleet.start("oa")
                fleet.wait_ready(["oa"])
                wait_until(lambda: client.zcard(keys.WORKERS) == 1, 30, "the worker's manifest")
                with running_intake(fleet) as intake:
                    client.xadd(keys.INTAKE, {"job": job, "submission_id": "before"})
                    wait_until(lambda: submission_status(client, "before"), 30, "the first outcome")
                    # When Redis stops and comes back empty
                    server.terminate()
                    server.wait(timeout=10)
                    with redis_server(port):
                        # Then the worker's heartbeat republishes its manifest, the intake recreates its
                        # group and accepts the next submission, and both processes are still running
                        wait_until(lambda: _answers(client) and client.zcard(keys.WORKERS) == 1, 30, "manifest again")
                        wait_until(lambda: _group_exists(client), 30, "the intake's group again")
                        client.xadd(keys.INTAKE, {"job": job, "submission_id": "after"})
                        status = wait_until(lambda: submission_status(client, "after"), 30, "the second outcome")
                        assert getattr(status, "state", None) is SubmissionState.ACCEPTED
                        assert intake.poll() is None and fleet.procs["oa"].poll() is None
            finally:
                fleet.stop()


def _group_exists(client: redis.Redis) -> bool:
    try:
        return any(g["name"] == keys.INTAKE_GROUP.encode() for g in client.xinfo_groups(keys.INTAKE))
    except redis.ResponseError:
        return False
