"""Final ranking of candidates, exactly as `dspy.BetterTogether` ranks them."""

import time
from functools import reduce

from dspy.utils.saving import get_dependency_versions

from btq.schemas.errors import ErrorRecord
from btq.schemas.result import Candidate, JobResult, JobState, StepOutcome, StepRecord
from btq.schemas.usage import Usage


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Sort by score, best first; None scores last; earlier candidates win ties."""
    indexed = list(enumerate(candidates))
    indexed.sort(key=lambda x: (x[1].score if x[1].score is not None else float("-inf"), -x[0]), reverse=True)
    return [c for _, c in indexed]


def build_result(job_id: str, strategy: str, seed: int, records: list[StepRecord], cancelled: bool) -> JobResult:
    """Turn the stored step records (index order) into the job's result.

    Candidates are the succeeded steps. With a valset the best is the top-ranked candidate; without
    one (scores are None) it is the latest. The flag is set when a strategy step failed. `detail` keeps
    dspy's `dependency_versions` of the worker, which an exported program's metadata repeats.
    """
    ordered = sorted(records, key=lambda r: r.index)
    candidates = [
        Candidate(strategy=r.strategy, score=r.score, step_index=r.index, program_state=r.program_state or {})
        for r in ordered
        if r.outcome is StepOutcome.SUCCEEDED
    ]
    failed = [r for r in ordered if r.outcome is StepOutcome.FAILED]
    flag = any(r.index > 0 for r in failed)
    ranked = rank(candidates)
    best: Candidate | None = None
    if candidates:
        has_valset = candidates[0].score is not None
        best = ranked[0] if has_valset else candidates[-1]
    if cancelled:
        state = JobState.CANCELLED
    elif not candidates:
        state = JobState.FAILED
    else:
        state = JobState.SUCCEEDED
    error: ErrorRecord | None = failed[0].error if failed else None
    spent = [r.usage for r in ordered if r.usage is not None]
    usage = reduce(Usage.plus, spent) if spent else None
    return JobResult(
        job_id=job_id,
        state=state,
        strategy=strategy,
        seed=seed,
        candidates=ranked,
        best=best,
        flag_compilation_error_occurred=flag,
        error=error,
        finished_at=time.time(),
        usage=usage,
        step_usage={r.index: r.usage for r in ordered if r.usage is not None},
        detail={"dependency_versions": get_dependency_versions()},
    )
