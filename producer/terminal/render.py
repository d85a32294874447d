"""Human-readable output: live progress (bars on a terminal, lines otherwise) and the candidate table."""

import shutil
import sys
from collections.abc import Iterable
from typing import TextIO

from pydantic import JsonValue

from btq.producer.terminal.usage_table import usage_summary, usage_table
from btq.schemas.events import EventType, JobEvent
from btq.schemas.result import EvaluationReport, JobResult

_MARKS = {
    EventType.STEP_SUCCEEDED: "ok",
    EventType.STEP_FAILED: "FAILED",
    EventType.STEP_SKIPPED: "skipped",
}


def bar(done: int, total: int, width: int = 20) -> str:
    """Return a text progress bar like `[######--------------] 1/3`."""
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


def _label(event: JobEvent) -> str:
    return event.strategy or "baseline"


def _started(event: JobEvent) -> str:
    attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
    done = max(0, (event.step_index or 0) - 1)
    return f"{bar(done, event.steps_total)}  running  {_label(event):<24} on {event.worker}{attempt}"


def _finished_step(event: JobEvent) -> str:
    score = "-" if event.score is None else f"{event.score:6.2f}"
    took = f"{event.duration_s:7.2f}s" if event.duration_s is not None else ""
    err = f"  {event.error.type}: {event.error.message}" if event.error else ""
    mark = _MARKS[event.type]
    spent = usage_summary(event.detail)
    spent = f"  [{spent}]" if spent else ""
    return f"{bar(event.step_index or 0, event.steps_total)}  {mark:<8} {_label(event):<24} score {score} {took}  {event.worker}{spent}{err}"


def _finished_job(event: JobEvent) -> str:
    best = f"best {_name(event.strategy)} score {event.score}" if event.strategy is not None else "no candidate"
    flagged = event.detail.get("flag_compilation_error_occurred")
    # The same words as JobResult.state_label: a job whose step crashed never reads as a plain success.
    state = (
        f"{event.type.value}, 1 step failed" if flagged and event.type is EventType.JOB_SUCCEEDED else event.type.value
    )
    return f"{state}: {best}"


def _name(strategy: str) -> str:
    return f"'{strategy}'" if strategy else "(baseline)"


def final_line(result: JobResult) -> str:
    """Return the last line `watch` and `submit --wait` print: `job <id>: succeeded, 1 step failed; best ...`."""
    best = result.best
    shown = f"best {_name(best.strategy)} score {_score(best.score)}" if best is not None else "no candidate"
    return f"job {result.job_id}: {result.state_label}; {shown}"


def _submitted(event: JobEvent) -> str:
    return f"job {event.job_id}  strategy '{event.strategy}'  seed {event.detail.get('seed')}"


def _progress(event: JobEvent) -> str:
    spent = usage_summary(event.detail)
    return f"    {_label(event)}: {_shown(event.detail)}" + (f" [{spent}]" if spent else "")


_LINES = {
    EventType.JOB_SUBMITTED: _submitted,
    EventType.STEP_STARTED: _started,
    EventType.STEP_PROGRESS: _progress,
    EventType.STEP_SUCCEEDED: _finished_step,
    EventType.STEP_FAILED: _finished_step,
    EventType.STEP_SKIPPED: _finished_step,
    EventType.CANCEL_REQUESTED: lambda _: "cancel requested",
    EventType.JOB_SUCCEEDED: _finished_job,
    EventType.JOB_FAILED: _finished_job,
    EventType.JOB_CANCELLED: _finished_job,
}


def event_line(event: JobEvent) -> str:
    """Return the line one event prints in `btq watch`."""
    return _LINES[event.type](event)


def show_live(events: Iterable[JobEvent], out: TextIO = sys.stdout) -> None:
    """Show events as they arrive: progress bars on a terminal, short lines on a pipe or file."""
    if out.isatty():
        from btq.producer.terminal.live_bars import show_bars

        show_bars(events, out)
        return
    throttle = ProgressThrottle()
    for event in events:
        if event.type is EventType.STEP_PROGRESS and not throttle.keep(event):
            continue
        out.write(event_line(event) + "\n")
        out.flush()


class ProgressThrottle:
    """Keeps a pipe's log short: a counted progress (fine-tune steps, shards) prints at each tenth only.

    Reports without a count (a phase change, say) always print; identical reports print once.
    """

    def __init__(self) -> None:
        self.last: dict[tuple[int | None, str], object] = {}

    def keep(self, event: JobEvent) -> bool:
        """Return True when this progress event deserves its own line."""
        detail = event.detail
        done, total = (
            detail.get("shards_done", detail.get("step")),
            detail.get("shards_total", detail.get("total_steps")),
        )
        kind = "shards" if "shards_total" in detail else "steps" if "total_steps" in detail else "other"
        key = (event.step_index, kind)
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            tenth = (10 * done) // total
            if self.last.get(key) == tenth and done != total:
                return False
            self.last[key] = tenth
            return True
        shown = _shown(detail)
        if self.last.get(key) == shown:
            return False
        self.last[key] = shown
        return True


def _shown(detail: dict[str, JsonValue]) -> str:
    # The model name of a fine-tune is a long content hash: the step's strategy already says which.
    return ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("model", "usage"))


def result_table(result: JobResult, out: TextIO = sys.stdout, held_out: EvaluationReport | None = None) -> None:
    """Print the ranked candidates, best marked, as BetterTogether's candidate_programs.

    With `held_out`, a column shows each candidate's score on that dataset split too. On a terminal,
    lines are cut to its width (`btq result --json` has everything).
    """
    width = shutil.get_terminal_size().columns if out.isatty() else None

    def emit(line: str) -> None:
        print(line if width is None or len(line) <= width else line[: width - 1] + "…", file=out)

    emit(f"job {result.job_id}: {result.state_label}")
    emit(f"strategy '{result.strategy}', seed {result.seed}")
    if result.flag_compilation_error_occurred and result.error:
        emit(f"flag_compilation_error_occurred: {result.error.type}: {result.error.message}")
    extra = f" {held_out.split:>7}" if held_out else ""
    emit(f"{'rank':>4}  {'strategy':<28} {'val':>7}{extra}  step")
    for rank, cand in enumerate(result.candidates, 1):
        mark = "*" if result.best and cand.step_index == result.best.step_index else " "
        column = ""
        if held_out:
            test = held_out.scores.get(str(cand.step_index))
            column = f" {'-' if test is None else f'{test:.2f}':>7}"
        emit(f"{rank:>4}{mark} {cand.strategy or '(baseline)':<28} {_score(cand.score):>7}{column}  {cand.step_index}")
    if result.usage is not None:
        emit("")
        usage_table(result, out)


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.2f}"
