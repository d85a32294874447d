"""Live output: one line per lifecycle event; progress overwrites one line on a terminal only."""

import io
import time

from producer.render import event_line, show_live
from schemas.events import EventType, JobEvent


def event(kind: EventType, index: int | None = None, **detail: object) -> JobEvent:
    return JobEvent(
        type=kind,
        job_id="j",
        at=time.time(),
        steps_total=2,
        step_index=index,
        strategy="p" if index else "",
        detail=dict(detail),
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENTS = [
    event(EventType.STEP_STARTED, 1),
    event(EventType.STEP_PROGRESS, 1, step=1),
    event(EventType.STEP_PROGRESS, 1, step=2),
    event(EventType.STEP_SUCCEEDED, 1),
]


def test_pipe_gets_every_event_on_its_own_line() -> None:
    out = io.StringIO()
    show_live(EVENTS, out)
    assert out.getvalue().splitlines() == [event_line(e) for e in EVENTS]


def test_terminal_overwrites_progress_and_keeps_lifecycle_lines() -> None:
    out = Terminal()
    show_live(EVENTS, out)
    lines = out.getvalue().split("\n")
    assert lines[0] == event_line(EVENTS[0])
    assert lines[1].count("\r\033[K") == 2 and lines[1].endswith("step=2")
    assert lines[2] == event_line(EVENTS[3])
