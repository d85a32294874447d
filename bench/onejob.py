"""Section: ONE job on 1, 2, 4, 8 and 16 single-process workers (sharded evaluation), and what bounds it.

The job is `p -> w -> p` (BootstrapFewShotWithRandomSearch with 2 candidate programs and 3 demos, then
BootstrapFinetune, then the first again) on 100 training and 200 validation examples, the LM sleeping
20 ms per call, one example at a time per process (num_threads 1, as a local model server answers one
request at a time), seed 7, no LM cache. Each size gets fresh workers (start-up excluded) and the same
result is required on every size.

Besides the wall-time speedups (noisy on a shared machine), the section prints figures that do not
depend on the machine's load: the worker CPU per LM call (every process of the fleet, main processes
included, divided by the job's LM calls), the same job's CPU per call in this process with
`dspy.BetterTogether` alone (dspy's own cost) and their ratio (what btq adds per call), and the
speedups these imply on this machine's cores: `cores * (latency + cpu) / cpu` when CPU is the limit,
and Amdahl's bound from the serial share (the part of the 1-worker run outside sharded evaluations).
"""

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import dspy

from bench.config import DB_ONEJOB, lm_name
from bench.context import BenchContext
from bench.jobs import run_job
from bench.redis_dbs import db_url, flush
from bench.registry import EVAL_DATASET, MODEL, ONEJOB_DATASET, eval_splits, onejob_splits
from bench.report import SectionResult
from bench.stats import summarize
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.events import EventType
from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.lm.builtin import exact_match
from btq.worker.lm.simulated import simulated_lm

P_KWARGS: dict[str, Any] = {"num_candidate_programs": 2, "max_bootstrapped_demos": 3, "num_threads": 1}
SEED = 7
ONEJOB_TIMEOUT_S = 900.0
"""Bound on the job's event wait: about a minute on one quiet worker, several on a loaded machine."""


