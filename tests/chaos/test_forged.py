"""Tasks trust stored job state: forged or stale step and finalize messages are dropped and change nothing."""

import re
from collections.abc import Iterator

import pytest
from celery import chain

from btq.schemas import keys
from btq.schemas.events import EventType
from tests.conftest import Fleet, running_fleet, wait_until
from tests.integration.test_crash import run_until_started, slow_job
from tests.integration.test_parity import assert_same

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture(scope="module")
def guard_fleet() -> Iterator[Fleet]:
    with running_fleet(9, "btq-guards", ["ga", "gb"]) as fleet:
        yield fleet


def _drops(fleet: Fleet) -> int:
    return sum(log.read_text(errors="replace").count("dropped btq.") for log in fleet.logs.values())


def test_forged_finalize_of_a_running_job_stores_nothing(guard_fleet: Fleet) -> None:
    client = guard_fleet.client()
    job = slow_job("p -> p")
    job_id = client.submit(job)
    run_until_started(client, job_id, 1)
    drops = _drops(guard_fleet)

    client.celery.send_task(keys.TASK_FINALIZE, args=(job_id,), queue=guard_fleet.queue)

    wait_until(lambda: _drops(guard_fleet) > drops, 30, "the forged finalize dropped")
    assert client.result(job_id) is None, "no partial result was stored"
    result = client.wait(job_id, timeout_s=120)
    assert_same(result, job)
    events = [e for _, e in client.events(job_id)]
    assert [e.type for e in events].count(EventType.JOB_SUCCEEDED) == 1
    assert events[-1].type is EventType.JOB_SUCCEEDED


def test_out_of_range_and_premature_steps_change_nothing(guard_fleet: Fleet) -> None:
    client = guard_fleet.client()
    job = slow_job("p")
    job_id = client.submit(job)
    result = client.wait(job_id, timeout_s=120)
    events_before = client.events(job_id)
    drops = _drops(guard_fleet)

    forged = [(job_id, -1), (job_id, 2), (job_id, 1), (job_id, 0), ("no-such-job", 0), (job_id, "1")]
    for args in forged:
        client.celery.send_task(keys.TASK_STEP, args=args, queue=guard_fleet.queue)
    client.celery.send_task(keys.TASK_FINALIZE, args=(job_id,), queue=guard_fleet.queue)

    wait_until(lambda: _drops(guard_fleet) >= drops + len(forged) + 1, 30, "every forged message dropped")
    assert client.events(job_id) == events_before, "no event after job.succeeded"
    assert client.result(job_id) == result
    assert int(client.redis.get(keys.attempts_key(job_id, 0)) or 0) == 1, "the baseline did not run again"


def test_step_of_a_running_job_whose_previous_step_has_no_record_is_dropped(guard_fleet: Fleet) -> None:
    client = guard_fleet.client()
    job = slow_job("p -> p -> p")
    job_id = client.submit(job)
    run_until_started(client, job_id, 1)
    drops = _drops(guard_fleet)

    client.celery.send_task(keys.TASK_STEP, args=(job_id, 3), queue=guard_fleet.queue)

    wait_until(lambda: _drops(guard_fleet) > drops, 30, "the premature step dropped")
    result = client.wait(job_id, timeout_s=180)
    assert_same(result, job)
    started = [e.step_index for _, e in client.events(job_id) if e.type is EventType.STEP_STARTED]
    assert started == [0, 1, 2, 3]


_STEP_OR_FINAL_RECEIVED = re.compile(r"Task btq\.(?:step|finalize)\[[^\]]+\] received")
"""A step or finalize message taken by a worker (evaluation shard tasks are not counted)."""


def _received(fleet: Fleet) -> int:
    return sum(len(_STEP_OR_FINAL_RECEIVED.findall(log.read_text(errors="replace"))) for log in fleet.logs.values())


def test_a_late_duplicate_of_a_recorded_step_does_not_send_the_rest_of_the_chain_again(guard_fleet: Fleet) -> None:
    client = guard_fleet.client()
    job = slow_job("p -> p -> p")
    job_id = client.submit(job)
    run_until_started(client, job_id, 2)
    received = _received(guard_fleet)

    # What a dead worker's message looks like when the broker gives it back: step 1 with its chain.
    sigs = [client.celery.signature(keys.TASK_STEP, args=(job_id, i), immutable=True) for i in (1, 2, 3)]
    chain(*sigs, client.celery.signature(keys.TASK_FINALIZE, args=(job_id,), immutable=True)).apply_async(
        queue=guard_fleet.queue
    )

    result = client.wait(job_id, timeout_s=180)
    assert_same(result, job)
    wait_until(lambda: _received(guard_fleet) >= received + 3, 30, "the rest of the real chain received")
    # The real chain's steps 2 (already running), 3 and finalize, plus the duplicate: nothing more.
    assert _received(guard_fleet) == received + 3


def test_an_outcome_event_lost_after_its_record_was_stored_is_emitted_by_the_next_task(guard_fleet: Fleet) -> None:
    client = guard_fleet.client()
    job = slow_job("p -> p -> p")
    job_id = client.submit(job)
    run_until_started(client, job_id, 2)
    # What a worker killed between storing step 1's record and emitting its event leaves behind.
    stream = keys.job_key(job_id, "events")
    lost = [eid for eid, e in client.events(job_id) if e.type is EventType.STEP_SUCCEEDED and e.step_index == 1]
    assert len(lost) == 1
    client.redis.xdel(stream, lost[0])
    client.redis.delete(keys.emitted_key(job_id, 1))

    result = client.wait(job_id, timeout_s=180)

    assert_same(result, job)
    events = [e for _, e in client.events(job_id)]
    assert sorted(e.step_index for e in events if e.type is EventType.STEP_SUCCEEDED) == [0, 1, 2, 3]
    assert events[-1].type is EventType.JOB_SUCCEEDED, "re-emitted before the job's terminal event"
