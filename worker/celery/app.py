"""The Celery app, built from settings: JSON only, late acks, capped redelivery, prefetch 1."""

import os
from typing import Any

import redis
from celery import Celery, group
from celery.signals import task_postrun, worker_ready, worker_shutdown
from dspy.clients.base_lm import GLOBAL_HISTORY
from kombu.exceptions import OperationalError

from btq.schemas import keys
from btq.schemas.exceptions import RetryableStepError
from btq.schemas.labels import shard_label
from btq.schemas.queues import amqp_class, task_queue
from btq.schemas.result import JobResult, StepRecord
from btq.worker.celery import canceller, sweeper
from btq.worker.celery.broker import broker_conf
from btq.worker.celery.hangup import connect_hangup_handler
from btq.worker.celery.metrics import connect_metrics
from btq.worker.celery.presence import connect_presence, job_queue
from btq.worker.celery.redrive import redriver
from btq.worker.celery.runtime import WorkerRuntime
from btq.worker.settings import WorkerSettings
from btq.worker.state.events import worker_name
from btq.worker.state.infra import report_failure
from btq.worker.state.lease import LeaseLostError
from btq.worker.steps.escaped import record_failed_result, record_failed_step
from btq.worker.steps.guards import MessageGuard, drop
from btq.worker.steps.redaction import install_log_redaction
from btq.worker.steps.service import StepService


def create_app(settings: WorkerSettings) -> Celery:
    """Return a Celery app whose tasks run BetterTogether steps for jobs in `settings.redis_url`.

    Task messages come from `settings.broker_url` (Redis or RabbitMQ; the Redis URL when unset).
    """
    url = settings.broker_url or settings.redis_url
    timeout_s = settings.broker_consumer_timeout_s
    # Every queue, configured here or made on first send (a job's profile queues), is declared by
    # `task_queue`: on RabbitMQ with the consumer timeout producers declare too.
    app = Celery("btq", set_as_current=False, amqp=amqp_class(url, timeout_s))
    broker = broker_conf(settings)
    # Steps on the job queue, evaluation shards on their own queue: a worker consumes both unless told
    # otherwise (`-Q`); evaluation-only workers use `<queue>.eval`.
    queues = [task_queue(settings.queue, url, timeout_s), task_queue(keys.eval_queue(settings.queue), url, timeout_s)]
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        result_accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
        task_queues=queues,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.step_soft_time_limit_s,
        task_time_limit=settings.step_time_limit_s,
        # Our consumer (and, on Redis, our transport) dead-letter unreadable messages instead of dying on them.
        worker_consumer="btq.worker.celery.consumer:PoisonProofConsumer",
        **broker,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Off unless asked (`btq worker --events` or BTQ_WORKER_SEND_EVENTS): Flower reads them.
        worker_send_task_events=settings.worker_send_events,
    )
    runtime = WorkerRuntime(settings)
    install_log_redaction(runtime.redactor)  # before any pool process forks: children inherit it
    _register_tasks(app, runtime)
    clients: dict[int, redis.Redis] = {}

    def send_shards(job_id: str, eval_id: str, count: int) -> None:
        if os.getpid() not in clients:  # one client per pool process (created after the fork)
            clients[os.getpid()] = redis.Redis.from_url(settings.redis_url)
        client = clients[os.getpid()]
        # To the evaluation queue of the job's profile: only workers that can rebuild the job get its shards.
        eval_queue = keys.eval_queue(job_queue(client, job_id, settings.queue))
        # The fan-out of one evaluation: a group of shard tasks; each claims shards until none is left.
        label = shard_label(job_id, eval_id)
        try:
            group(
                app.signature(keys.TASK_SHARD, args=(job_id, eval_id), queue=eval_queue, argsrepr=label)
                for _ in range(count)
            ).apply_async()
        except OperationalError as exc:  # the broker is away: the step is retried, the evaluation never scored
            report_failure(exc)
            raise

    runtime.bind_shard_sender(send_shards)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _start_sweeper(sender: Any = None, **_: Any) -> None:
        name = getattr(sender, "hostname", None) or worker_name()
        # Recovery of steps whose worker died, driven by step leases (see worker/celery/sweeper.py).
        sweeper_redis = runtime.sweeper_redis()
        lost_steps = sweeper.Sweeper(sweeper_redis, settings, redriver(app, settings.queue, sweeper_redis), name)
        stops.append(sweeper.start(lost_steps, settings.sweep_interval_s))
        # Cancelled jobs whose steps still wait in the queue end at once (see worker/celery/canceller.py).
        stops.append(canceller.start(runtime.canceller(sweeper_redis, name), settings.cancel_poll_interval_s))

    stops: list[Any] = []

    @worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _leave(**_: Any) -> None:
        for stop in stops:
            stop.set()

    connect_presence(app, runtime)
    connect_hangup_handler()
    connect_metrics(app, runtime)
    if settings.otel_exporter != "none":
        connect_tracing(runtime)

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _forget_history(**_: Any) -> None:
        # dspy keeps every LM call in a process-wide history (10,000 entries, prompts included): a
        # long-lived worker would grow by tens of kB per job for a debugging aid nobody reads here.
        GLOBAL_HISTORY.clear()

    app.btq_runtime = runtime  # type: ignore[attr-defined]
    return app


