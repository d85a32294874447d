"""The Celery app, built from settings: JSON only, late acks, capped redelivery, prefetch 1."""

from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_ready, worker_shutdown
from dspy.clients.base_lm import GLOBAL_HISTORY

from schemas import keys
from worker import sweeper
from worker.events import worker_name
from worker.guards import MessageGuard, drop
from worker.redrive import redriver
from worker.runtime import WorkerRuntime
from worker.settings import WorkerSettings


def create_app(settings: WorkerSettings) -> Celery:
    """Return a Celery app whose tasks run BetterTogether steps for jobs in `settings.redis_url`."""
    app = Celery("btq", broker=settings.redis_url, set_as_current=False)
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
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu sweeps every interval x throttle seconds (100 s by default); scan on every sweep
            # so a dead worker's step comes back visibility_timeout_s + unacked_restore_interval_s later.
            "unacked_restore_interval": settings.unacked_restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    runtime = WorkerRuntime(settings)
    _register_tasks(app, runtime)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _publish(sender: Any = None, **_: Any) -> None:
        name = getattr(sender, "hostname", None) or worker_name()
        runtime.publish_manifest(name)
        # Recovery of steps whose worker died, driven by step leases (see worker/sweeper.py).
        lost_steps = sweeper.Sweeper(
            runtime.sweeper_redis(),
            settings,
            redriver(app, settings.queue),
            name,
            publish_manifest=lambda: runtime.publish_manifest(name),
        )
        stops.append(sweeper.start(lost_steps, settings.sweep_interval_s))

    stops: list[Any] = []

    @worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _stop_sweeper(**_: Any) -> None:
        for stop in stops:
            stop.set()

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
        service = runtime.service(_worker(self))
        guard = MessageGuard(service.store)
        reason = guard.step(job_id, index)
        if reason is not None:
            self.request.chain = None  # a dropped message continues no chain
            return drop(keys.TASK_STEP, (job_id, index), reason)
        record = service.run(job_id, index)
        if guard.chain_moved_on(job_id, index):
            self.request.chain = None  # a duplicate delivery: the rest of the chain is already on its way
        return {"job_id": job_id, "index": index, "outcome": record.outcome.value}

    @app.task(name=keys.TASK_FINALIZE, bind=True)  # type: ignore[untyped-decorator]
    def finalize(self: Any, job_id: str) -> dict[str, Any]:
        service = runtime.service(_worker(self))
        reason = MessageGuard(service.store).finalize(job_id)
        if reason is not None:
            if isinstance(job_id, str) and service.store.has_spec(job_id) and service.store.has_result(job_id):
                service.emit_stored_result(job_id)  # a finalize that died between result and event
            return drop(keys.TASK_FINALIZE, (job_id,), reason)
        result = service.finalize(job_id)
        return {"job_id": job_id, "state": result.state.value}

    @app.task(name=keys.TASK_EVALUATE, bind=True)  # type: ignore[untyped-decorator]
    def evaluate(self: Any, job_id: str, request_id: str, dataset: str, split: str) -> dict[str, Any]:
        report = runtime.service(_worker(self)).evaluate(job_id, request_id, dataset, split)
        return {"job_id": job_id, "ok": report.error is None}


def _worker(task: Any) -> str:
    import os

    hostname = getattr(task.request, "hostname", None)
    return f"{hostname}:{os.getpid()}" if hostname else worker_name()
