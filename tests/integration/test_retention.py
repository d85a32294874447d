"""Retention: a finished job's keys expire after the job TTL; the job index forgets expired jobs."""

import time

import pytest
import redis

from btq.schemas import keys
from btq.worker.core.ranking import build_result
from btq.worker.state.store import JobStore
from tests.conftest import redis_url

pytestmark = pytest.mark.integration


def test_finished_job_keys_get_the_ttl_and_old_index_entries_go() -> None:
    client = redis.Redis.from_url(redis_url(4))
    client.flushdb()
    store = JobStore(client, job_ttl_s=60)
    client.zadd(keys.JOBS_INDEX, {"ancient": time.time() - 3600, "fresh": time.time()})
    client.set(keys.job_key("fresh", "spec"), "{}")
    client.set(keys.step_key("fresh", 0), "{}")

    store.put_result(build_result("fresh", "p", 1, [], cancelled=False), steps=1)

    assert 0 < client.ttl(keys.job_key("fresh", "spec")) <= 60
    assert 0 < client.ttl(keys.step_key("fresh", 0)) <= 60
    assert 0 < client.ttl(keys.job_key("fresh", "result")) <= 60
    assert [m.decode() for m in client.zrange(keys.JOBS_INDEX, 0, -1)] == ["fresh"]
