"""Human-readable output: live progress lines and the candidate table."""

import sys
from typing import TextIO

from schemas.events import EventType, JobEvent
from schemas.result import JobResult

_MARKS = {
    EventType.STEP_SUCCEEDED: "ok",
    EventType.STEP_FAILED: "FAILED",
    EventType.STEP_SKIPPED: "skipped",
}


def bar(done: int, total: int, width: int = 20) -> str:
    """Return a text progress bar like `[######--------------] 1/3`."""
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


def event_line(event: JobEvent) -> str | None:
    """Return the line one event prints in `btq watch`, or None for events shown only as progress."""
    label = event.strategy or "baseline" if event.step_index is not None else event.strategy or ""
    if event.type is EventType.JOB_SUBMITTED:
        return f"job {event.job_id}  strategy '{event.strategy}'  seed {event.detail.get('seed')}"
    if event.type is EventType.STEP_STARTED:
        attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
        return f"{bar(max(0, (event.step_index or 0) - 1), event.steps_total)}  running  {label:<24} on {event.worker}{attempt}"
    if event.type in _MARKS:
        done = event.step_index or 0
        score = "-" if event.score is None else f"{event.score:6.2f}"
        took = f"{event.duration_s:7.2f}s" if event.duration_s is not None else ""
        err = f"  {event.error.type}: {event.error.message}" if event.error else ""
        return f"{bar(done, event.steps_total)}  {_MARKS[event.type]:<8} {label:<24} score {score} {took}  {event.worker}{err}"
    if event.type is EventType.STEP_PROGRESS:
        return f"    {label}: " + ", ".join(f"{k}={v}" for k, v in event.detail.items())
    if event.type is EventType.CANCEL_REQUESTED:
        return "cancel requested"
    if event.type.is_terminal:
        best = (
            f"best '{event.strategy}' score {event.score}" if event.strategy is not None else "no candidate"
        )
        flag = (
            "  (a step failed: flag_compilation_error_occurred)"
            if event.detail.get("flag_compilation_error_occurred")
            else ""
        )
        return f"{event.type.value}: {best}{flag}"
    return None


def result_table(result: JobResult, out: TextIO = sys.stdout) -> None:
    """Print the ranked candidates, best marked, as BetterTogether's candidate_programs."""
    print(
        f"job {result.job_id}: {result.state.value}, strategy '{result.strategy}', seed {result.seed}",
        file=out,
    )
    if result.flag_compilation_error_occurred and result.error:
        print(f"flag_compilation_error_occurred: {result.error.type}: {result.error.message}", file=out)
    print(f"{'rank':>4}  {'strategy':<28} {'score':>7}  step", file=out)
    for rank, cand in enumerate(result.candidates, 1):
        mark = "*" if result.best and cand.step_index == result.best.step_index else " "
        score = "-" if cand.score is None else f"{cand.score:.2f}"
        print(f"{rank:>4}{mark} {cand.strategy or '(baseline)':<28} {score:>7}  {cand.step_index}", file=out)
