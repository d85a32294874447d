"""An intake entry whose enqueue fails (the broker is unreachable) stays pending and is not lost."""

import json
import uuid

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.intake import RETRY, Intake, job_id_for, submission_status
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.intake import SubmissionState
from tests.conftest import Fleet, redis_url
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def test_an_entry_whose_enqueue_fails_stays_pending_and_is_accepted_once_the_broker_answers(fleet: Fleet) -> None:
    good = fleet.client()
    settings = ProducerSettings(redis_url=fleet.url, queue=fleet.queue, intake_claim_idle_s=0.0)
    # Given an intake whose Celery broker does not answer (job store and stream are reachable)
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    broken = Intake(JobClient(unreachable, client=good.redis), consumer=f"broken-{uuid.uuid4().hex[:6]}")
    broken.client.celery.conf.broker_connection_timeout = 1
    broken.client.celery.conf.task_publish_retry = False
    broken.ensure_group()
    sid = f"retry-{uuid.uuid4().hex}"
    good.redis.xadd(keys.INTAKE, {"job": json.dumps(spec("p", "given", True, 3)), "submission_id": sid})
    entries = broken._read_new()
    entry = next(e for e in entries if e[1].get(b"submission_id") == sid.encode())
    # When handling it fails to enqueue
    assert broken.handle(*entry) is RETRY
    # Then nothing was decided or left behind, and the entry is still pending
    assert submission_status(good.redis, sid) is None
    assert not good.redis.exists(keys.job_key(job_id_for(sid), "spec"))
    pending = good.redis.xpending_range(keys.INTAKE, keys.INTAKE_GROUP, min=entry[0], max=entry[0], count=1)
    assert len(pending) == 1
    # And a healthy intake takes it over and accepts it
    healthy = Intake(JobClient(settings), consumer=f"healthy-{uuid.uuid4().hex[:6]}")
    while healthy.serve_once():
        pass
    status = submission_status(good.redis, sid)
    assert status is not None and status.state is SubmissionState.ACCEPTED
    assert good.wait(status.job_id, timeout_s=120).state.value == "succeeded"


def test_with_no_live_worker_an_entry_is_retried_then_rejected_after_the_delivery_cap() -> None:
    url = redis_url(9)
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = ProducerSettings(redis_url=url, queue="btq-nofleet", intake_claim_idle_s=0.0, intake_max_deliveries=2)
    intake = Intake(JobClient(settings), consumer="solo")
    intake.ensure_group()
    client.xadd(keys.INTAKE, {"job": json.dumps(spec("p", "given", True, 3)), "submission_id": "lonely"})
    # First delivery: no worker is alive (a fleet restart?), so the entry stays pending
    assert intake.serve_once() == 1
    assert submission_status(client, "lonely") is None
    # Second delivery (claimed again): the cap is reached, the submission is rejected saying why
    assert intake.serve_once() == 1
    status = submission_status(client, "lonely")
    assert status is not None and status.state is SubmissionState.REJECTED
    assert "no live worker" in (status.message or "")
    assert client.xpending(keys.INTAKE, keys.INTAKE_GROUP)["pending"] == 0
    assert client.zcard(keys.JOBS_INDEX) == 0
