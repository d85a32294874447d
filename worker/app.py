"""The Celery app, built from settings: JSON only, late acks, capped redelivery, prefetch 1."""

from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_ready
from dspy.clients.base_lm import GLOBAL_HISTORY

from schemas import keys
from worker.broker import broker_conf
from worker.events import worker_name
from worker.redaction import install_log_redaction
from worker.runtime import WorkerRuntime
from worker.settings import WorkerSettings


def create_app(settings: WorkerSettings) -> Celery:
    """Return a Celery app whose tasks run BetterTogether steps for jobs in `settings.redis_url`.

    Task messages come from `settings.broker_url` (Redis or RabbitMQ; the Redis URL when unset).
    """
    app = Celery("btq", set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        result_accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.step_soft_time_limit_s,
        task_time_limit=settings.step_time_limit_s,
        # Our consumer (and, on Redis, our transport) dead-letter unreadable messages instead of dying on them.
        worker_consumer="worker.consumer:PoisonProofConsumer",
        **broker_conf(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    runtime = WorkerRuntime(settings)
    install_log_redaction(runtime.redactor)  # before any pool process forks: children inherit it
    _register_tasks(app, runtime)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _publish(sender: Any = None, **_: Any) -> None:
        runtime.publish_manifest(getattr(sender, "hostname", None) or worker_name())

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _forget_history(**_: Any) -> None:
        # dspy keeps every LM call in a process-wide history (10,000 entries, prompts included): a
        # long-lived worker would grow by tens of kB per job for a debugging aid nobody reads here.
        GLOBAL_HISTORY.clear()

    app.btq_runtime = runtime  # type: ignore[attr-defined]
    return app


def _register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """Thin adapters: parse the message, call the step service, return nothing large."""

    @app.task(name=keys.TASK_STEP, bind=True)  # type: ignore[untyped-decorator]
    def step(self: Any, job_id: str, index: int) -> dict[str, Any]:
        record = runtime.service(_worker(self)).run(job_id, index)
        return {"job_id": job_id, "index": index, "outcome": record.outcome.value}

    @app.task(name=keys.TASK_FINALIZE, bind=True)  # type: ignore[untyped-decorator]
    def finalize(self: Any, job_id: str) -> dict[str, Any]:
        result = runtime.service(_worker(self)).finalize(job_id)
        return {"job_id": job_id, "state": result.state.value}

    @app.task(name=keys.TASK_EVALUATE, bind=True)  # type: ignore[untyped-decorator]
    def evaluate(self: Any, job_id: str, request_id: str, dataset: str, split: str) -> dict[str, Any]:
        report = runtime.service(_worker(self)).evaluate(job_id, request_id, dataset, split)
        return {"job_id": job_id, "ok": report.error is None}


def _worker(task: Any) -> str:
    import os

    hostname = getattr(task.request, "hostname", None)
    return f"{hostname}:{os.getpid()}" if hostname else worker_name()
