"""Cancel ends a queued job at once: jobs whose steps wait behind busy workers reach `cancelled` in seconds.

Two workers are busy with steps of minutes; two more jobs wait in the queue behind them. Cancelled, the
waiting jobs end within a few seconds with their terminal event (the workers' cancellers finalize them),
and when their step messages are finally delivered they are dropped: no LM call, no event.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.schemas.events import EventType
from btq.schemas.result import JobState
from tests.chaos.test_cancel import _wait_started
from tests.conftest import Fleet, running_fleet, wait_until
from tests.fixture_registry import LM_CALLS_KEY
from tests.integration.test_parity import spec

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

QUEUED_CANCEL_BOUND_S = 5.0
"""The canceller looks every `cancel_poll_interval_s` (0.5 s); the rest is margin for a loaded machine."""


@pytest.fixture
def busy_fleet() -> Iterator[Fleet]:
    with running_fleet(9, "btq-cancel-queued", ["qa", "qb"]) as fleet:
        yield fleet


def _busy_job(seed: int) -> dict[str, object]:
    job = spec("p -> p", "given", True, seed, lm="t.sim_crawl")
    job["optimizers"]["p"] = {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": {"num_candidate_programs": 20}}
    return job


def _dropped(fleet: Fleet, job_id: str) -> bool:
    return any(f"dropped btq.step('{job_id}'" in Path(log).read_text() for log in fleet.logs.values())


def test_cancelled_queued_jobs_end_at_once_and_their_messages_are_dropped(busy_fleet: Fleet) -> None:
    # Given both workers busy inside steps of minutes, and two jobs queued behind them
    client = busy_fleet.client()
    busy = [client.submit(_busy_job(seed)) for seed in (41, 42)]
    for job_id in busy:
        _wait_started(client, job_id, 1)  # step 1 sent: nothing of the busy jobs is queued ahead any more
    client.redis.delete(LM_CALLS_KEY)
    queued = [client.submit(spec("p -> p -> p", "given", True, seed, lm="t.counted")) for seed in (43, 44)]
    time.sleep(1.0)  # let a worker that could take them show it cannot: both are busy
    assert all(client.status(j).state is JobState.QUEUED for j in queued)

    # When they are cancelled
    cancelled_at, cancelled_wall = time.monotonic(), time.time()
    for job_id in queued:
        assert client.cancel(job_id)
    results = [client.wait(job_id, timeout_s=60) for job_id in queued]
    elapsed = time.monotonic() - cancelled_at

    # Then they end within seconds, with exactly one terminal event and no work done
    ends = [[e for _, e in client.events(job_id)][-1] for job_id in queued]
    lags = ", ".join(f"{e.at - cancelled_wall:.2f} s ({e.worker})" for e in ends)
    print(f"\ncancel of 2 queued jobs behind 2 busy workers: both terminal in {elapsed:.2f} s; events at {lags}")
    assert [r.state for r in results] == [JobState.CANCELLED, JobState.CANCELLED]
    assert elapsed < QUEUED_CANCEL_BOUND_S
    streams = {job_id: [e.type for _, e in client.events(job_id)] for job_id in queued}
    for types in streams.values():
        assert types[-1] is EventType.JOB_CANCELLED
        assert sum(t.is_terminal for t in types) == 1
        assert EventType.STEP_STARTED not in types

    # And once the workers are free, the queued step messages are delivered and dropped without work
    for job_id in busy:
        client.cancel(job_id)
    for job_id in queued:
        wait_until(lambda job_id=job_id: _dropped(busy_fleet, job_id), 120, f"job {job_id}'s step message dropped")
    assert int(client.redis.get(LM_CALLS_KEY) or 0) == 0, "a cancelled job's step made LM calls"
    assert {job_id: [e.type for _, e in client.events(job_id)] for job_id in queued} == streams, "events after the end"
