"""A worker that cannot load its registry refuses to start; a task's escaped exception still ends the job."""

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import redis

from btq.producer.client import JobClient, celery_client
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.result import StepOutcome, StepRecord
from tests.conftest import Fleet, redis_url, running_fleet, wait_until
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

DB = 9
QUEUE = "btq-broken"


def test_a_worker_whose_registry_module_fails_to_import_exits_non_zero_and_takes_no_message() -> None:
    url = redis_url(DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    # Given a step message waiting on the queue
    sender = celery_client(ProducerSettings(redis_url=url, queue=QUEUE))
    sender.send_task(keys.TASK_STEP, args=("no-such-job", 0), queue=QUEUE)
    assert client.llen(QUEUE) == 1
    with tempfile.TemporaryDirectory(prefix="btq-broken-") as tmp:
        fleet = Fleet(
            url=url, queue=QUEUE, artifact_dir=tmp, extra_env={"BTQ_IMPORTS": '["tests.fixture_broken_registry"]'}
        )
        try:
            # When a worker whose registry module cannot be imported starts
            started = time.monotonic()
            fleet.start("broken")
            code = fleet.procs["broken"].wait(timeout=30)
            took = time.monotonic() - started
        finally:
            fleet.stop()
        log = fleet.logs["broken"].read_text()
    # Then it exits non-zero within seconds, saying why, and the message is still queued
    assert code != 0
    assert took < 20, f"took {took:.1f}s to exit"
    assert "No module named 'btq_missing_dependency_for_tests'" in log
    assert client.llen(QUEUE) == 1
    assert client.zcard(keys.WORKERS) == 0


def test_an_exception_escaping_a_step_is_recorded_and_the_job_still_ends(fleet: Fleet, client: JobClient) -> None:
    # Given a job whose step 1 will hit a bug outside the optimizer: its lease key holds the wrong type,
    # so taking the lease raises inside the task, before the step's own error handling.
    job_id = "escaped" + str(time.time_ns())
    client.redis.hset(keys.lease_key(job_id, 1), "corrupt", "1")
    # When it runs
    client.submit(spec("p -> p", "given", True, 3), job_id=job_id)
    result = client.wait(job_id, timeout_s=120)
    # Then step 1 is a recorded failure, step 2 is skipped and the job ended with the best so far
    step1 = StepRecord.model_validate_json(client.redis.get(keys.step_key(job_id, 1)) or b"")
    assert step1.outcome is StepOutcome.FAILED
    assert step1.error is not None and step1.error.type == "ResponseError"
    step2 = StepRecord.model_validate_json(client.redis.get(keys.step_key(job_id, 2)) or b"")
    assert step2.outcome is StepOutcome.SKIPPED
    assert result.flag_compilation_error_occurred is True
    assert [c.strategy for c in result.candidates] == [""]
    failed = [e for _, e in client.events(job_id) if e.type.value == "step.failed"]
    assert len(failed) == 1 and json.dumps(failed[0].detail).find("escaped") >= 0


def test_a_worker_started_as_python_m_celery_survives_sighup_and_keeps_working() -> None:
    with running_fleet(13, "btq-hangup", ["ha"]) as fleet:
        proc = fleet.procs["ha"]
        # Its first job runs through the pool: the worker is fully up when the signal arrives.
        client = fleet.client()
        client.wait(client.submit(spec("p", "given", True, 3)), timeout_s=120)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children, "a prefork worker has pool children"
        proc.send_signal(signal.SIGHUP)
        for child in children:  # as a hangup of the whole process group would
            os.kill(int(child), signal.SIGHUP)
        wait_until(lambda: "SIGHUP ignored" in fleet.logs["ha"].read_text(), 30, "the worker logging the SIGHUP")
        assert proc.poll() is None, fleet.logs["ha"].read_text()[-3000:]
        result = client.wait(client.submit(spec("p -> p", "given", True, 4)), timeout_s=120)
        assert result.state.value == "succeeded"
        assert proc.poll() is None and "Restarting celery worker" not in fleet.logs["ha"].read_text()
        alive = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert alive == children, "a pool child died of the SIGHUP and was replaced"
