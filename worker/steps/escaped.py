"""Exceptions that escape a task (a bug, not an optimizer failure) become recorded outcomes.

Celery stops a chain at a task that raises, so an escaped exception would leave its job `running`
forever. The step task records it as a failed step instead (later steps are then skipped and the final
task still runs); the final task, if it is the one that raises, records a failed result. Both use a
fresh Redis client and no registry, so they work when the step service itself could not be built.
"""

import logging
import time

import redis

from btq.schemas import keys
from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType
from btq.schemas.result import JobResult, JobState, StepOutcome, StepRecord
from btq.worker.settings import WorkerSettings
from btq.worker.state.events import EventEmitter
from btq.worker.state.store import JobStore
from btq.worker.steps.records import record_without_running
from btq.worker.steps.redaction import Redactor

log = logging.getLogger(__name__)


def record_failed_step(settings: WorkerSettings, job_id: str, index: int, worker: str, exc: Exception) -> StepRecord:
    """Store step `index` as failed with `exc` (unless it has a record already) and emit `step.failed`."""
    log.error("step %d of job %s raised; recorded as a failed step", index, job_id, exc_info=exc)
    store, events = _open(settings)
    spec = store.spec(job_id)
    previous = store.step(job_id, index - 1) if index > 0 else None
    error = ErrorRecord.from_exception(exc)
    record = record_without_running(spec, index, previous, StepOutcome.FAILED, worker=worker, attempt=1, error=error)
    stored, won = store.put_step(job_id, record)
    if won:
        # Once, with the marker the other tasks check: a later task would otherwise announce it again.
        events.emit_once(
            keys.emitted_key(job_id, index),
            settings.job_ttl_s,
            EventType.STEP_FAILED,
            job_id,
            len(spec.steps()),
            step_index=index,
            strategy=record.strategy,
            optimizer_key=record.optimizer_key,
            worker=worker,
            error=record.error,
            detail={"outcome": StepOutcome.FAILED.value, "escaped": True},
        )
    return stored


def record_failed_result(settings: WorkerSettings, job_id: str, worker: str, exc: Exception) -> JobResult:
    """Store a failed result for a job whose final task raised, and emit `job.failed`."""
    log.error("finalizing job %s raised; recorded as a failed job", job_id, exc_info=exc)
    store, events = _open(settings)
    spec = store.spec(job_id)
    assert spec.seed is not None  # the producer fixes a concrete seed at submission
    result = JobResult(
        job_id=job_id,
        state=JobState.FAILED,
        strategy=spec.strategy,
        seed=spec.seed,
        candidates=[],
        best=None,
        flag_compilation_error_occurred=True,
        error=ErrorRecord.from_exception(exc),
        finished_at=time.time(),
    )
    stored, won = store.put_result(result, len(spec.steps()))
    if won:
        events.emit_once(
            keys.terminal_marker(job_id),
            settings.job_ttl_s,
            EventType.JOB_FAILED,
            job_id,
            len(spec.steps()),
            worker=worker,
            error=stored.error,
        )
    return stored


def _open(settings: WorkerSettings) -> tuple[JobStore, EventEmitter]:
    client = redis.Redis.from_url(settings.redis_url)
    redact = Redactor.from_settings(settings)  # the error may quote a worker secret
    emitter = EventEmitter(client, settings.job_stream_maxlen, settings.global_stream_maxlen, redact)
    return JobStore(client, settings.job_ttl_s, redact), emitter
