"""The soak's system-wide invariants, checked once at the end on what Redis holds.

Nothing here knows which faults were injected: a job either satisfies every invariant or is reported
with the invariant it breaks. See `docs/reliability.md` for the list in words.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from btq.producer.client import JobClient
from btq.schemas.events import EventType, JobEvent
from btq.schemas.result import JobResult

_OUTCOMES = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED}


@dataclass(frozen=True)
class Violation:
    """One broken invariant of one job."""

    job_id: str
    invariant: str
    detail: str


def check_events(job_id: str, events: list[JobEvent]) -> list[Violation]:
    """The job's stream: gap-free and ordered, one outcome per step, one terminal event, nothing after it."""
    found = [Violation(job_id, invariant, detail) for invariant, detail in _terminal(events)]
    found += [Violation(job_id, invariant, detail) for invariant, detail in _steps(events)]
    return found


def _terminal(events: list[JobEvent]) -> list[tuple[str, str]]:
    terminal = [i for i, e in enumerate(events) if e.type.is_terminal]
    if len(terminal) != 1:
        return [("one terminal event", f"{len(terminal)} terminal events")]
    if terminal[0] != len(events) - 1:
        return [("nothing after the terminal event", f"{[e.type.value for e in events[terminal[0] + 1 :]]}")]
    return []


def _steps(events: list[JobEvent]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    started: Counter[tuple[int, int]] = Counter()
    outcomes: set[int] = set()
    for event in events:
        index = event.step_index
        if index is None:
            continue
        if event.type is EventType.STEP_STARTED:
            started[(index, event.attempt or 0)] += 1
            found += [("ordered", f"step {index} started before step {index - 1}'s outcome")] * (
                index > 0 and index - 1 not in outcomes
            )
        elif event.type in _OUTCOMES:
            if index in outcomes:
                found.append(("one outcome per step", f"step {index} has a second outcome ({event.type.value})"))
            outcomes.add(index)
            # A skipped step never ran; a step that ran has the start of the attempt that recorded it.
            if event.type is not EventType.STEP_SKIPPED and not started[(index, event.attempt or 0)]:
                found.append(("one started per attempt", f"step {index} attempt {event.attempt}: outcome, no start"))
        elif event.type is EventType.STEP_PROGRESS and index in outcomes:
            found.append(("nothing after a step's outcome", f"step {index} reported progress after its outcome"))
    return found + _gaps(started, outcomes)


def _gaps(started: Counter[tuple[int, int]], outcomes: set[int]) -> list[tuple[str, str]]:
    found = []
    duplicated = [key for key, count in started.items() if count > 1]
    if duplicated:
        found.append(("one started per attempt", f"(step, attempt) started twice: {duplicated}"))
    if sorted(outcomes) != list(range(len(outcomes))):
        found.append(("gap-free", f"step outcomes for {sorted(outcomes)}"))
    return found


def check_job(
    client: JobClient,
    job_id: str,
    spec: dict[str, Any],
    same_as_undisturbed: Callable[[JobResult, dict[str, Any]], None],
) -> list[Violation]:
    """Every invariant of one job: terminal, its event stream, and its result against the undisturbed run."""
    if not client.redis.exists(f"btq:job:{job_id}:result"):
        state = client.status(job_id).state.value
        return [Violation(job_id, "every job terminal", f"no result (state {state})")]
    found = check_events(job_id, [event for _, event in client.events(job_id)])
    result = client.result(job_id)
    try:
        same_as_undisturbed(result, spec)
    except AssertionError as exc:
        found.append(Violation(job_id, "result equals the undisturbed run", str(exc)[:300]))
    return found


def check_writes(writes: Counter[str], times: dict[str, list[float]]) -> list[Violation]:
    """No step record written twice (keyspace notifications counted every successful SET of a record)."""
    return [
        Violation(key.split(":")[2], "no step record written twice", f"{key} written {count} times at {times.get(key)}")
        for key, count in writes.items()
        if count > 1
    ]
