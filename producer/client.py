"""The producer API: submit jobs, read status, results and events, cancel.

It enqueues by task name and never imports worker code: what the fleet can run is read from the
manifest workers publish in Redis.
"""

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import redis
from celery import Celery, chain
from pydantic import JsonValue

from btq.producer.fleet.validation import parse_spec
from btq.producer.fleet.view import FleetView
from btq.producer.reconnect import INFRA_ERRORS, Backoff, with_reconnect
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.blocking import blpop
from btq.schemas.codec import decode
from btq.schemas.event_entry import event_from_entry
from btq.schemas.events import EventType, JobEvent
from btq.schemas.exceptions import (
    BtqError,
    JobExistsError,
    JobNotFoundError,
    JobTimeoutError,
    JobValidationError,
    JobVanishedError,
)
from btq.schemas.job import JobSpec
from btq.schemas.labels import finalize_label, step_label
from btq.schemas.manifest import RegistryManifest
from btq.schemas.queues import amqp_class, held_out_priority, task_queue
from btq.schemas.result import EvaluationReport, JobResult, JobState, JobStatus
from btq.schemas.saved_program import SavedProgram, saved_program, select_candidate

Cursor = str
"""A Redis Stream entry id; '0-0' replays from the start, '$' means only new events."""


def celery_client(settings: ProducerSettings) -> Celery:
    """Return a Celery app used only to send messages: JSON only, no task code."""
    broker = settings.broker
    timeout_s = settings.broker_consumer_timeout_s
    # Queues declared exactly as workers declare them (profile queues too, made on first send):
    # RabbitMQ refuses a queue redeclared with other arguments.
    app = Celery("btq-producer", broker=broker, set_as_current=False, amqp=amqp_class(broker, timeout_s))
    app.conf.task_queues = [task_queue(settings.queue, broker, timeout_s)]
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
    )
    return app


