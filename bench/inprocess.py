"""The baseline: the same job run in this process with `dspy.BetterTogether`, no Redis, no Celery.

It mirrors `jobs.three_step_job` setting for setting (LM, program, metric, optimizers, trainset,
seed, threads), so its candidates must equal the distributed job's; that equality is the parity
column of the table.
"""

import contextlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from bench.jobs import NUM_THREADS, P_KWARGS, SEED, STRATEGY
from bench.registry import make_lm
from btq.schemas.result import JobResult
from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.lm.builtin import arithmetic_splits, exact_match


@dataclass
class InProcessRun:
    """Wall time of `compile()` and the candidates it produced as (strategy, score, state JSON)."""

    wall_s: float
    candidates: list[tuple[str, float | None, str]]
    deepcopy_s: float
    """Time of one `Module.deepcopy()` per candidate: work BetterTogether does in process (it keeps a
    copy of every candidate) that a worker replaces by dumping the program state. Timed after
    `compile()`, so it slightly overstates what the copies cost during the run (LM histories grow)."""


def run_in_process(latency_ms: int, artifact_dir: Path, seed: int = SEED) -> InProcessRun:
    """Run the three-step job in process and time `BetterTogether.compile()`."""
    lm = make_lm(latency_ms, LocalArtifactStore(artifact_dir))
    student = dspy.Predict("question -> answer")
    student.set_lm(lm)
    trainset = arithmetic_splits()["train"]
    # dspy prints progress bars and bootstrap chatter to stdout/stderr; the table must stay readable.
    sink = io.StringIO()
    with dspy.context(lm=lm), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        optimizer = dspy.BetterTogether(
            metric=exact_match,
            p=dspy.BootstrapFewShotWithRandomSearch(metric=exact_match, **P_KWARGS),
            w=dspy.BootstrapFinetune(metric=exact_match),
        )
        started = time.perf_counter()
        compiled = optimizer.compile(student, trainset=trainset, seed=seed, num_threads=NUM_THREADS, strategy=STRATEGY)
        wall_s = time.perf_counter() - started
    candidates = [
        (c["strategy"], c["score"], _canonical(c["program"].dump_state())) for c in compiled.candidate_programs
    ]
    copy_started = time.perf_counter()
    for candidate in compiled.candidate_programs:
        candidate["program"].deepcopy()
    return InProcessRun(wall_s, candidates, time.perf_counter() - copy_started)


def _canonical(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, default=str)


def parity(in_process: InProcessRun, distributed: JobResult) -> str:
    """Return 'ok' when both runs ranked the same candidates with the same scores and program states."""
    theirs = [(c.strategy, c.score, _canonical(dict(c.program_state))) for c in distributed.candidates]
    if [(s, sc) for s, sc, _ in theirs] != [(s, sc) for s, sc, _ in in_process.candidates]:
        return "score mismatch"
    if [st for _, _, st in theirs] != [st for _, _, st in in_process.candidates]:
        return "state mismatch"
    return "ok"
