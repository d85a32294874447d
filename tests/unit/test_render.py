"""Live output: short lines on a pipe (counted progress thinned out), bars no wider than the terminal."""

import io
import json
import sys
import time

from btq.producer.terminal.render import event_line, show_live
from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType, JobEvent
from tests.conftest import ROOT
from tests.pty_terminal import run_in_pty, visible_lines


def event(kind: EventType, index: int | None = None, strategy: str | None = None, **detail: object) -> JobEvent:
    return JobEvent(
        type=kind,
        job_id="j",
        at=time.time(),
        steps_total=2,
        step_index=index,
        strategy=strategy if strategy is not None else ("p" if index else ""),
        detail=dict(detail),
    )


EVENTS = [
    event(EventType.STEP_STARTED, 1),
    event(EventType.STEP_PROGRESS, 1, step=1),
    event(EventType.STEP_PROGRESS, 1, step=2),
    event(EventType.STEP_SUCCEEDED, 1),
]

LONG = "p -> w -> p -> w -> p -> w -> p -> w -> p -> w -> p"


def finetune(index: int, step: int, total: int = 30) -> JobEvent:
    return event(
        EventType.STEP_PROGRESS,
        index,
        LONG,
        phase="finetune",
        event="step",
        step=step,
        total_steps=total,
        loss=2.0 / step,
        elapsed_s=step * 0.5,
        model="llamacpp/smollm2-135m-instruct:ft-" + "0123456789abcdef" * 6,
    )


def job_events() -> list[JobEvent]:
    failed = event(EventType.STEP_FAILED, 2, LONG)
    failed = failed.model_copy(
        update={"error": ErrorRecord(type="RuntimeError", message="x" * 300), "worker": "w" * 90}
    )
    return [
        event(EventType.JOB_SUBMITTED, strategy=LONG, seed=3),
        event(EventType.STEP_STARTED, 1, LONG),
        *[finetune(1, step) for step in range(1, 31)],
        *[event(EventType.STEP_PROGRESS, 1, LONG, phase="evaluate", shards_done=n, shards_total=8) for n in range(9)],
        event(EventType.STEP_SUCCEEDED, 1, LONG),
        event(EventType.STEP_STARTED, 2, LONG),
        failed,
        event(EventType.JOB_FAILED, strategy=LONG),
    ]


def test_pipe_gets_every_lifecycle_event_and_uncounted_progress_on_its_own_line() -> None:
    out = io.StringIO()
    show_live(EVENTS, out)
    assert out.getvalue().splitlines() == [event_line(e) for e in EVENTS]


def test_pipe_thins_counted_progress_to_tenths_and_drops_the_model_hash() -> None:
    out = io.StringIO()
    show_live(job_events(), out)
    lines = out.getvalue().splitlines()
    finetune_lines = [line for line in lines if "phase=finetune" in line]
    assert 10 <= len(finetune_lines) <= 11  # 30 reports -> one per tenth
    assert "step=30" in finetune_lines[-1]
    assert not any("ft-0123" in line for line in lines)
    shard_lines = [line for line in lines if "shards_total=8" in line]
    assert len(shard_lines) == 9 and "shards_done=8" in shard_lines[-1]


def test_terminal_bars_never_exceed_80_columns_and_show_loss_eta_and_shards() -> None:
    payload = json.dumps([e.model_dump(mode="json") for e in job_events()])
    script = (
        "import json, sys\n"
        "from btq.producer.terminal.render import show_live\n"
        "from btq.schemas.events import JobEvent\n"
        "show_live(JobEvent.model_validate(e) for e in json.loads(sys.argv[1]))\n"
    )
    raw = run_in_pty([sys.executable, "-c", script, payload], columns=80, env={"PYTHONPATH": str(ROOT)}, timeout_s=60)
    lines = visible_lines(raw)
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    final = "\n".join(lines)
    assert "━" in raw  # real bars were drawn
    assert "└ fine-tune" in final and "30/30" in final and "loss 0.067" in final
    assert "└ evaluate" in final and "8/8" in final
    assert "FAILED" in final and "job" in final
    assert "RuntimeError:" in final and sum(line == "x" * 80 for line in lines) >= 2  # the whole error, wrapped


def _rendered_rows(bars_events: list[JobEvent], max_rows: int | None) -> list[str]:
    """Feed events to LiveBars on an 80x24 console and return the rows one refresh draws."""
    from rich.console import Console

    from btq.producer.terminal.live_bars import LiveBars, new_progress

    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True, color_system=None)
    progress = new_progress(console)
    bars = LiveBars(progress, max_rows=max_rows)
    for e in bars_events:
        bars.handle(e)
    with console.capture() as captured:
        console.print(progress.get_renderable())
    return captured.get().splitlines()


def test_at_80x24_finished_steps_fold_so_the_running_step_stays_in_view() -> None:
    steps = [f"s{i}" for i in range(1, 31)]
    strategy = " -> ".join(steps)
    events = [event(EventType.JOB_SUBMITTED, strategy=strategy, seed=1)]
    for index in range(30):
        prefix = " -> ".join(steps[:index])
        events += [event(EventType.STEP_STARTED, index, prefix), event(EventType.STEP_SUCCEEDED, index, prefix)]
    events += [event(EventType.STEP_STARTED, 30, "s30 running"), finetune(30, 5)]
    events = [e.model_copy(update={"steps_total": 30}) for e in events]

    unfolded = _rendered_rows(events, max_rows=None)
    assert len(unfolded) > 24 and not any("s30 running" in row for row in unfolded[:24])  # what the fold fixes

    rows = _rendered_rows(events, max_rows=22)
    assert len(rows) <= 22
    assert any("s30 running" in row and "running on" in row for row in rows)
    assert any("└ fine-tune" in row for row in rows)
    folded = next(row for row in rows if "finished steps" in row)
    count = int(folded.split()[0])
    shown = [row for row in rows if " ok score" in row and "finished steps" not in row]
    assert count + len(shown) == 30 and count >= 8, rows  # every finished step: folded or still drawn
    assert rows[0].startswith("job")
