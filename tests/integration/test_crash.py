"""Crash: a worker killed with SIGKILL mid-step; the other worker runs the step; nothing is recorded twice."""

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.events import EventType, JobEvent
from tests.conftest import Fleet, running_fleet
from tests.integration.test_parity import assert_same, spec

pytestmark = pytest.mark.integration

# Visibility timeout well above the longest step (under 1 s here), so only a lost message is redelivered.
CRASH_ENV = {"BTQ_VISIBILITY_TIMEOUT_S": "8", "BTQ_UNACKED_RESTORE_INTERVAL_S": "1", "BTQ_STEP_LEASE_TTL_S": "3"}


def slow_job(strategy: str) -> dict[str, Any]:
    job = spec(strategy, "given", True, 31)
    job["lm"] = "t.sim_slow"
    job["optimizers"]["p"] = {
        "optimizer": "BootstrapFewShotWithRandomSearch",
        "kwargs": {"num_candidate_programs": 1, "max_bootstrapped_demos": 2},
    }
    return job


def kill_node_running(fleet: Fleet, event: JobEvent) -> str:
    """SIGKILL the worker node (main process and pool child) that emitted `event`; return its name."""
    assert event.worker
    node, _, child_pid = event.worker.rpartition(":")
    name = node.split("@")[0]
    os.kill(int(child_pid), signal.SIGKILL)
    os.kill(fleet.procs[name].pid, signal.SIGKILL)
    fleet.procs[name].wait(timeout=10)
    return name


def run_until_started(client: JobClient, job_id: str, index: int) -> JobEvent:
    for event in client.follow(job_id, timeout_s=120):
        if event.type is EventType.STEP_STARTED and event.step_index == index:
            return event
    raise AssertionError(f"step {index} never started")


@pytest.fixture(params=["session-broker", "amqp"])
def crash_fleet(request: pytest.FixtureRequest, broker_url: str | None) -> Iterator[Fleet]:
    """Two workers on the session's broker, and again on RabbitMQ (once when the session is on RabbitMQ)."""
    url = broker_url
    if request.param == "amqp":
        if broker_url is not None:
            pytest.skip("the session broker is RabbitMQ already")
        url = request.getfixturevalue("amqp_url")
    with running_fleet(2, "btq-crash", ["ca", "cb"], CRASH_ENV, url) as fleet:
        yield fleet


@pytest.fixture
def capped_fleet(broker_url: str | None) -> Iterator[Fleet]:
    env = {**CRASH_ENV, "BTQ_MAX_DELIVERIES_PER_STEP": "1"}
    with running_fleet(3, "btq-capped", ["da", "db"], env, broker_url) as fleet:
        yield fleet


def test_killed_step_is_redelivered_to_the_other_worker_and_result_is_unchanged(crash_fleet: Fleet) -> None:
    client = crash_fleet.client()
    job = slow_job("p -> p -> p")
    job_id = client.submit(job)
    started = run_until_started(client, job_id, 2)
    killed = kill_node_running(crash_fleet, started)

    result = client.wait(job_id, timeout_s=180)

    assert_same(result, job)
    events = [e for _, e in client.events(job_id)]
    succeeded = [e.step_index for e in events if e.type is EventType.STEP_SUCCEEDED]
    assert succeeded == [0, 1, 2, 3], "each step's candidate is recorded exactly once"
    restarts = [e for e in events if e.type is EventType.STEP_STARTED and e.step_index == 2]
    assert [e.attempt for e in restarts] == [1, 2]
    assert restarts[1].worker and not restarts[1].worker.startswith(killed + "@")
    assert sorted(c.step_index for c in result.candidates) == [0, 1, 2, 3]
    assert int(crash_fleet.client().redis.get(keys.attempts_key(job_id, 2)) or 0) == 2


def test_redelivery_cap_turns_a_repeatedly_lost_step_into_a_recorded_failure(capped_fleet: Fleet) -> None:
    client = capped_fleet.client()
    job_id = client.submit(slow_job("p -> p"))
    kill_node_running(capped_fleet, run_until_started(client, job_id, 1))

    result = client.wait(job_id, timeout_s=180)

    assert result.flag_compilation_error_occurred
    assert result.error is not None and result.error.type == "WorkerLostError"
    assert [c.step_index for c in result.candidates] == [0]


def test_duplicate_delivery_of_a_running_step_waits_for_it_instead_of_running_again(crash_fleet: Fleet) -> None:
    client = crash_fleet.client()
    job = slow_job("p -> p")
    job_id = client.submit(job)
    run_until_started(client, job_id, 1)
    # What a visibility-timeout redelivery or a doubly sent chain step looks like: the same message again.
    client.celery.send_task(keys.TASK_STEP, args=(job_id, 1), queue=crash_fleet.queue)

    result = client.wait(job_id, timeout_s=120)

    assert_same(result, job)
    events = [e for _, e in client.events(job_id)]
    assert [e.step_index for e in events if e.type is EventType.STEP_STARTED] == [0, 1, 2]
    assert [e.step_index for e in events if e.type is EventType.STEP_SUCCEEDED] == [0, 1, 2]
    assert int(client.redis.get(keys.attempts_key(job_id, 1)) or 0) == 1
