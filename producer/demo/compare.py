"""`btq compare`: one job per strategy on the same data and seed, run concurrently by the fleet, side by side.

Every job's final program (the candidate of its whole strategy, not its best) is scored on the held-out
split by a worker. The comparison prints one table (validation, held-out test, wall time per strategy),
and writes the rows as JSON and a bar chart as SVG. Fine-tunes are content-addressed, so two strategies
that fine-tune on the same data (`w` and `w -> p`) train once and share the artifact; a strategy whose
steps begin a longer one's starts when those steps are done, and replays them from the caches.
"""

import json
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from btq.producer.client import JobClient
from btq.producer.demo.chart import bar_chart_svg
from btq.schemas.events import EventType
from btq.schemas.exceptions import BtqError, JobTimeoutError
from btq.schemas.job import STRATEGY_SEPARATOR
from btq.schemas.result import Candidate, JobResult

DEFAULT_STRATEGIES = ("p", "w", "p -> w", "w -> p", "p -> w -> p")
"""Each one-step strategy, each two-step order, and the full BetterTogether default."""

BASELINE = "(baseline)"


class ComparisonStopped(BtqError):
    """The comparison was stopping (another job failed or it was interrupted): no more jobs are submitted."""


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's job: its final program's scores and how long it took."""

    strategy: str
    job_id: str
    state: str
    val: float | None
    test: float | None
    wall_s: float
    """From the job's first step starting to its result (includes waits for a free worker between steps)."""
    compute_s: float
    """The sum of its steps' run times."""
    models: list[str] = field(default_factory=list)
    """The final program's LM model names (a fine-tuned model's content name after `w`)."""
    error: str | None = None
    lm_calls: int | None = None
    """LM calls the job made (cache hits not counted)."""
    cost: str | None = None
    """What the job's LM calls cost (`unknown` for unpriced models)."""


@dataclass
class Comparison:
    """All strategies of one comparison, plus the un-optimized program (the same in every job)."""

    base_spec: dict[str, Any]
    held_out: tuple[str, str]
    runs: list[StrategyRun]
    baseline_val: float | None
    baseline_test: float | None
    wall_s: float
    finished_at: float = field(default_factory=time.time)
    group: str | None = None
    """The group its jobs were submitted under (the dashboard's `/compare?group=<group>` shows them together)."""

    def rows(self) -> list[tuple[str, float | None, float | None, float | None]]:
        """Return (strategy, val, test, wall time) per row, the baseline first."""
        return [(BASELINE, self.baseline_val, self.baseline_test, None)] + [
            (r.strategy, r.val, r.test, r.wall_s) for r in self.runs
        ]


def _final(result: JobResult) -> Candidate | None:
    return next((c for c in result.candidates if c.strategy == result.strategy), None)


def _times(client: JobClient, job_id: str) -> tuple[float, float]:
    started: dict[int, float] = {}
    compute = 0.0
    first = last = None
    for _, event in client.events(job_id):
        if event.type is EventType.STEP_STARTED and event.step_index is not None:
            started[event.step_index] = event.at
            first = event.at if first is None else min(first, event.at)
        elif event.type in {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED} and event.step_index in started:
            compute += event.at - started[event.step_index]
        if event.type in {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}:
            last = event.at
    return ((last or 0.0) - (first or 0.0), compute)


def _models(candidate: Candidate | None) -> list[str]:
    if candidate is None:
        return []
    found: list[str] = []
    # A single Predict's state holds its `lm` at the top; a module's, one level down per predictor.
    for value in [candidate.program_state, *candidate.program_state.values()]:
        lm = value.get("lm") if isinstance(value, dict) else None
        model = lm.get("model") if isinstance(lm, dict) else None
        if isinstance(model, str):
            found.append(model)
    return sorted(set(found))


def _finish(
    client: JobClient, strategy: str, job_id: str, held_out: tuple[str, str], timeout_s: float
) -> tuple[StrategyRun, dict[str, float | None]]:
    """Wait for one job, then have a worker score its candidates on the held-out split."""
    result = client.wait(job_id, timeout_s)
    final = _final(result)
    scores: dict[str, float | None] = {}
    error = result.error.message if result.error else None
    if final is not None:
        report = client.evaluate(job_id, held_out[0], held_out[1], timeout_s=timeout_s)
        scores = dict(report.scores)
        error = error or (report.error.message if report.error else None)
    # The baseline's validation score travels with the held-out scores (as key "val:0").
    baseline = next((c for c in result.candidates if c.step_index == 0), None)
    scores["val:0"] = baseline.score if baseline else None
    wall, compute = _times(client, job_id)
    run = StrategyRun(
        strategy=strategy,
        job_id=job_id,
        state=result.state.value,
        val=final.score if final else None,
        test=scores.get(str(final.step_index)) if final else None,
        wall_s=round(wall, 1),
        compute_s=round(compute, 1),
        models=_models(final),
        error=error,
        lm_calls=result.usage.calls if result.usage else None,
        cost=result.usage.cost_text() if result.usage else None,
    )
    return run, scores


