"""Several jobs side by side: validation and held-out score per strategy, wall and compute time, LM spend.

As in `btq compare`, each job is represented by its *final* program (the candidate of its whole strategy,
not its best), and the baseline (step 0, the same program in every job of a comparison) gets a row of its
own. Jobs one `btq compare` submitted share a group (`job.submitted` detail `group`) and open together.
"""

from typing import Any

import redis

from btq.producer.dashboard import job_view
from btq.schemas.job import STRATEGY_SEPARATOR
from btq.schemas.result import Candidate, JobResult

Json = dict[str, Any]

MOST_JOBS = 24
"""Most jobs one comparison page shows (each costs a few reads)."""


def strategy_order(job: Json) -> tuple[int, str]:
    """Sort key of a comparison's jobs: by the number of steps, then the strategy (`p`, `w`, `p -> w`, ...)."""
    strategy = job.get("strategy") or ""
    return (len(strategy.split(STRATEGY_SEPARATOR)), strategy)


def _models(candidate: Candidate | None) -> list[str]:
    if candidate is None:
        return []
    return sorted({p["model"] for p in job_view.program_view(candidate.program_state) if p["model"]})


def _final(result: JobResult) -> Candidate | None:
    return next((c for c in result.candidates if c.strategy == result.strategy), None)


def _row(r: redis.Redis, summary: Json) -> tuple[Json, Json | None]:
    """One job's row, and its baseline (validation and held-out score of step 0) when it has a result."""
    job_id = summary["job_id"]
    done = job_view.result(r, job_id)
    steps = job_view.steps(r, job_id, summary["steps_total"])
    reports = job_view.held_out(r, job_id)
    report = reports[0] if reports else None
    clock = job_view.timings(summary["submitted_at"], steps, done.finished_at if done else None)
    final = _final(done) if done else None
    usage = done.usage if done else None
    row = {
        "job_id": job_id,
        "strategy": summary["strategy"],
        "state": summary["state"],
        "state_label": done.state_label if done else summary["state_label"],
        "failed_steps": done.failed_steps if done else 0,
        "val": final.score if final else None,
        "test": report["scores"].get(str(final.step_index)) if report and final else None,
        "best_score": done.best.score if done and done.best else None,
        "wall_s": clock["wall_s"],
        "compute_s": clock["compute_s"],
        "lm_calls": usage.calls if usage else None,
        "cost": usage.cost_text() if usage else None,
        "models": _models(final),
        "split": f"{report['dataset']}/{report['split']}" if report else None,
        "error": done.error.message if done and done.error else None,
    }
    base = next((c for c in done.candidates if c.step_index == 0), None) if done else None
    baseline = None
    if base is not None:
        baseline = {"val": base.score, "test": report["scores"].get("0") if report else None}
    return row, baseline


def comparison(r: redis.Redis, jobs: list[Json], group: str | None) -> Json:
    """Return the comparison of `jobs` (summaries from `JobList`, in the order to show them)."""
    rows, baselines = [], []
    for summary in jobs:
        row, baseline = _row(r, summary)
        rows.append(row)
        if baseline is not None:
            baselines.append(baseline)
    first = jobs[0] if jobs else {}
    splits = sorted({row["split"] for row in rows if row["split"]})
    walls = [row["wall_s"] for row in rows if row["wall_s"] is not None]
    return {
        "group": group,
        "program": first.get("program"),
        "lm": first.get("lm"),
        "split": splits[0] if len(splits) == 1 else ", ".join(splits) or None,
        # Every job of one comparison starts from the same program: the first job's step 0 stands for it.
        "baseline": baselines[0] if baselines else None,
        "jobs": rows,
        "slowest_wall_s": max(walls) if walls else None,
    }