_FINAL_STATES = [s.value for s in JobState if s.is_final]
# The cancel in one atomic step: unless the job already ended (a final state, or its terminal event out),
# set the flag the running step polls, say `cancelling`, queue the job for the workers' cancellers (which
# end it at once when no step of it runs) and announce the request. Nothing follows a terminal event.
_CANCEL = """
local state = redis.call('hget', KEYS[1], 'state')
for i = 6, #ARGV do if state == ARGV[i] then return 0 end end
if redis.call('exists', KEYS[5]) == 1 then return 0 end
redis.call('set', KEYS[2], '1', 'EX', ARGV[3])
redis.call('hset', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[2])
redis.call('zadd', KEYS[3], ARGV[2], ARGV[4])
redis.call('xadd', KEYS[4], '*', 'event', ARGV[5])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobClient:
    """Talks to one Redis database holding jobs; safe to share across threads."""

    def __init__(self, settings: ProducerSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = client or redis.Redis.from_url(settings.redis_url)
        self._celery: Celery | None = None

    @property
    def celery(self) -> Celery:
        """The sending-only Celery app, created on first use."""
        if self._celery is None:
            self._celery = celery_client(self.settings)
        return self._celery

    @property
    def fleet(self) -> FleetView:
        """The live workers and their manifests."""
        return FleetView(self.redis, self.settings.queue)

    def manifest(self) -> RegistryManifest:
        """Return what the live worker fleet registered, merged over its workers."""
        return self.fleet.manifest()

    def validate(self, data: JobSpec | dict[str, Any] | str | bytes) -> JobSpec:
        """Return the parsed spec with a concrete seed, or raise JobValidationError; writes nothing."""
        return self._check(data)[0]

    def route(self, spec: JobSpec) -> str:
        """Return the queue a valid job's tasks go to: that of a live registry profile covering all of it."""
        return self.fleet.route(spec, self.settings.max_examples)

    def _check(self, data: JobSpec | dict[str, Any] | str | bytes) -> tuple[JobSpec, str]:
        """The one validation path (CLI, Python and the intake): the spec with a seed, and its queue."""
        spec = data if isinstance(data, JobSpec) else parse_spec(data)
        steps = len(spec.steps())
        if steps > self.settings.max_strategy_steps:
            raise JobValidationError(
                "strategy",
                f"{steps} steps exceed the limit of {self.settings.max_strategy_steps} (BTQ_MAX_STRATEGY_STEPS)",
            )
        size = len(spec.model_dump_json())
        if size > self.settings.max_spec_bytes:
            raise JobValidationError("", f"job is {size} bytes; the limit is {self.settings.max_spec_bytes}")
        queue = self.route(spec)
        # dspy accepts seed=None; a distributed run must record the seed it used to be reproducible.
        return (spec if spec.seed is not None else spec.with_seed(secrets.randbelow(2**31))), queue

    def submit(
        self,
        data: JobSpec | dict[str, Any] | str | bytes,
        *,
        job_id: str | None = None,
        submission_id: str | None = None,
        group: str | None = None,
    ) -> str:
        """Validate and enqueue a job; return its id. A refused job leaves nothing behind.

        Args:
            data: the job spec (model, dict or JSON text).
            job_id: the id to create the job under (default: a fresh one); JobExistsError if taken,
                which makes a repeated submission under a derived id create nothing.
            submission_id: recorded in the `job.submitted` event (set by the intake).
            group: recorded in the `job.submitted` event: jobs submitted together (one `btq compare`),
                which the dashboard opens side by side.
        """
        spec, queue = self._check(data)
        job_id = job_id or uuid.uuid4().hex
        if not self.redis.set(keys.job_key(job_id, "spec"), spec.model_dump_json(), nx=True):
            raise JobExistsError(f"job {job_id} already exists")
        steps = len(spec.steps())
        now = time.time()
        detail: dict[str, JsonValue] = {"seed": spec.seed}
        if submission_id is not None:
            detail["submission_id"] = submission_id
        if group is not None:
            detail["group"] = group
        submitted = JobEvent(
            type=EventType.JOB_SUBMITTED,
            job_id=job_id,
            at=now,
            steps_total=steps,
            strategy=spec.strategy,
            detail=detail,
        )
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            keys.job_key(job_id, "status"),
            mapping={
                "state": JobState.QUEUED.value,
                "steps_total": steps,
                "steps_done": 0,
                "submitted_at": now,
                "updated_at": now,
                "queue": queue,
            },
        )
        pipe.zadd(keys.JOBS_INDEX, {job_id: now})
        # The job waits for step 0: the workers' sweeper re-drives it if its message is ever lost.
        pipe.zadd(keys.RUNNING_STEPS, {keys.running_member(job_id, 0): now})
        pipe.xadd(keys.job_key(job_id, "events"), {"event": submitted.model_dump_json()})
        pipe.xadd(keys.GLOBAL_EVENTS, {"event": submitted.model_dump_json()})
        try:
            pipe.execute()
            self._enqueue(job_id, spec.steps(), queue)
        except Exception:
            self._forget(job_id, steps)
            raise
        return job_id

    def _enqueue(self, job_id: str, steps: list[str], queue: str) -> None:
        # `argsrepr`: Flower and `celery events` show "job 1c95ab12 step 2/3 p -> w" instead of raw arguments.
        step_sigs = [
            self.celery.signature(
                keys.TASK_STEP, args=(job_id, i), immutable=True, queue=queue, argsrepr=step_label(job_id, i, steps)
            )
            for i in range(len(steps) + 1)
        ]
        final = self.celery.signature(
            keys.TASK_FINALIZE, args=(job_id,), immutable=True, queue=queue, argsrepr=finalize_label(job_id, steps)
        )
        # A keyword argument makes `chain` take the list as it is; without one it folds the tasks with `|`,
        # which clones the growing chain at every step: quadratic in the strategy's length.
        chain(*step_sigs, final, app=self.celery).apply_async()

    def _forget(self, job_id: str, steps: int) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(*keys.job_keys(job_id, steps))
        pipe.zrem(keys.JOBS_INDEX, job_id)
        pipe.zrem(keys.RUNNING_STEPS, keys.running_member(job_id, 0))
        pipe.execute()

    def status(self, job_id: str) -> JobStatus:
        """Return the job's state and progress."""
        raw = self.redis.hgetall(keys.job_key(job_id, "status"))
        if not raw:
            raise JobNotFoundError(job_id)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return JobStatus(
            job_id=job_id,
            state=JobState(fields["state"]),
            steps_total=int(fields["steps_total"]),
            steps_done=int(fields.get("steps_done", 0)),
            submitted_at=float(fields["submitted_at"]),
            updated_at=float(fields["updated_at"]),
        )

    def result(self, job_id: str) -> JobResult | None:
        """Return the job's result, or None while it runs."""
        raw = self.redis.get(keys.job_key(job_id, "result"))
        if raw is not None:
            return decode(JobResult, raw)
        if not self.redis.exists(keys.job_key(job_id, "spec")):
            raise JobNotFoundError(job_id)
        return None

    def spec(self, job_id: str) -> JobSpec:
        """Return the spec a job was submitted with (its seed filled in)."""
        raw = self.redis.get(keys.job_key(job_id, "spec"))
        if raw is None:
            raise JobNotFoundError(job_id)
        return decode(JobSpec, raw)

    def _finished(self, job_id: str) -> JobResult:
        result = self.result(job_id)
        if result is None:
            raise JobValidationError("job_id", f"job {job_id} has no result yet")
        return result

    def export(self, job_id: str, rank: int | None = None, strategy: str | None = None) -> SavedProgram:
        """Return one candidate of a finished job as dspy's saved-program JSON with its manifest.

        `rank` is the 0-based position in the ranked candidates, `strategy` a strategy prefix; neither
        picks the job's best. Write `program_json()` to `NAME.json` and dspy's `Module.load` reads it.
        """
        return saved_program(self._finished(job_id), self.spec(job_id), rank=rank, strategy=strategy)

    def program(self, job_id: str, rank: int | None = 0, *, strategy: str | None = None) -> Any:
        """Return a finished job's candidate as a working `dspy.Module` (needs the `worker` extra).

        Typed `Any` only because the producer package does not import dspy; the value is a `dspy.Module`.

        Built as a worker builds it: the registered program (the `BTQ_IMPORTS` registry modules must be
        importable here), the candidate's state, LMs rebuilt from the job's LM with credentials from the
        `BTQ_` worker settings, local fine-tunes fetched from `BTQ_ARTIFACT_DIR` and launched.

        Args:
            job_id: a finished job.
            rank: 0-based position in the ranked candidates (0: the top one, the best whenever the job
                had a valset); None: the job's `best`.
            strategy: pick the candidate of this strategy prefix instead of a rank.
        """
        # The one place the producer reaches into worker code: only when asked for a live program,
        # which needs dspy and the registry anyway (pyproject.toml [tool.importlinter] lists this import).
        try:
            from btq.worker.core.serving import serving_program
        except ImportError as exc:
            raise BtqError(
                "JobClient.program needs the worker extra: pip install 'bettertogether-queue[worker]'"
            ) from exc
        result = self._finished(job_id)
        _, candidate = select_candidate(result, rank=None if strategy else rank, strategy=strategy)
        return serving_program(self.spec(job_id), dict(candidate.program_state))

    def events(self, job_id: str, after: Cursor = "0-0", count: int | None = None) -> list[tuple[Cursor, JobEvent]]:
        """Return the job's events after cursor `after` (replay from any point)."""
        start = "(" + after if after != "0-0" else "-"
        stream = keys.job_key(job_id, "events")
        entries = cast(list[Any], self.redis.xrange(stream, min=start, max="+", count=count))
        decoded = [(_text(eid), event_from_entry(stream, eid, data)) for eid, data in entries]
        return [(eid, event) for eid, event in decoded if event is not None]

    def follow(self, job_id: str, timeout_s: float, after: Cursor = "0-0") -> Iterator[JobEvent]:
        """Yield the job's events as they arrive (replaying first), until a terminal event or timeout.

        Entries that are not valid events are skipped with a warning. Raises JobVanishedError when the
        job's keys disappear while it is followed (Redis restarted empty, or the job expired).
        """
        deadline = time.monotonic() + timeout_s
        stream = keys.job_key(job_id, "events")
        cursor = after
        backoff = Backoff(self.settings.redis_reconnect_budget_s)
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise JobTimeoutError(f"job {job_id} did not finish within {timeout_s}s")
            try:
                batches = cast(
                    list[Any], self.redis.xread({stream: cursor}, block=min(remaining_ms, 1000), count=100) or []
                )
            except INFRA_ERRORS as exc:  # a Redis restart: resume from the cursor, nothing is missed
                backoff.failed(exc, f"following job {job_id}")
                continue
            backoff.succeeded()
            if not batches:
                self._check_still_there(job_id)
            for _, entries in batches:
                for eid, data in entries:
                    cursor = _text(eid)
                    event = event_from_entry(stream, eid, data)
                    if event is None:
                        continue
                    yield event
                    if event.type.is_terminal:
                        return

    def _check_still_there(self, job_id: str) -> None:
        # A quiet stream is normal while a step runs; a job without status and result is gone for good.
        try:
            gone = not self.redis.exists(keys.job_key(job_id, "status"), keys.job_key(job_id, "result"))
        except INFRA_ERRORS:
            return  # the next read reconnects (within its budget) and checks again
        if gone:
            raise JobVanishedError(job_id)

    def wait(self, job_id: str, timeout_s: float) -> JobResult:
        """Block until the job has a result (bounded by `timeout_s`) and return it.

        Raises JobTimeoutError when `timeout_s` passes first, and JobVanishedError when the job's keys
        disappear meanwhile (Redis restarted without persistence, or the job expired).
        """
        budget_s = self.settings.redis_reconnect_budget_s
        existing = with_reconnect(lambda: self.result(job_id), f"reading job {job_id}", budget_s)
        if existing is not None:
            return existing
        for _ in self.follow(job_id, timeout_s):
            pass
        final = with_reconnect(lambda: self.result(job_id), f"reading job {job_id}", budget_s)
        if final is None:
            raise JobTimeoutError(f"job {job_id} ended without a stored result")
        return final

    def evaluate(self, job_id: str, dataset: str, split: str, timeout_s: float) -> EvaluationReport:
        """Score a finished job's candidates on a registered dataset split (run by a worker)."""
        manifest = self.manifest()
        if dataset not in manifest.datasets:
            raise JobValidationError("dataset", f"{dataset!r} is not registered on the workers")
        if split not in manifest.datasets[dataset]:
            raise JobValidationError("split", f"dataset {dataset!r} has no split {split!r}")
        if self.result(job_id) is None:
            raise JobValidationError("job_id", f"job {job_id} has no result yet")
        spec = decode(JobSpec, cast(bytes, self.redis.get(keys.job_key(job_id, "spec"))))
        queue = self.fleet.route(spec, self.settings.max_examples, dataset=(dataset, split))
        request_id = uuid.uuid4().hex
        # Behind every step waiting in the queue (Redis broker): scoring a finished job can wait for a free
        # worker, a running job's next step should not.
        self.celery.send_task(
            keys.TASK_EVALUATE,
            args=(job_id, request_id, dataset, split),
            queue=queue,
            priority=held_out_priority(self.settings.broker),
        )
        deadline = time.monotonic() + timeout_s
        key = keys.evaluation_key(job_id, request_id)
        # Pops of at most a second, so the deadline is kept; each awaits its reply past the client's
        # socket timeout (btq.schemas.blocking), which a slow reply on a loaded machine must not trip.
        while time.monotonic() < deadline:
            popped = blpop(self.redis, key, max(0.1, min(1.0, deadline - time.monotonic())))
            if popped is not None:
                report = decode(EvaluationReport, popped)
                self._keep_held_out(report)
                return report
        raise JobTimeoutError(f"no worker evaluated job {job_id} within {timeout_s}s")

    def _keep_held_out(self, report: EvaluationReport) -> None:
        # Kept with the job (same expiry as its status) so the dashboard can chart test scores too.
        key = keys.held_out_key(report.job_id)
        ttl: int = self.redis.ttl(keys.job_key(report.job_id, "status"))
        pipe = self.redis.pipeline()
        pipe.hset(key, f"{report.dataset}/{report.split}", report.model_dump_json())
        if ttl > 0:
            pipe.expire(key, ttl)
        pipe.execute()

    def cancel(self, job_id: str) -> bool:
        """Ask the job to stop; running steps stop at the next check. False if it already ended."""
        status = self.status(job_id)
        if status.state.is_final:
            return False
        # At once, before any worker notices: the state says the job is stopping; finalize says when it stopped.
        # A job that ended meanwhile keeps its final state and gets no event after its terminal one.
        event = JobEvent(type=EventType.CANCEL_REQUESTED, job_id=job_id, at=time.time(), steps_total=status.steps_total)
        cancelled = self.redis.eval(
            _CANCEL,
            5,
            keys.job_key(job_id, "status"),
            keys.job_key(job_id, "cancel"),
            keys.CANCELLING,
            keys.job_key(job_id, "events"),
            keys.terminal_marker(job_id),
            JobState.CANCELLING.value,
            time.time(),
            7 * 24 * 3600,
            job_id,
            event.model_dump_json(),
            *_FINAL_STATES,
        )
        return bool(cancelled)
