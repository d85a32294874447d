"""Progress bars for `btq watch` and `btq demo` on a terminal (rich): one bar per step, nested bars.

A step's bar fills when it ends; a fine-tune inside it gets a nested bar (steps, loss, ETA) and a
sharded evaluation one (shards done). Every column is cut with an ellipsis, so no line is wider than
the terminal, however long a strategy, worker name or error is. When the bars would outgrow the
terminal's height, the oldest finished steps fold into one `N finished steps` line, so the running step
stays in view on an 80x24 terminal however long the strategy (the result table lists every step after).
"""

from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from btq.schemas.events import EventType, JobEvent

_ENDED = {EventType.STEP_SUCCEEDED: "ok", EventType.STEP_FAILED: "FAILED", EventType.STEP_SKIPPED: "skipped"}


def _column(ratio: int) -> Column:
    return Column(ratio=ratio, no_wrap=True, overflow="ellipsis")


def new_progress(console: Console) -> Progress:
    """Return the bars' layout: name, bar, count, status text, elapsed time."""
    return Progress(
        TextColumn("{task.description}", table_column=_column(3)),
        BarColumn(bar_width=None, table_column=Column(ratio=2, min_width=6)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[status]}", table_column=_column(3)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        console=console,
        expand=True,
        transient=False,
    )


def _eta(detail: dict[str, Any]) -> str:
    step, total, elapsed = detail.get("step"), detail.get("total_steps"), detail.get("elapsed_s")
    if not all(isinstance(v, int | float) for v in (step, total, elapsed)) or not step:
        return ""
    return f" eta {float(elapsed) / float(step) * (float(total) - float(step)):.0f}s"  # type: ignore[arg-type]


class LiveBars:
    """Turns a job's events into bars on one rich Progress."""

    def __init__(self, progress: Progress, max_rows: int | None = None) -> None:
        self.progress = progress
        self.max_rows = max_rows
        self.job: TaskID | None = None
        self.folded: TaskID | None = None
        self.steps: dict[int, TaskID] = {}
        self.nested: dict[tuple[int, str], TaskID] = {}
        self.finished: list[int] = []
        self.folded_count = 0

    def _step(self, event: JobEvent) -> TaskID:
        index = event.step_index or 0
        if index not in self.steps:
            name = f"{index} {event.strategy or 'baseline'}"
            self.steps[index] = self.progress.add_task(name, total=1, status="queued")
        return self.steps[index]

    def _nested(self, index: int, kind: str, total: int) -> TaskID:
        key = (index, kind)
        if key not in self.nested:
            self.nested[key] = self.progress.add_task(f"  └ {kind}", total=total, status="")
        return self.nested[key]

    def handle(self, event: JobEvent) -> None:
        """Update the bars for one event, then fold finished steps if the bars outgrew the terminal."""
        self._update(event)
        self._fit()

    def _update(self, event: JobEvent) -> None:
        kind = event.type
        if kind is EventType.JOB_SUBMITTED:
            self.job = self.progress.add_task(
                "job", total=event.steps_total + 1, status=f"seed {event.detail.get('seed')}"
            )
            self.folded = self.progress.add_task("", total=None, status="", visible=False)
        elif kind is EventType.STEP_STARTED:
            attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
            self.progress.update(self._step(event), status=f"running on {event.worker}{attempt}")
        elif kind is EventType.STEP_PROGRESS:
            self._progress(event)
        elif kind in _ENDED:
            score = "-" if event.score is None else f"{event.score:.2f}"
            error = f" {event.error.type}: {event.error.message}" if event.error else ""
            self.progress.update(self._step(event), completed=1, status=f"{_ENDED[kind]} score {score}{error}")
            for (index, _), task in self.nested.items():
                if index == event.step_index:
                    self.progress.stop_task(task)
            if self.job is not None:
                self.progress.advance(self.job)
            self.finished.append(event.step_index or 0)
        elif kind is EventType.CANCEL_REQUESTED and self.job is not None:
            self.progress.update(self.job, status="cancel requested")
        elif kind.is_terminal and self.job is not None:
            name = (f"'{event.strategy}'" if event.strategy else "(baseline)") if event.strategy is not None else ""
            best = f"best {name} {event.score}" if event.strategy is not None else "no candidate"
            flagged = event.detail.get("flag_compilation_error_occurred") and kind is EventType.JOB_SUCCEEDED
            self.progress.update(self.job, status=f"{kind.value}{', 1 step failed' if flagged else ''}: {best}")

    def _fit(self) -> None:
        """Fold the oldest finished steps (and their nested bars) into one line while the bars are too tall."""
        if self.max_rows is None or self.folded is None:
            return
        while sum(1 for t in self.progress.tasks if t.visible) > self.max_rows and len(self.finished) > 1:
            index = self.finished.pop(0)
            for (nested_index, _), task in self.nested.items():
                if nested_index == index:
                    self.progress.update(task, visible=False)
            self.progress.update(self.steps[index], visible=False)
            self.folded_count += 1
            status = next(t.fields.get("status", "") for t in self.progress.tasks if t.id == self.steps[index])
            self.progress.update(
                self.folded,
                visible=True,
                description=f"{self.folded_count} finished steps",
                total=self.folded_count,
                completed=self.folded_count,
                status=f"last: {status}",
            )

    def _progress(self, event: JobEvent) -> None:
        index, detail = event.step_index or 0, event.detail
        shards_total, total_steps = detail.get("shards_total"), detail.get("total_steps")
        if isinstance(shards_total, int):
            task = self._nested(index, str(detail.get("phase") or "shards"), shards_total)
            self.progress.update(task, completed=int(detail.get("shards_done") or 0))  # type: ignore[arg-type]
        elif isinstance(total_steps, int) and isinstance(detail.get("step"), int):
            task = self._nested(index, "fine-tune", total_steps)
            loss = detail.get("loss")
            status = (f"loss {loss:.3f}" if isinstance(loss, int | float) else "") + _eta(detail)
            self.progress.update(task, completed=detail["step"], status=status)  # type: ignore[arg-type]
        else:
            shown = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "model")
            self.progress.update(self._step(event), status=shown)


def show_bars(events: Iterable[JobEvent], out: TextIO) -> None:
    """Draw live bars for `events` on terminal `out` until they end."""
    console = Console(file=out, force_terminal=True)
    failures: list[JobEvent] = []
    with new_progress(console) as progress:
        # Rows left for bars: the terminal's height less the line rich keeps for its cursor and a margin.
        bars = LiveBars(progress, max_rows=max(3, console.size.height - 2))
        for event in events:
            bars.handle(event)
            if event.error is not None:
                failures.append(event)
    # A bar's status column cuts an error short; the whole message is printed (wrapped) once done.
    for event in failures:
        assert event.error is not None
        console.print(f"step {event.step_index} ({event.strategy}) failed: {event.error.type}: {event.error.message}")