def onejob_spec(latency_ms: int) -> dict[str, Any]:
    """Return the one-job section's `p -> w -> p` job."""
    return {
        "program": {"name": "demo.qa"},
        "lm": lm_name(latency_ms),
        "metric": "demo.exact_match",
        "strategy": "p -> w -> p",
        "optimizers": {
            "p": {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": dict(P_KWARGS)},
            "w": {"optimizer": "BootstrapFinetune", "kwargs": {"num_threads": 1}},
        },
        "trainset": {"dataset": ONEJOB_DATASET, "split": "train"},
        "valset": {"dataset": ONEJOB_DATASET, "split": "val"},
        "num_threads": 1,
        "seed": SEED,
        "cache": False,
    }


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _one_run(ctx: BenchContext, size: int, rep: int) -> dict[str, Any]:
    """Run the job once on `size` fresh workers; return its wall, worker CPU, LM calls, serial part, result."""
    flush(DB_ONEJOB)
    with ctx.fleet(DB_ONEJOB, f"onejob-{size}-{rep}") as fleet:
        for i in range(size):
            fleet.start(f"bench-onejob-{i}")
        client = JobClient(ProducerSettings(redis_url=db_url(DB_ONEJOB)))
        cpu_before = sum(w.cpu_s() for w in fleet.workers)
        run = run_job(client, onejob_spec(ctx.plan.onejob_latency_ms), timeout_s=ONEJOB_TIMEOUT_S)
        cpu_s = sum(w.cpu_s() for w in fleet.workers) - cpu_before
    done = [e for e in run.events if e.type is EventType.STEP_SUCCEEDED]
    sharded = sum(_number((e.detail or {}).get("sharded_evaluation_s")) for e in done)
    steps = sum(float(e.duration_s or 0.0) for e in done)
    outcome = [(c.strategy, c.score) for c in run.result.candidates]
    return {
        "rep": rep,
        "workers": size,
        "wall_s": run.wall_s,
        "worker_cpu_s": cpu_s,
        "lm_calls": run.result.usage.calls if run.result.usage else 0,
        "sharded_s": sharded,
        "steps_s": steps,
        "outcome": f"{run.result.state.value}:{outcome}",
        "load": os.getloadavg()[0],
    }


def in_process_cpu_s(artifact_dir: Path) -> float:
    """CPU seconds of the same job run by `dspy.BetterTogether` in this process (LM latency 0)."""
    lm = simulated_lm(MODEL, task="arith", artifacts=LocalArtifactStore(artifact_dir))
    student = dspy.Predict("question -> answer")
    student.set_lm(lm)
    splits = onejob_splits()
    sink = io.StringIO()
    with dspy.context(lm=lm), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        optimizer = dspy.BetterTogether(
            metric=exact_match,
            p=dspy.BootstrapFewShotWithRandomSearch(metric=exact_match, **P_KWARGS),
            w=dspy.BootstrapFinetune(metric=exact_match, num_threads=1),
        )
        started = time.process_time()  # every thread of this process: dspy's executors included
        optimizer.compile(
            student, trainset=splits["train"], valset=splits["val"], seed=SEED, num_threads=1, strategy="p -> w -> p"
        )
        return time.process_time() - started


def small_job(latency_ms: int, seed: int) -> dict[str, Any]:
    """Return a one-step `p` job on a 12-example valset (below the sharding threshold on one worker)."""
    val = [{"question": e.question, "answer": e.answer} for e in eval_splits()["val"][:12]]
    return {
        "program": {"name": "demo.qa"},
        "lm": lm_name(latency_ms),
        "metric": "demo.exact_match",
        "strategy": "p",
        "optimizers": {
            "p": {
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "kwargs": {"num_candidate_programs": 6, "max_bootstrapped_demos": 2, "num_threads": 1},
            }
        },
        "trainset": {"dataset": EVAL_DATASET, "split": "train"},
        "valset": val,
        "input_keys": ["question"],
        "num_threads": 1,
        "seed": seed,
        "cache": False,
    }


def _small_job_walls(ctx: BenchContext, sharding: bool, reps: int) -> list[float]:
    """Wall times of the small job on one worker, sharding on or off."""
    flush(DB_ONEJOB)
    env = {"BTQ_SHARDING_ENABLED": "true" if sharding else "false"}
    with ctx.fleet(DB_ONEJOB, f"onejob-small-{sharding}", env=env) as fleet:
        fleet.start("bench-onejob-small")
        client = JobClient(ProducerSettings(redis_url=db_url(DB_ONEJOB)))
        latency = ctx.plan.onejob_latency_ms
        run_job(client, small_job(latency, seed=SEED))  # warm-up, untimed
        return [run_job(client, small_job(latency, seed=s)).wall_s for s in range(reps)]


def _small_job_overhead(ctx: BenchContext, section: SectionResult) -> None:
    reps = 3 if ctx.quick else 7
    off = _small_job_walls(ctx, sharding=False, reps=reps)
    on = _small_job_walls(ctx, sharding=True, reps=reps)
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    section.add("small job, sharded / unsharded, 1 worker", "x", summarize(ratios), note="12-example valset; <= 1.05")


def run_onejob(ctx: BenchContext) -> SectionResult:
    """Measure one job's wall time and CPU on each fleet size (paired within a repetition)."""
    section = SectionResult("onejob")
    plan = ctx.plan
    sizes = list(plan.onejob_workers)
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        for rep in range(plan.onejob_reps):
            for size in sizes if rep % 2 == 0 else sizes[::-1]:
                runs[(rep, size)] = _one_run(ctx, size, rep)
        _small_job_overhead(ctx, section)
    finally:
        flush(DB_ONEJOB)
    outcomes = {r["outcome"] for r in runs.values()}
    if len(outcomes) != 1:
        section.failures.append(f"one job gave different results on different fleet sizes: {sorted(outcomes)}")
    reps = range(plan.onejob_reps)
    base = sizes[0]
    for size in sizes:
        section.add(f"one job, {size} worker process(es)", "s", summarize([runs[(r, size)]["wall_s"] for r in reps]))
        if size != base:
            ratios = [runs[(r, base)]["wall_s"] / runs[(r, size)]["wall_s"] for r in reps]
            section.add(f"  speedup vs {base}, {size} workers", "x", summarize(ratios), note=f"ideal {size}")
    serial = [1 - runs[(r, base)]["sharded_s"] / runs[(r, base)]["steps_s"] for r in reps]
    section.add("  serial share of the 1-worker run", "frac", summarize(serial), note="outside sharded evaluations")
    per_call = {
        size: [1000 * runs[(r, size)]["worker_cpu_s"] / max(1, runs[(r, size)]["lm_calls"]) for r in reps]
        for size in sizes
    }
    for size in sizes:
        section.add(
            f"  worker CPU per LM call, {size} workers", "ms", summarize(per_call[size]), note="all worker processes"
        )
    calls = runs[(0, base)]["lm_calls"]
    dspy_ms = 1000 * in_process_cpu_s(ctx.workdir / "onejob-inprocess") / max(1, calls)
    section.add("  dspy alone, CPU per LM call", "ms", value=dspy_ms, note="BetterTogether in process, same job")
    top = max(sizes)
    section.add(
        f"  worker CPU / dspy alone, {top} workers",
        "x",
        summarize([ms / dspy_ms for ms in per_call[top]]),
        note="what btq adds per call: Celery, Redis, sharding",
    )
    cores = os.cpu_count() or 1
    latency = plan.onejob_latency_ms
    bound = [cores * (latency + ms) / ms for ms in per_call[top]]
    section.add(
        f"  CPU bound on {cores} cores", "x", summarize(bound), note=f"cores*(latency+cpu)/cpu at {top} workers"
    )
    amdahl = [1 / (s + (1 - s) / top) for s in serial]
    section.add(f"  Amdahl bound, {top} workers", "x", summarize(amdahl), note="from the serial share")
    section.data = {"runs": list(runs.values()), "dspy_cpu_ms_per_call": dspy_ms, "lm_calls": calls}
    loads = [r["load"] for r in runs.values()]
    section.notes.append(
        f"one `p -> w -> p` job (BootstrapFewShotWithRandomSearch 2 candidates x 3 demos, BootstrapFinetune), "
        f"100 train / 200 val examples, LM {latency} ms/call, num_threads 1 per process, {calls} LM calls; "
        f"fresh workers per size; load average {min(loads):.1f}-{max(loads):.1f} during the runs; "
        f"same result on every size: {len(outcomes) == 1}"
    )
    return section
