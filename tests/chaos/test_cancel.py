"""Cancel interrupts: the state says `cancelling` at once, and a running step ends within seconds.

A simulated fine-tune of ten minutes is terminated (its model is never published) and an optimizer's
compile on a slow LM is interrupted inside its LM calls; the job reaches `cancelled` within 10 s.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from btq.schemas.result import JobState, StepOutcome
from tests.conftest import Fleet, running_fleet
from tests.integration.test_parity import spec

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CANCEL_BOUND_S = 10.0


@pytest.fixture(scope="module")
def cancel_fleet() -> Iterator[Fleet]:
    with running_fleet(8, "btq-cancel", ["xa"]) as fleet:
        yield fleet


def _wait_started(client: JobClient, job_id: str, index: int) -> None:
    for event in client.follow(job_id, timeout_s=120):
        if event.type is EventType.STEP_STARTED and event.step_index == index:
            return
    raise AssertionError(f"step {index} never started")


def _wait_progress(client: JobClient, job_id: str, index: int, phase: str) -> None:
    """Wait (bounded) for a progress event of `phase` from inside step `index`: the step is in that phase."""
    for event in client.follow(job_id, timeout_s=120):
        if (
            event.type is EventType.STEP_PROGRESS
            and event.step_index == index
            and (event.detail or {}).get("phase") == phase
        ):
            return
    raise AssertionError(f"step {index} never reported {phase}")


def _cancel_and_time(client: JobClient, job_id: str) -> float:
    cancelled_at = time.monotonic()
    assert client.cancel(job_id)
    assert client.status(job_id).state is JobState.CANCELLING, "the state changes at once"
    result = client.wait(job_id, timeout_s=60)
    elapsed = time.monotonic() - cancelled_at
    assert result.state is JobState.CANCELLED
    assert client.status(job_id).state is JobState.CANCELLED
    return elapsed


def test_cancel_terminates_a_running_finetune_and_publishes_nothing(cancel_fleet: Fleet) -> None:
    client = cancel_fleet.client()
    job = spec("p -> w", "given", True, 5, lm="t.sim_longft")
    job_id = client.submit(job)
    _wait_started(client, job_id, 2)
    artifacts_before = set(Path(cancel_fleet.artifact_dir).iterdir())
    _wait_progress(client, job_id, 2, "finetune")  # reported as the ten-minute fine-tune starts

    elapsed = _cancel_and_time(client, job_id)

    print(f"\ncancel during a fine-tune: terminal in {elapsed:.1f} s")
    assert elapsed < CANCEL_BOUND_S
    record = client.redis.get(f"btq:job:{job_id}:step:2")
    assert record is not None and StepOutcome.CANCELLED.value in record.decode()
    published = {p for p in set(Path(cancel_fleet.artifact_dir).iterdir()) - artifacts_before if p.suffix != ".log"}
    assert published == set(), f"a cancelled fine-tune published {published}"


def test_cancel_interrupts_an_optimizer_compile(cancel_fleet: Fleet) -> None:
    client = cancel_fleet.client()
    job = spec("p -> p", "given", True, 6, lm="t.sim_crawl")
    job["optimizers"]["p"] = {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": {"num_candidate_programs": 20}}
    job_id = client.submit(job)
    _wait_started(client, job_id, 1)
    # Inside the compile once it scores its first candidate: 20 of them at 300 ms per LM call take minutes.
    _wait_progress(client, job_id, 1, "evaluate")

    elapsed = _cancel_and_time(client, job_id)

    print(f"\ncancel during an optimizer compile: terminal in {elapsed:.1f} s")
    assert elapsed < CANCEL_BOUND_S
    events = [e for _, e in client.events(job_id)]
    assert events[-1].type is EventType.JOB_CANCELLED
    assert sum(e.type.is_terminal for e in events) == 1, "the terminal event exactly once"
    # The step after the interrupted one ends with the job: its message is dropped when it comes.
    assert client.redis.get(f"btq:job:{job_id}:step:2") is None
