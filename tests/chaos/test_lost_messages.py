"""The sweeper and the job watchdog: a job whose message was lost is re-driven; lost manifests come back."""

from collections.abc import Iterator

import pytest

from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.events import EventType
from tests.conftest import Fleet, running_fleet, wait_until
from tests.integration.test_parity import assert_same, spec

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

FAST_SWEEP = {"BTQ_STEP_LEASE_TTL_S": "2", "BTQ_SWEEP_INTERVAL_S": "0.5", "BTQ_WORKER_MANIFEST_TTL_S": "3"}


@pytest.fixture(scope="module")
def sweep_fleet() -> Iterator[Fleet]:
    with running_fleet(7, "btq-sweep", ["sa"], FAST_SWEEP) as fleet:
        yield fleet


def test_a_job_whose_message_was_lost_is_re_driven_and_finishes_identically(sweep_fleet: Fleet) -> None:
    # Given a job of this fleet whose first message the broker lost: it is enqueued where no worker reads,
    # that queue is dropped, and the job's recorded queue is the fleet's own (as if it had been sent there)
    client = sweep_fleet.client()
    job = spec("p -> p", "given", True, 21)
    job_id = JobClient(ProducerSettings(redis_url=sweep_fleet.url, queue="btq-nowhere")).submit(job)
    status = keys.job_key(job_id, "status")
    assert client.redis.delete(client.redis.hget(status, "queue") or b"") == 1, "the step message was queued"
    client.redis.hset(status, "queue", client.route(client.validate(job)))

    # When the sweeper finds step 0 without a sign of life and nothing queued, it re-drives the whole chain
    result = client.wait(job_id, timeout_s=60)

    # Then the job ends with the undisturbed result, each step announced once, and leaves the running index
    assert_same(result, job)
    events = [e for _, e in client.events(job_id)]
    assert [e.step_index for e in events if e.type is EventType.STEP_SUCCEEDED] == [0, 1, 2]
    assert client.redis.zscore(keys.RUNNING_STEPS, keys.running_member(job_id, 3)) is None


def test_a_manifest_lost_with_redis_data_is_published_again(sweep_fleet: Fleet) -> None:
    client = sweep_fleet.client()
    names = [n.decode() for n in client.redis.zrange(keys.WORKERS, 0, -1)]
    # What a Redis restarted without persistence looks like: no worker manifest left.
    client.redis.delete(*[keys.worker_key(n, "manifest") for n in names], keys.WORKERS)

    wait_until(lambda: client.redis.zcard(keys.WORKERS) >= 1, 10, "the manifest published again")
    assert client.manifest().programs
