"""The sweeper on a real Redis: which steps count as lost, exactly-once re-drive, and the stall watchdog.

The sweeper's `redrive` is where it hands a step to Celery; here it records the calls, so each decision
is visible without a broker (the end-to-end path is in tests/chaos).
"""

import time
from collections.abc import Iterator

import pytest
import redis

from btq.producer.fleet.validation import parse_spec
from btq.schemas import keys
from btq.schemas.result import StepOutcome
from btq.worker.celery.sweeper import Sweeper
from btq.worker.settings import WorkerSettings
from btq.worker.state.store import JobStore
from tests.conftest import redis_url
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

SETTINGS = WorkerSettings(
    queue="btq-sweeper-test", step_lease_ttl_s=2, job_stall_timeout_s=30, max_deliveries_per_step=2
)
JOB = "job1"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url(6))
    conn.flushdb()
    conn.set(keys.job_key(JOB, "spec"), parse_spec(spec("p -> p", "given", True, 1)).model_dump_json())
    yield conn
    conn.close()


def _sweeper(client: redis.Redis, calls: list[tuple[str, int, int]], name: str = "s1") -> Sweeper:
    return Sweeper(client, SETTINGS, lambda job, index, steps: calls.append((job, index, steps)), name)


def _silent_since(client: redis.Redis, index: int, seconds_ago: float, attempts: int = 0) -> None:
    client.zadd(keys.RUNNING_STEPS, {keys.running_member(JOB, index): time.time() - seconds_ago})
    if attempts:
        client.set(keys.attempts_key(JOB, index), attempts)


def test_a_started_step_whose_lease_lapsed_is_re_driven_once_by_one_of_two_sweepers(client: redis.Redis) -> None:
    _silent_since(client, 1, seconds_ago=5, attempts=1)
    client.rpush(SETTINGS.queue, b"another job's message")  # a busy queue does not hide a started step
    calls: list[tuple[str, int, int]] = []

    first = _sweeper(client, calls, "s1").sweep_once()
    second = _sweeper(client, calls, "s2").sweep_once()

    assert first == [(JOB, 1)] and second == []
    assert calls == [(JOB, 1, 2)], "re-driven with the rest of a 2-step chain, once"


def test_live_lease_recorded_step_and_queued_step_are_left_alone(client: redis.Redis) -> None:
    calls: list[tuple[str, int, int]] = []
    _silent_since(client, 1, seconds_ago=5, attempts=1)
    client.set(keys.lease_key(JOB, 1), "holder", px=10_000)
    assert _sweeper(client, calls).sweep_once() == []

    client.delete(keys.lease_key(JOB, 1))
    _silent_since(client, 1, seconds_ago=1, attempts=1)  # heartbeat younger than the lease TTL
    assert _sweeper(client, calls).sweep_once() == []

    client.zrem(keys.RUNNING_STEPS, keys.running_member(JOB, 1))
    _silent_since(client, 0, seconds_ago=5)  # never started, messages waiting: just queued
    client.rpush(SETTINGS.queue, b"a message")
    assert _sweeper(client, calls).sweep_once() == []
    assert calls == []


def test_a_step_whose_messages_keep_getting_lost_is_failed_with_the_reason(client: redis.Redis) -> None:
    calls: list[tuple[str, int, int]] = []
    for _ in range(SETTINGS.max_deliveries_per_step + 1):
        _silent_since(client, 0, seconds_ago=5)  # never started, nothing queued
        client.delete(keys.sweep_key(JOB, 0, 0))  # what the claim's expiry (the stall timeout) does
        _sweeper(client, calls).sweep_once()

    assert calls[:-1] == [(JOB, 0, 2)] * SETTINGS.max_deliveries_per_step
    assert calls[-1] == (JOB, 1, 2), "after the failure record the chain goes on to skip and finalize"
    record = JobStore(client, 60).step(JOB, 0)
    assert record is not None and record.outcome is StepOutcome.FAILED
    assert record.error is not None and record.error.type == "JobStalledError"
