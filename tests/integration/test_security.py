"""JSON only on the wire: a pickled message is refused and runs nothing."""

import pytest
from celery import Celery

from btq.producer.client import JobClient
from btq.schemas import keys
from tests.conftest import Fleet
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def test_pickle_message_is_refused_and_the_step_never_runs(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 3))
    client.wait(job_id, timeout_s=60)
    sender = Celery("attacker", broker=fleet.broker_url or fleet.url, set_as_current=False)
    sender.conf.update(task_serializer="pickle", accept_content=["pickle", "json"])
    # A fresh job id whose step 0 would be stored if the message ran; the spec is copied so a worker could.
    forged = "forged" + job_id
    client.redis.set(keys.job_key(forged, "spec"), client.redis.get(keys.job_key(job_id, "spec")) or b"")
    sender.send_task(keys.TASK_STEP, args=(forged, 0), queue=fleet.queue, serializer="pickle")
    # A JSON message sent after it proves the workers consumed the queue past the pickled one.
    probe = client.submit(spec("p", "given", True, 4))
    client.wait(probe, timeout_s=60)
    assert client.redis.get(keys.step_key(forged, 0)) is None
    assert any(
        "Refusing to deserialize untrusted content of type pickle" in log.read_text() for log in fleet.logs.values()
    )
