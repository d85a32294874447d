"""The step service: store + events + runner for one task, idempotent and redelivery-capped.

Celery tasks are thin adapters over these three methods. A step's record is written once; a
redelivered step whose record exists returns it untouched, so no candidate is recorded twice.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType
from btq.schemas.exceptions import RetryableStepError
from btq.schemas.job import JobSpec
from btq.schemas.result import EvaluationReport, JobResult, StepOutcome, StepRecord
from btq.worker.core.held_out import score_candidates
from btq.worker.core.interrupt import interruptible
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.metering import Meter
from btq.worker.core.progress import reporting_to
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.core.runner import StepHooks, run_baseline, run_step
from btq.worker.core.valset import polled
from btq.worker.settings import WorkerSettings
from btq.worker.sharding.board import drop_step_evaluations
from btq.worker.sharding.evaluator import ShardingSupport, StepEvaluator
from btq.worker.sharding.examples import EvaluationCancelled
from btq.worker.sharding.hook import evaluating_with
from btq.worker.state.events import EventEmitter
from btq.worker.state.fleet_gate import FleetMetering
from btq.worker.state.infra import InfraWatch
from btq.worker.state.lease import LeaseLostError, StepLease
from btq.worker.state.lm_cache import caching_for
from btq.worker.state.spend import budget_exhausted
from btq.worker.state.store import JobStore
from btq.worker.steps.budget import with_usage
from btq.worker.steps.finalizer import Finalizer
from btq.worker.steps.records import record_without_running


class StepService:
    """Runs baseline, strategy steps and finalization for jobs stored in one Redis database."""

    def __init__(
        self,
        store: JobStore,
        events: EventEmitter,
        registry: Registry,
        resources: WorkerResources,
        settings: WorkerSettings,
        worker: str,
        sharding: ShardingSupport | None = None,
    ) -> None:
        self.store = store
        self.sharding = sharding
        self.events = events
        self.registry = registry
        self.resources = resources
        self.settings = settings
        self.worker = worker
        self.metering = FleetMetering(store.redis, settings)
        self.finalizer = Finalizer(store, events, settings, worker)

    def run(self, job_id: str, index: int) -> StepRecord:
        """Run step `index` (0 = baseline) of `job_id` once, whatever the number of deliveries.

        A delivery that finds the step's record returns it; one that finds another live delivery
        running the step (its lease renewed) waits for that record instead of running it again.

        Raises:
            LeaseLostError: This delivery lost the step's lease while running it (it was paused past the
                lease's TTL and another delivery took over): it stopped, and stores and emits nothing.
        """
        spec = self.store.spec(job_id)
        lease = StepLease(self.store.redis, job_id, index, self.settings.step_lease_ttl_s, self.worker)
        existing = self._wait_for_record_or_lease(job_id, index, lease)
        if existing is None:
            with lease:
                existing = self.store.step(job_id, index)  # the previous holder may have just finished
                if existing is None:
                    record = self._run_leased(spec, job_id, index, lease)
                    if lease.is_lost():  # whatever it computed, the step belongs to its new holder now
                        raise LeaseLostError(f"step {index} of job {job_id}: lease lost while running")
                    existing, _ = self.store.put_step(job_id, record)
        # The record holds what the step's evaluations were for: their shards are no longer needed.
        drop_step_evaluations(self.store.redis, job_id, index)
        # Emitted from the stored record by whoever finds it without its event: a holder that died
        # between storing the record and emitting the event loses no event.
        self._emit_outcome(spec, job_id, existing)
        return existing

    def _wait_for_record_or_lease(self, job_id: str, index: int, lease: StepLease) -> StepRecord | None:
        """Return the step's record if it exists or appears; None once this delivery holds the lease."""
        # A live holder is bounded by its own hard time limit, after which its lease lapses.
        deadline = time.monotonic() + self.settings.step_time_limit_s + 2 * self.settings.step_lease_ttl_s
        while True:
            existing = self.store.step(job_id, index)
            if existing is not None:
                return existing
            if lease.acquire() or time.monotonic() > deadline:
                return None
            time.sleep(min(1.0, self.settings.step_lease_ttl_s / 10))  # poll a live holder's record

    def _run_leased(self, spec: JobSpec, job_id: str, index: int, lease: StepLease) -> StepRecord:
        attempt = self.store.claim_attempt(job_id, index)
        previous = self.store.step(job_id, index - 1) if index > 0 else None
        not_run = self._reason_not_to_run(job_id, index, attempt, previous)
        if not_run is not None:
            outcome, error = not_run
            return self._record_without_running(spec, index, previous, outcome, attempt, error)
        if previous is not None:  # its event, if its holder died between storing it and emitting it
            self._emit_outcome(spec, job_id, previous)
        self.store.mark_running(job_id)  # from step 0 on, not only once step 0 is stored
        self._emit_step(EventType.STEP_STARTED, spec, job_id, index, attempt=attempt)
        return self._execute(spec, job_id, index, previous, attempt, lease)

    def finalize(self, job_id: str) -> JobResult:
        """Rank the candidates exactly like dspy.BetterTogether and store the job's result once."""
        return self.finalizer.finalize(job_id)

    def emit_stored_result(self, job_id: str) -> None:
        """Emit the terminal event of a job whose result is stored, unless it was emitted already."""
        self.finalizer.emit_stored_result(job_id)

    def evaluate(self, job_id: str, request_id: str, dataset: str, split: str) -> EvaluationReport:
        """Score the job's candidates on a registered split and push the report to the requester."""
        spec = self.store.spec(job_id)
        scores: dict[str, float | None] = {}
        error: ErrorRecord | None = None
        try:
            result = self.store.result(job_id)
            job = ResolvedJob.resolve(spec, self.registry, self.resources, self.settings)
            # The shared LM cache, as in the steps: candidates that several jobs have in common (the
            # baseline, a shared prefix of strategies) are scored once across the fleet.
            with caching_for(job, job.spec.cache and self.settings.lm_cache_enabled):
                scores = score_candidates(job, result, dataset, split)
        except Exception as exc:  # reported to the requester, who decides what to do with it
            error = ErrorRecord.from_exception(exc)
        report = EvaluationReport(
            job_id=job_id, dataset=dataset, split=split, scores=scores, worker=self.worker, error=error
        )
        self.store.push_evaluation(job_id, request_id, report)
        return report

    def _reason_not_to_run(
        self, job_id: str, index: int, attempt: int, previous: StepRecord | None
    ) -> tuple[StepOutcome, ErrorRecord | None] | None:
        if index > 0 and (previous is None or previous.outcome is not StepOutcome.SUCCEEDED):
            return StepOutcome.SKIPPED, None
        if self.store.is_cancelled(job_id):
            return StepOutcome.CANCELLED, None
        if attempt > self.settings.max_deliveries_per_step:
            message = (
                f"step {index} was delivered {attempt} times (cap {self.settings.max_deliveries_per_step}): "
                "the worker running it was lost every time"
            )
            return StepOutcome.FAILED, ErrorRecord(type="WorkerLostError", message=message)
        return None

    def _execute(
        self, spec: JobSpec, job_id: str, index: int, previous: StepRecord | None, attempt: int, lease: StepLease
    ) -> StepRecord:
        watch = InfraWatch()
        stop_check = self._stop_check(job_id, lease, spec)
        with self.metering.metered(job_id, index, spec.budget) as meter:
            # A spent budget stops the step through the cancel path, then is recorded as its failure.
            hooks = StepHooks(
                is_cancelled=watch.check(lambda: meter.stopped() or stop_check()),
                worker=self.worker,
                attempt=attempt,
            )
            try:
                job = ResolvedJob.resolve(spec, self.registry, self.resources, self.settings)
                with (
                    reporting_to(self._progress_reporter(spec, job_id, index, attempt, meter, lease)),
                    self._step_context(job, job_id, index, hooks),
                    interruptible(hooks.is_cancelled),
                    watch,
                ):
                    record = run_baseline(job, hooks) if previous is None else run_step(job, previous, hooks)
            except RetryableStepError:
                raise  # what the step computed is not all in the shared cache: no record, the step runs again
            except Exception as exc:  # resolution or baseline errors end the job as a recorded failure
                cancelled = isinstance(exc, EvaluationCancelled) or hooks.is_cancelled()
                outcome = StepOutcome.CANCELLED if cancelled else StepOutcome.FAILED
                record = self._record_without_running(
                    spec, index, previous, outcome, attempt, None if cancelled else ErrorRecord.from_exception(exc)
                )
        watch.raise_if_infra_failed(record)  # never a score or a failure caused by Redis being away
        return with_usage(self.store.redis, spec, job_id, record, meter.stop_reason)

    @contextmanager
    def _step_context(self, job: ResolvedJob, job_id: str, index: int, hooks: StepHooks) -> Iterator[None]:
        """The shared LM cache and, when on, sharded evaluation for everything the step evaluates."""
        with ExitStack() as stack:
            stack.enter_context(caching_for(job, job.spec.cache and self.settings.lm_cache_enabled))
            if self.sharding is not None:
                evaluator = StepEvaluator(
                    job,
                    job_id,
                    index,
                    self.store.redis,
                    self.sharding.config,
                    worker=self.worker,
                    live_slots=self.sharding.live_slots,
                    send_shards=self.sharding.send_shards,
                    is_cancelled=hooks.is_cancelled,
                    timings=hooks.timings,
                    redact=self.store.redact,
                )
                stack.enter_context(evaluating_with(evaluator))
            yield

    def _record_without_running(
        self,
        spec: JobSpec,
        index: int,
        previous: StepRecord | None,
        outcome: StepOutcome,
        attempt: int,
        error: ErrorRecord | None,
    ) -> StepRecord:
        return record_without_running(spec, index, previous, outcome, worker=self.worker, attempt=attempt, error=error)

    def _emit_outcome(self, spec: JobSpec, job_id: str, record: StepRecord) -> None:
        self.finalizer.emit_outcome(spec, job_id, record)

    def _emit_step(
        self, event_type: EventType, spec: JobSpec, job_id: str, index: int, once: str | None = None, **fields: Any
    ) -> None:
        self.finalizer.emit_step(event_type, spec, job_id, index, once, **fields)

    def _progress_reporter(
        self, spec: JobSpec, job_id: str, index: int, attempt: int, meter: Meter, lease: StepLease
    ) -> Callable[[dict[str, Any]], None]:
        def emit(detail: dict[str, Any]) -> None:
            if lease.is_lost():  # a paused holder that woke up after a takeover reports nothing
                return
            # What this worker's part of the step spent so far (shards elsewhere add theirs at the end).
            # Zero counters left out (readers default them), as progress events are many.
            detail = {**detail, "usage": meter.usage().model_dump(mode="json", exclude_defaults=True)}
            self._emit_step(EventType.STEP_PROGRESS, spec, job_id, index, attempt=attempt, detail=detail)

        return emit

    def _stop_check(self, job_id: str, lease: StepLease, spec: JobSpec) -> Callable[[], bool]:
        """Return the step's interruption check: cancelled, lease lost, or budget spent.

        The budget may be spent by this worker or by a shard's calls on another. Redis is asked at most once per `cancel_poll_interval_s`; a lease presumed lost (no renewal
        confirmed for a TTL, as after a SIGSTOP) stops the step at once, before any further LM call.
        """
        client = self.store.redis
        budgeted = spec.budget is not None

        def ask() -> bool:
            if not lease.confirm() or self.store.is_cancelled(job_id):
                return True
            return budgeted and budget_exhausted(client, job_id) is not None

        asked = polled(ask, self.settings.cancel_poll_interval_s)
        return lambda: lease.is_lost() or asked()
