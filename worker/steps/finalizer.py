"""The job's end: rank the stored step records like dspy.BetterTogether, store the result once, announce it.

Used by the finalize task, by the step service (its step events), and by the canceller, which ends a
cancelled job at once from any worker's main process. Storing the result is `SET NX` and the terminal
event is emitted with its marker in one Lua call, so however many of them race, a job has one result
and exactly one terminal event, and nothing is appended to its streams after it.
"""

from typing import Any

from btq.schemas import keys
from btq.schemas.events import EventType
from btq.schemas.job import JobSpec
from btq.schemas.result import JobResult, StepOutcome, StepRecord
from btq.worker.core.ranking import build_result
from btq.worker.settings import WorkerSettings
from btq.worker.sharding.board import drop_step_evaluations
from btq.worker.state.events import EventEmitter
from btq.worker.state.lease import live_holder
from btq.worker.state.store import JobStore

_OUTCOME_EVENTS = {
    StepOutcome.SUCCEEDED: EventType.STEP_SUCCEEDED,
    StepOutcome.FAILED: EventType.STEP_FAILED,
    StepOutcome.CANCELLED: EventType.STEP_SKIPPED,
    StepOutcome.SKIPPED: EventType.STEP_SKIPPED,
}
_RESULT_EVENTS = {"succeeded": EventType.JOB_SUCCEEDED, "failed": EventType.JOB_FAILED}


class Finalizer:
    """Stores results and emits step and job events for jobs in one Redis database."""

    def __init__(self, store: JobStore, events: EventEmitter, settings: WorkerSettings, worker: str) -> None:
        self.store = store
        self.events = events
        self.settings = settings
        self.worker = worker

    def finalize(self, job_id: str) -> JobResult:
        """Rank the candidates exactly like dspy.BetterTogether and store the job's result once."""
        spec = self.store.spec(job_id)
        steps = len(spec.steps())
        records = self.store.steps(job_id, steps + 1)
        interrupted = any(r.outcome is StepOutcome.CANCELLED for r in records)
        complete = len(records) == steps + 1 and all(r.outcome is StepOutcome.SUCCEEDED for r in records)
        cancelled = interrupted or (self.store.is_cancelled(job_id) and not complete)
        assert spec.seed is not None  # the producer fixes a concrete seed at submission
        result = build_result(job_id, spec.strategy, spec.seed, records, cancelled)
        stored, _ = self.store.put_result(result, steps)
        for record in records:  # a step holder that died between storing its record and dropping them
            drop_step_evaluations(self.store.redis, job_id, record.index)
        for record in records:  # any step event a crash left unemitted comes before the job's
            self.emit_outcome(spec, job_id, record)
        self.emit_result(stored, steps)
        return stored

    def finalize_if_idle(self, job_id: str) -> JobResult | None:
        """Finalize a job none of whose steps is held by a live holder (a cancelled job); else return None.

        A step that is really running keeps its lease and stops through its own cancel check; the job is
        finalized once it let go. A step delivered after this look sees the cancel flag and runs nothing.
        """
        if self.store.has_result(job_id):
            return None
        if live_holder(self.store.redis, job_id, len(self.store.spec(job_id).steps())) is not None:
            return None
        return self.finalize(job_id)

    def emit_stored_result(self, job_id: str) -> None:
        """Emit the terminal event of a job whose result is stored, unless it was emitted already."""
        self.emit_result(self.store.result(job_id), len(self.store.spec(job_id).steps()))

    def emit_result(self, stored: JobResult, steps: int) -> None:
        """Emit the job's terminal event once, from the stored result."""
        job_id = stored.job_id
        event = _RESULT_EVENTS.get(stored.state.value, EventType.JOB_CANCELLED)
        self.events.emit_once(
            keys.terminal_marker(job_id),
            self.settings.job_ttl_s,
            event,
            job_id,
            steps,
            strategy=stored.best.strategy if stored.best else None,
            score=stored.best.score if stored.best else None,
            worker=self.worker,
            error=stored.error,
            detail={"flag_compilation_error_occurred": stored.flag_compilation_error_occurred},
        )

    def emit_outcome(self, spec: JobSpec, job_id: str, record: StepRecord) -> None:
        """Emit a stored record's outcome event once (whoever finds it without its event)."""
        detail: dict[str, Any] = {
            "outcome": record.outcome.value,
            **{k: round(v, 6) for k, v in record.timings_s.items()},
        }
        if record.usage is not None:
            detail["usage"] = record.usage.model_dump(mode="json")
        self.emit_step(
            _OUTCOME_EVENTS[record.outcome],
            spec,
            job_id,
            record.index,
            once=keys.emitted_key(job_id, record.index),
            score=record.score,
            duration_s=record.finished_at - record.started_at,
            attempt=record.attempt,
            error=record.error,
            detail=detail,
        )

    def emit_step(
        self, event_type: EventType, spec: JobSpec, job_id: str, index: int, once: str | None = None, **fields: Any
    ) -> None:
        """Emit one event about step `index`, with the fields every step event carries (once per `once` marker)."""
        fields.update(
            step_index=index,
            strategy=spec.strategy_prefix(index),
            optimizer_key=spec.steps()[index - 1] if index else None,
            worker=self.worker,
        )
        if once is None:
            self.events.emit(event_type, job_id, len(spec.steps()), **fields)
        else:
            self.events.emit_once(once, self.settings.job_ttl_s, event_type, job_id, len(spec.steps()), **fields)
