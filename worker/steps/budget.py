"""A step's record with what it spent, and the failure of a step the job's budget stopped."""

import redis

from btq.schemas import keys
from btq.schemas.errors import ErrorRecord
from btq.schemas.job import JobSpec
from btq.schemas.result import StepOutcome, StepRecord
from btq.schemas.usage import Budget, Usage
from btq.worker.state.fleet_gate import BUDGET_EXCEEDED
from btq.worker.state.spend import budget_exhausted, job_spend, step_usage


def with_usage(
    client: redis.Redis, spec: JobSpec, job_id: str, record: StepRecord, stop_reason: str | None
) -> StepRecord:
    """Return `record` with the step's usage (every worker's part); a step the budget stopped fails.

    A step stops on the budget when its own gate refused a call (`stop_reason`) or another worker's did
    (the job's budget is marked exhausted) while it ran. It is recorded as failed with `budget exceeded`,
    as an optimizer failure is: later steps are skipped, the best candidate so far is the result and the
    flag is set. A job cancelled meanwhile stays cancelled.
    """
    usage = step_usage(client, job_id, record.index)
    update: dict[str, object] = {"usage": usage}
    reached = _limit_reached(client, spec, job_id, stop_reason)
    if reached is not None and record.outcome in (StepOutcome.CANCELLED, StepOutcome.FAILED):
        cancelled = client.exists(keys.job_key(job_id, "cancel"))
        if not cancelled:
            assert spec.budget is not None
            spent, _reserved, _ = job_spend(client, job_id)
            update.update(
                outcome=StepOutcome.FAILED,
                score=None,
                program_state=None,
                error=ErrorRecord(type="BudgetExceededError", message=budget_message(reached, spec.budget, spent)),
            )
    return record.model_copy(update=update)


def _limit_reached(client: redis.Redis, spec: JobSpec, job_id: str, stop_reason: str | None) -> str | None:
    if spec.budget is None:
        return None
    if stop_reason is not None:
        return stop_reason.removeprefix(f"{BUDGET_EXCEEDED}: ")
    return budget_exhausted(client, job_id)


def budget_message(reached: str, budget: Budget, spent: Usage) -> str:
    """`budget exceeded: <limit>` with what the job spent against each limit (overshoot included)."""
    parts = []
    if budget.max_lm_calls is not None:
        parts.append(f"{spent.calls + spent.failed_calls} of {budget.max_lm_calls} LM calls")
    if budget.max_tokens is not None:
        parts.append(f"{spent.tokens} of {budget.max_tokens} tokens")
    if budget.max_cost_usd is not None:
        parts.append(f"${spent.cost_usd:.6f} of ${budget.max_cost_usd:.6f}")
    return f"{BUDGET_EXCEEDED}: {reached} reached (spent {', '.join(parts)}; overshoot is bounded by calls in flight)"