def _steps(strategy: str) -> list[str]:
    # Split as JobSpec.steps() (and dspy.BetterTogether) split a strategy.
    return strategy.split(STRATEGY_SEPARATOR)


def carrier_of(strategy: str, strategies: Sequence[str]) -> str | None:
    """The longest other strategy that starts with every step of `strategy` (None: there is none).

    With the same data and seed, its job runs those steps exactly as `strategy`'s job would, so the
    comparison starts `strategy` once they are done and its job replays them from the shared LM cache and
    artifact store instead of computing them a second time, side by side, on another worker.
    """
    mine = _steps(strategy)
    longer = [s for s in strategies if len(_steps(s)) > len(mine) and _steps(s)[: len(mine)] == mine]
    return max(longer, key=lambda s: len(_steps(s)), default=None)


def lead_of(strategies: Sequence[str]) -> str:
    """The strategy submitted first: the longest (the first listed among equals).

    Every job of a comparison begins with the same step 0, the un-optimized program scored on the valset.
    The other strategies start once the lead's job has run it and replay it from the LM cache: two jobs
    running it side by side would each wait on the other's identical LM calls, one worker idle, while
    the lead's step 0 alone is sharded across every free worker.
    """
    return max(strategies, key=lambda s: len(_steps(s)))


def _await_steps(client: JobClient, job_id: str, steps: int, timeout_s: float, stop: threading.Event) -> None:
    """Return once the job has ended its step `steps` (or the job has ended, or `stop` is set)."""
    ended = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED}
    for event in client.follow(job_id, timeout_s):
        if stop.is_set() or (event.type in ended and (event.step_index or 0) >= steps):
            return


class _Launcher:
    """Submits the comparison's jobs (carriers at once, the others after their shared steps) and tracks them."""

    def __init__(self, client: JobClient, base_spec: dict[str, Any], strategies: Sequence[str], timeout_s: float):
        self.client = client
        # One group per comparison: the dashboard lists its jobs together (`/compare?group=...`).
        self.group = f"compare-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        self.base_spec = base_spec
        self.strategies = strategies
        self.timeout_s = timeout_s
        self.ids: dict[str, str] = {}
        self.lead = lead_of(strategies)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._submitted = {s: threading.Event() for s in strategies}

    def submit(self, strategy: str) -> str:
        """Submit `strategy`'s job now (refused once the comparison is stopping)."""
        with self._lock:
            if self.stop.is_set():
                raise ComparisonStopped(f"the comparison stopped before {strategy!r} was submitted")
            self.ids[strategy] = self.client.submit({**self.base_spec, "strategy": strategy}, group=self.group)
            self._submitted[strategy].set()
            return self.ids[strategy]

    def submit_after_carrier(self, strategy: str) -> str:
        """Submit `strategy`'s job once the job it follows has run the steps they share.

        That is its carrier's job (`carrier_of`) for the steps they share, else the lead's for step 0.
        """
        carrier = carrier_of(strategy, self.strategies)
        follows, shared = (carrier, len(_steps(strategy))) if carrier is not None else (self.lead, 0)
        if follows != strategy:
            # The carrier may itself be waiting for the lead: its job id exists once it is submitted.
            # Running out of time is a timeout, whichever thread notices first: the caller sees the same
            # `JobTimeoutError` as when a job overruns, not a `ComparisonStopped` that only follows from it.
            if not self._submitted[follows].wait(self.timeout_s):
                raise JobTimeoutError(f"{follows!r} was not submitted within {self.timeout_s}s, so {strategy!r} is not")
            if self.stop.is_set():
                raise ComparisonStopped(f"{follows!r} was not submitted, so {strategy!r} is not")
            _await_steps(self.client, self.ids[follows], shared, self.timeout_s, self.stop)
        return self.submit(strategy)

    def cancel_all(self) -> None:
        """Stop submitting and ask every submitted job that has not ended to stop."""
        with self._lock:
            self.stop.set()
            submitted = list(self.ids.values())
        for waited in self._submitted.values():  # wakes strategies waiting for a job that will not come
            waited.set()
        for job_id in submitted:  # best effort: the comparison is failing anyway
            with suppress(Exception):
                self.client.cancel(job_id)


