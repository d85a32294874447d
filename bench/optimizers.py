"""Section: each allowlisted optimizer as `p` in `p -> w -> p` on 2 workers: how much of it is sharded.

For every optimizer the figure is the share of the job's step time spent in sharded evaluations and
the number of evaluations sharded: optimizers that score candidates through `dspy.Evaluate` with the
job's metric (BootstrapFewShotWithRandomSearch, MIPROv2, COPRO) shard those too; SIMBA (dspy.Parallel)
and GEPA (its adapter's metric wrapper) shard only the step's own validation score.
"""

from typing import Any

from bench.config import DB_ONEJOB, lm_name
from bench.context import BenchContext
from bench.jobs import run_job
from bench.redis_dbs import db_url, flush
from bench.registry import EVAL_DATASET
from bench.report import SectionResult
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.events import EventType

OPTIMIZERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "LabeledFewShot": ({"k": 3}, {}),
    "BootstrapFewShot": ({"max_bootstrapped_demos": 2}, {}),
    "BootstrapFewShotWithRandomSearch": ({"num_candidate_programs": 3, "max_bootstrapped_demos": 2}, {}),
    "MIPROv2": ({"auto": None, "num_candidates": 2, "max_bootstrapped_demos": 1, "max_labeled_demos": 1}, {}),
    "COPRO": ({"breadth": 2, "depth": 1}, {}),
    "SIMBA": ({"bsize": 8, "num_candidates": 2, "max_steps": 1, "max_demos": 1}, {}),
    "GEPA": (
        {"max_metric_calls": 60, "reflection_lm": {"$lm": lm_name(20)}, "metric": {"$metric": "bench.feedback"}},
        {},
    ),
}
COMPILE_ARGS = {"MIPROv2": {"num_trials": 2, "minibatch": False}}


def optimizer_job(name: str, valset: int) -> dict[str, Any]:
    """`p -> w -> p` with optimizer `name` as p on the bench's evaluation dataset."""
    from bench.registry import eval_splits

    kwargs, _ = OPTIMIZERS[name]
    val = [{"question": e.question, "answer": e.answer} for e in eval_splits()["val"][:valset]]
    job: dict[str, Any] = {
        "program": {"name": "demo.qa"},
        "lm": lm_name(20),
        "metric": "demo.exact_match",
        "strategy": "p -> w -> p",
        "optimizers": {"p": {"optimizer": name, "kwargs": kwargs}, "w": {"optimizer": "BootstrapFinetune"}},
        "trainset": {"dataset": EVAL_DATASET, "split": "train"},
        "valset": val,
        "input_keys": ["question"],
        "seed": 1,
        "cache": False,
    }
    if name in COMPILE_ARGS:
        job["optimizer_compile_args"] = {"p": COMPILE_ARGS[name]}
    return job


def run_optimizers(ctx: BenchContext) -> SectionResult:
    """Run one job per optimizer on two workers and report the sharded share of its steps."""
    section = SectionResult("optimizers")
    flush(DB_ONEJOB)
    valset = 40 if ctx.quick else 80
    try:
        with ctx.fleet(DB_ONEJOB, "optimizers") as fleet:
            fleet.start("bench-opt-a")
            fleet.start("bench-opt-b")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_ONEJOB)))
            for name in OPTIMIZERS:
                run = run_job(client, optimizer_job(name, valset))
                if run.result.state.value != "succeeded" or run.result.flag_compilation_error_occurred:
                    section.failures.append(f"{name}: {run.result.state.value} {run.result.error}")
                    continue
                p_steps = [e for e in run.events if e.type is EventType.STEP_SUCCEEDED and e.optimizer_key == "p"]
                sharded = sum(_number((e.detail or {}).get("sharded_evaluation_s")) for e in p_steps)
                count = sum(int(_number((e.detail or {}).get("sharded_evaluations"))) for e in p_steps)
                total = sum(e.duration_s or 0.0 for e in p_steps)
                section.add(f"{name}: p steps sharded", "frac", value=round(sharded / total, 3) if total else 0.0)
                section.add(f"  {name}: evaluations sharded in p steps", "count", value=count)
                section.add(f"  {name}: job wall time", "s", value=round(run.wall_s, 2))
    finally:
        flush(DB_ONEJOB)
    section.notes.append(
        f"p -> w -> p, valset {valset}, LM 20 ms/call, 2 workers; frac = sharded evaluation s / p-step s"
    )
    return section


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