def connect_tracing(runtime: WorkerRuntime) -> None:
    """Wire OpenTelemetry (the `otel` extra, imported only when a span exporter is configured)."""
    try:
        from btq.worker.celery.tracing import connect_tracing as connect
    except ImportError as exc:
        raise RuntimeError(
            f"BTQ_OTEL_EXPORTER={runtime.settings.otel_exporter} needs the otel extra "
            f"(pip install 'bettertogether-queue[otel]'): {exc}"
        ) from exc
    connect(runtime)


def _register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """Thin adapters: parse the message, call the step service, return nothing large."""

    @app.task(name=keys.TASK_STEP, bind=True)  # type: ignore[untyped-decorator]
    def step(self: Any, job_id: str, index: int) -> dict[str, Any]:
        return _step(self, runtime, job_id, index)

    @app.task(name=keys.TASK_FINALIZE, bind=True)  # type: ignore[untyped-decorator]
    def finalize(self: Any, job_id: str) -> dict[str, Any]:
        service = runtime.service(_worker(self))
        reason = MessageGuard(service.store).finalize(job_id)
        if reason is not None:
            if isinstance(job_id, str) and service.store.has_spec(job_id) and service.store.has_result(job_id):
                service.emit_stored_result(job_id)  # a finalize that died between result and event
            return drop(keys.TASK_FINALIZE, (job_id,), reason)
        return {"job_id": job_id, "state": _finalize(runtime, service, job_id, _worker(self)).state.value}

    @app.task(name=keys.TASK_SHARD, bind=True)  # type: ignore[untyped-decorator]
    def shard(self: Any, job_id: str, eval_id: str) -> dict[str, Any]:
        if not isinstance(job_id, str) or not isinstance(eval_id, str):
            return {"stored": 0}  # a forged message: nothing to look up
        stored = runtime.shard_runner(_worker(self)).work(job_id, eval_id)
        return {"job_id": job_id, "eval_id": eval_id, "stored": stored}

    @app.task(name=keys.TASK_EVALUATE, bind=True)  # type: ignore[untyped-decorator]
    def evaluate(self: Any, job_id: str, request_id: str, dataset: str, split: str) -> dict[str, Any]:
        report = runtime.service(_worker(self)).evaluate(job_id, request_id, dataset, split)
        return {"job_id": job_id, "ok": report.error is None}


def _step(task: Any, runtime: WorkerRuntime, job_id: str, index: int) -> dict[str, Any]:
    """The step task: check the message, run the step, decide whether the chain goes on."""
    service = runtime.service(_worker(task))
    guard = MessageGuard(service.store)
    reason = guard.step(job_id, index)
    if reason is not None:
        task.request.chain = None  # a dropped message continues no chain
        _end_if_cancelled(service, job_id)
        return drop(keys.TASK_STEP, (job_id, index), reason)
    try:
        record = _run_step(runtime, service, job_id, index, _worker(task))
    except LeaseLostError as exc:  # the step's new holder records it and continues the chain
        task.request.chain = None
        return drop(keys.TASK_STEP, (job_id, index), str(exc))
    if guard.chain_moved_on(job_id, index) or _end_if_cancelled(service, job_id):
        task.request.chain = None  # a duplicate delivery, or a job that ended: nothing more to send
    return {"job_id": job_id, "index": index, "outcome": record.outcome.value}


def _end_if_cancelled(service: StepService, job_id: object) -> bool:
    """Finalize a cancelled job at once when no step of it runs any more; True when it has ended."""
    if not isinstance(job_id, str) or not service.store.has_spec(job_id) or not service.store.is_cancelled(job_id):
        return False
    service.finalizer.finalize_if_idle(job_id)
    return service.store.has_result(job_id)


def _run_step(runtime: WorkerRuntime, service: StepService, job_id: str, index: int, worker: str) -> StepRecord:
    """Run one step; a bug escaping it becomes a recorded failure, so the job still ends."""
    try:
        return service.run(job_id, index)
    except (RetryableStepError, LeaseLostError):
        raise  # Redis went away under the step: no record; the sweeper re-drives it once Redis is back
    except Exception as exc:  # a bug: raising would stop the chain and strand the job
        return record_failed_step(runtime.settings, job_id, index, worker, exc)


def _finalize(runtime: WorkerRuntime, service: StepService, job_id: str, worker: str) -> JobResult:
    """Rank and store the result; a bug escaping it becomes a failed result, so the job still ends."""
    try:
        return service.finalize(job_id)
    except Exception as exc:  # a bug: the job must still end
        return record_failed_result(runtime.settings, job_id, worker, exc)


def _worker(task: Any) -> str:
    import os

    hostname = getattr(task.request, "hostname", None)
    return f"{hostname}:{os.getpid()}" if hostname else worker_name()
