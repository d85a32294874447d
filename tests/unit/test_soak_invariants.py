"""The soak's invariant checks find what they must in hand-made event streams."""

from btq.schemas.events import EventType, JobEvent
from tests.chaos.soak_invariants import check_events


def _e(kind: EventType, index: int | None = None, attempt: int | None = None) -> JobEvent:
    return JobEvent(type=kind, job_id="j", at=0.0, steps_total=1, step_index=index, attempt=attempt)


GOOD = [
    _e(EventType.STEP_STARTED, 0, 1),
    _e(EventType.STEP_SUCCEEDED, 0, 1),
    _e(EventType.STEP_STARTED, 1, 1),
    _e(EventType.STEP_STARTED, 1, 2),  # the first attempt's worker died; the second recorded the step
    _e(EventType.STEP_PROGRESS, 1, 2),
    _e(EventType.STEP_SUCCEEDED, 1, 2),
    _e(EventType.JOB_SUCCEEDED),
]


def test_a_recovered_job_stream_keeps_every_invariant() -> None:
    assert check_events("j", GOOD) == []


def test_events_after_the_terminal_one_are_found() -> None:
    found = check_events("j", [*GOOD, _e(EventType.STEP_PROGRESS, 1, 1)])
    assert {v.invariant for v in found} == {"nothing after the terminal event", "nothing after a step's outcome"}


def test_a_second_outcome_a_gap_and_a_missing_terminal_event_are_found() -> None:
    stream = [*GOOD[:2], _e(EventType.STEP_SUCCEEDED, 0, 1), _e(EventType.STEP_SUCCEEDED, 2, 1)]
    found = {v.invariant for v in check_events("j", stream)}
    assert found == {"one outcome per step", "gap-free", "one terminal event", "one started per attempt"}


def test_a_step_started_before_its_previous_step_ended_is_out_of_order() -> None:
    found = check_events("j", [_e(EventType.STEP_STARTED, 1, 1), *GOOD])
    assert "ordered" in {v.invariant for v in found}
