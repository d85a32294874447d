"""A holder paused past its lease stops when it wakes: no LM call, no shard, no event after the takeover.

A worker's pool child running a step is SIGSTOPped for longer than the step's lease. The other worker
takes the step over (the sweeper re-drives it once the lease lapsed) and the job ends. Then the paused
child is resumed: at its next check it finds its lease lost and stops. Its LM calls are counted per
process by the simulated LM (`t.counted_pids`), so the test sees every call it would make.
"""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.schemas import keys
from btq.schemas.events import EventType
from btq.schemas.result import JobState
from tests.conftest import Fleet, running_fleet, wait_until
from tests.fixture_registry import LM_CALLS_BY_PID_KEY
from tests.integration.test_crash import run_until_started
from tests.integration.test_parity import spec

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

LEASE_TTL_S = 4.0
PAUSED_ENV = {"BTQ_STEP_LEASE_TTL_S": str(LEASE_TTL_S), "BTQ_SWEEP_INTERVAL_S": "0.5"}


@pytest.fixture
def pause_fleet() -> Iterator[Fleet]:
    with running_fleet(10, "btq-paused", ["pa", "pb"], PAUSED_ENV) as fleet:
        yield fleet


def _eval_keys(fleet: Fleet, job_id: str) -> set[bytes]:
    client = fleet.client().redis
    return set(client.scan_iter(match=keys.job_key(job_id, "eval:*"), count=1000))


def test_a_paused_holder_makes_no_lm_call_and_emits_nothing_after_takeover(pause_fleet: Fleet) -> None:
    # Given a step running on one worker's pool child, paused (SIGSTOP) longer than its lease
    client = pause_fleet.client()
    job = spec("p -> p", "given", True, 51, lm="t.counted_pids")
    job["optimizers"]["p"] = {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": {"num_candidate_programs": 8}}
    job_id = client.submit(job)
    started = run_until_started(client, job_id, 1)
    assert started.worker is not None
    zombie = started.worker
    pid = int(zombie.rpartition(":")[2])
    wait_until(lambda: int(client.redis.hget(LM_CALLS_BY_PID_KEY, str(pid)) or 0) > 0, 60, "the step's LM calls")
    os.kill(pid, signal.SIGSTOP)
    try:
        # When the other worker takes the step over and the job ends while the holder sleeps
        result = client.wait(job_id, timeout_s=180)
        assert result.state is JobState.SUCCEEDED
        events = [e for _, e in client.events(job_id)]
        takeover = next(
            e for e in events if e.type is EventType.STEP_STARTED and e.step_index == 1 and e.worker != zombie
        )
        calls_before = int(client.redis.hget(LM_CALLS_BY_PID_KEY, str(pid)) or 0)
        evals_before = _eval_keys(pause_fleet, job_id)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.time()

    # Then, once resumed, the holder stops at its next check: it drops its message
    log = Path(pause_fleet.logs[zombie.split("@")[0]])
    deadline = time.monotonic() + 30
    while "lease lost while running" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # bounded: the assertions below say what the holder did meanwhile
    time.sleep(2.0)  # and then some more, in which a zombie would keep calling its LM
    calls_after = int(client.redis.hget(LM_CALLS_BY_PID_KEY, str(pid)) or 0)
    assert calls_after == calls_before, f"the paused holder made {calls_after - calls_before} LM calls after waking"
    assert _eval_keys(pause_fleet, job_id) == evals_before, "the paused holder published shards after waking"
    after = [e for _, e in client.events(job_id)][len(events) :]
    assert after == [], f"events after the job's terminal event: {[e.type.value for e in after]}"
    late = [e for e in events if e.worker == zombie and e.at > takeover.at]
    assert late == [], f"the paused holder emitted {[e.type.value for e in late]} after the takeover"
    assert "lease lost while running" in log.read_text(), "the holder never noticed it lost the lease"
    assert resumed_at > takeover.at