def run_comparison(
    client: JobClient,
    base_spec: dict[str, Any],
    held_out: tuple[str, str],
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    timeout_s: float = 3600.0,
) -> Comparison:
    """Run one job per strategy concurrently, wait for all, score each final program on `held_out`.

    The longest strategy is submitted first (`lead_of`); a strategy whose steps begin another one's (`p`
    and `p -> w` in `p -> w -> p`) is submitted when that job has run them, any other once the lead has run
    step 0 (the un-optimized program's evaluation, the same in every job). The fleet computes every shared
    step once, and no worker sits waiting on another's identical LM calls. Each job then replays those steps
    (same results, from the caches) and runs the rest.

    Args:
        client: A client of the fleet that runs the jobs.
        base_spec: The job every strategy shares (data, optimizers, seed); its `strategy` is replaced.
        held_out: (dataset, split) the final programs are scored on, e.g. `("local.dates", "test")`.
        strategies: One job each, in the order the table lists them.
        timeout_s: Bound on each job and on each held-out evaluation.

    If it raises (a timeout, Ctrl-C, a refused submission), the jobs it submitted are cancelled first.
    """
    began = time.time()
    launcher = _Launcher(client, base_spec, strategies, timeout_s)
    pool = ThreadPoolExecutor(max_workers=len(strategies))
    try:
        launcher.submit(launcher.lead)

        def run(strategy: str) -> tuple[StrategyRun, dict[str, float | None]]:
            job_id = launcher.ids.get(strategy) or launcher.submit_after_carrier(strategy)
            return _finish(client, strategy, job_id, held_out, timeout_s)

        futures = {s: pool.submit(run, s) for s in strategies}
        done = {s: f.result() for s, f in futures.items()}
    except BaseException:
        # Interrupted, timed out or refused: the jobs already submitted would otherwise keep the fleet busy
        # for nobody (and a later comparison's workers would run them first). Cancelled jobs end, so the
        # threads following them return.
        launcher.cancel_all()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    # Every job starts from the same program, so the first job's step 0 stands for the baseline.
    first_scores = done[strategies[0]][1]
    return Comparison(
        base_spec=base_spec,
        held_out=held_out,
        runs=[done[s][0] for s in strategies],
        baseline_val=first_scores.get("val:0"),
        baseline_test=first_scores.get("0"),
        wall_s=round(time.time() - began, 1),
        group=launcher.group,
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(comparison: Comparison, out: TextIO) -> None:
    """Print one row per strategy: validation score, held-out score, wall time."""
    split = comparison.held_out[1]
    print(
        f"{'strategy':<16} {'val':>7} {split:>7} {'wall s':>8} {'compute s':>10} {'LM calls':>8} {'cost':>12}  final model",
        file=out,
    )
    print(f"{BASELINE:<16} {_fmt(comparison.baseline_val):>7} {_fmt(comparison.baseline_test):>7}", file=out)
    for run in comparison.runs:
        models = ", ".join(run.models)
        print(
            f"{run.strategy:<16} {_fmt(run.val):>7} {_fmt(run.test):>7} {_fmt(run.wall_s, 1):>8} "
            f"{_fmt(run.compute_s, 1):>10} {run.lm_calls if run.lm_calls is not None else '-':>8} "
            f"{run.cost or '-':>12}  {models}{'  ERROR ' + run.error if run.error else ''}",
            file=out,
        )
    print(f"all strategies together: {comparison.wall_s:.1f}s wall", file=out)
    if comparison.group:
        print(f"on the dashboard: /compare?group={comparison.group}", file=out)


def write_results(comparison: Comparison, directory: Path, name: str) -> tuple[Path, Path]:
    """Write `<name>.json` (every row, the shared spec) and `<name>.svg` (bar chart) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    data = asdict(comparison)
    data["held_out"] = list(comparison.held_out)
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    rows = comparison.rows()
    split = comparison.held_out[1]
    svg = bar_chart_svg(
        f"{comparison.base_spec.get('lm')}: final program per strategy (% exact)",
        [r[0] for r in rows],
        {"val": [r[1] for r in rows], split: [r[2] for r in rows]},
    )
    svg_path = directory / f"{name}.svg"
    svg_path.write_text(svg)
    return json_path, svg_path
