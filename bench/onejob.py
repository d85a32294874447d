"""Section: ONE evaluation-bound job on 1, 2 and 4 worker processes (sharded evaluation).

The job is `p` with BootstrapFewShotWithRandomSearch (6 candidate programs) on a 200-example valset,
LM sleeping 20 ms per call, every evaluation scoring one example at a time per process (num_threads 1,
as a local model server answers one request at a time). Each size gets fresh workers (start-up
excluded); the serial share is the part of the 1-worker run spent outside sharded evaluations
(bootstrapping, optimizer bookkeeping), which more workers cannot shorten.
"""

from typing import Any

from bench.config import DB_ONEJOB, lm_name
from bench.context import BenchContext
from bench.jobs import run_job
from bench.redis_dbs import db_url, flush
from bench.registry import EVAL_DATASET
from bench.report import SectionResult
from bench.stats import summarize
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.events import EventType


def eval_bound_job(valset: int, latency_ms: int, seed: int = 3) -> dict[str, Any]:
    """Return the evaluation-bound one-step job (inline valset slice of the bench dataset)."""
    from bench.registry import eval_splits

    val = [{"question": e.question, "answer": e.answer} for e in eval_splits()["val"][:valset]]
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


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _one_run(ctx: BenchContext, size: int, rep: int) -> tuple[float, float, float, str]:
    """Run the job once on `size` fresh workers; return wall s, sharded-evaluation s, step s, best score."""
    flush(DB_ONEJOB)
    with ctx.fleet(DB_ONEJOB, f"onejob-{size}-{rep}") as fleet:
        for i in range(size):
            fleet.start(f"bench-onejob-{i}")
        client = JobClient(ProducerSettings(redis_url=db_url(DB_ONEJOB)))
        run = run_job(client, eval_bound_job(ctx.plan.onejob_valset, ctx.plan.onejob_latency_ms))
    done = [e for e in run.events if e.type is EventType.STEP_SUCCEEDED]
    sharded = sum(_number((e.detail or {}).get("sharded_evaluation_s")) for e in done)
    steps = sum(float(e.duration_s or 0.0) for e in done)
    best = run.result.best.score if run.result.best else None
    return run.wall_s, sharded, steps, f"{run.result.state.value}:{best}"


def _small_job_walls(ctx: BenchContext, sharding: bool, reps: int) -> list[float]:
    """Wall times of a small job (12-example valset) on one worker, sharding on or off."""
    flush(DB_ONEJOB)
    env = {"BTQ_SHARDING_ENABLED": "true" if sharding else "false"}
    with ctx.fleet(DB_ONEJOB, f"onejob-small-{sharding}", env=env) as fleet:
        fleet.start("bench-onejob-small")
        client = JobClient(ProducerSettings(redis_url=db_url(DB_ONEJOB)))
        run_job(client, eval_bound_job(12, ctx.plan.onejob_latency_ms))  # warm-up, untimed
        return [run_job(client, eval_bound_job(12, ctx.plan.onejob_latency_ms, seed=s)).wall_s for s in range(reps)]


def _small_job_overhead(ctx: BenchContext, section: SectionResult) -> None:
    reps = 3 if ctx.quick else 7
    off = _small_job_walls(ctx, sharding=False, reps=reps)
    on = _small_job_walls(ctx, sharding=True, reps=reps)
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    section.add("small job, sharded / unsharded, 1 worker", "x", summarize(ratios), note="12-example valset; <= 1.05")


def run_onejob(ctx: BenchContext) -> SectionResult:
    """Measure one job's wall time on each fleet size (paired within a repetition)."""
    section = SectionResult("onejob")
    sizes = list(ctx.plan.onejob_workers)
    runs: dict[tuple[int, int], tuple[float, float, float, str]] = {}
    try:
        for rep in range(ctx.plan.onejob_reps):
            for size in sizes if rep % 2 == 0 else sizes[::-1]:
                runs[(rep, size)] = _one_run(ctx, size, rep)
        _small_job_overhead(ctx, section)
    finally:
        flush(DB_ONEJOB)
    outcomes = {r[3] for r in runs.values()}
    if len(outcomes) != 1:
        section.failures.append(f"one job gave different results on different fleet sizes: {sorted(outcomes)}")
    base = sizes[0]
    for size in sizes:
        walls = [runs[(rep, size)][0] for rep in range(ctx.plan.onejob_reps)]
        section.add(f"one job, {size} worker process(es)", "s", summarize(walls))
        if size != base:
            ratios = [runs[(rep, base)][0] / runs[(rep, size)][0] for rep in range(ctx.plan.onejob_reps)]
            section.add(f"  speedup vs {base}, {size} workers", "x", summarize(ratios), note=f"ideal {size}")
    serial = [1 - runs[(rep, base)][1] / runs[(rep, base)][2] for rep in range(ctx.plan.onejob_reps)]
    section.add("  serial share of the 1-worker run", "frac", summarize(serial), note="outside sharded evaluations")
    section.data = {
        "runs": [{"rep": k[0], "workers": k[1], "wall_s": v[0], "sharded_s": v[1]} for k, v in runs.items()]
    }
    section.notes.append(
        f"one `p` job, BootstrapFewShotWithRandomSearch x6 candidates, valset {ctx.plan.onejob_valset}, "
        f"LM {ctx.plan.onejob_latency_ms} ms/call, num_threads 1 per process; fresh workers per size; "
        f"same result on every size: {sorted(outcomes)}"
    )
    return section
