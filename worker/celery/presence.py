"""A worker's presence in Redis: its own manifest with a heartbeat, its profile queue, what it runs.

At start (before it consumes anything) a worker loads its registry: a registry module that fails to
import stops the worker with a non-zero exit and the import error, instead of a worker that takes
steps it cannot run. It then also consumes the queue of its registry profile, where producers route
the jobs it can run. Once ready it publishes its one heartbeat record (manifest, pool size, expiry;
`btq.worker.state.fleet`) and renews it from a heartbeat thread, so a dead worker's record lapses:
producers stop routing to it and shard sizing stops counting its pool.
"""

import json
import logging
import os
import sys
import threading
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import celeryd_after_setup, task_postrun, task_prerun, worker_ready, worker_shutdown

from btq.schemas import keys
from btq.schemas.manifest import RegistryManifest
from btq.schemas.queues import task_queue
from btq.worker.celery.artifact_check import warn_if_unshared
from btq.worker.celery.runtime import WorkerRuntime
from btq.worker.state import fleet

log = logging.getLogger(__name__)

EXIT_REGISTRY_FAILED = 3
"""Exit status of a worker whose registry modules cannot be loaded."""


class Presence:
    """Publishes one worker's manifest and heartbeat (main process) and its running tasks (pool)."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.name = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._manifest: RegistryManifest | None = None
        self.pool_size = 0
        self._task_client: redis.Redis | None = None
        self._task_client_pid = 0

    def load_registry(self) -> str:
        """Load the registry now, in the main process; return the worker's profile queue."""
        # Building the manifest instantiates every program and loads every dataset: done once here.
        self._manifest = self.runtime.registry.manifest("")
        return keys.profile_queue(self.settings.queue, self._manifest.profile())

    def start(self, name: str, pool_size: int) -> None:
        """Publish the heartbeat record and keep renewing it until `stop`."""
        self.name = name
        self.pool_size = pool_size
        self._beat()
        self._thread = threading.Thread(target=self._run, name="btq-heartbeat", daemon=True)
        self._thread.start()
        client = self._client()
        try:
            warn_if_unshared(client, name, self.settings.artifact_dir)
        except redis.RedisError as exc:  # a hint only: never keep a worker from starting
            log.debug("artifact dir check skipped: %r", exc)
        finally:
            client.close()

    def stop(self) -> None:
        """Withdraw the record (a stopped worker takes no more jobs and no longer counts for sharding)."""
        self._stop.set()
        if not self.name:
            return
        client = self._client()
        try:
            fleet.withdraw(client, self.name)
        finally:
            client.close()

    def _run(self) -> None:
        # At least three beats per record lifetime: one missed beat never lets a live worker lapse.
        interval_s = min(self.settings.heartbeat_interval_s, self.settings.worker_manifest_ttl_s / 3)
        while not self._stop.wait(interval_s):
            try:
                self._beat()
            except Exception as exc:  # the next beat retries; the manifest outlives one miss
                log.warning("heartbeat failed: %r", exc)

    def _beat(self) -> None:
        if self._manifest is None:
            self._manifest = self.runtime.registry.manifest("")
        record = self._manifest.model_copy(update={"worker": self.name, "pool_size": self.pool_size})
        client = self._client()
        try:
            fleet.publish(client, record, self.settings.worker_manifest_ttl_s)
        finally:
            client.close()

    def task_started(self, worker: str, task_id: str, task: str, args: list[Any]) -> None:
        """Record that `worker` runs `task_id` (called in the pool process running it): one round trip."""
        detail = {"task": task, "args": args, "since": time.time()}
        pipe = self._pool_client().pipeline(transaction=False)
        pipe.hset(keys.worker_key(worker, "running"), task_id, json.dumps(detail))
        pipe.pexpire(keys.worker_key(worker, "running"), int(self.settings.worker_manifest_ttl_s * 1000))
        pipe.execute()

    def task_ended(self, worker: str, task_id: str) -> None:
        """Forget a finished task."""
        self._pool_client().hdel(keys.worker_key(worker, "running"), task_id)

    def _pool_client(self) -> redis.Redis:
        # One client per pool process, made after the fork and kept: a connection per task would cost a
        # connect, HELLO and SELECT twice for every shard task.
        if self._task_client is None or self._task_client_pid != os.getpid():
            self._task_client = self._client()
            self._task_client_pid = os.getpid()
        return self._task_client

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)


def connect_presence(app: Celery, runtime: WorkerRuntime) -> Presence:
    """Wire a worker's presence to Celery's start, ready, task and shutdown signals."""
    presence = Presence(runtime)

    @celeryd_after_setup.connect(weak=False)  # type: ignore[untyped-decorator]
    def _setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        try:
            queue = presence.load_registry()
        except BaseException as exc:  # an import error in a user module: refuse to start
            log.critical(
                "cannot load the registry (settings.imports=%s): %r", runtime.settings.imports, exc, exc_info=exc
            )
            print(f"btq worker: cannot load the registry: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            sys.exit(EXIT_REGISTRY_FAILED)
        # Declared like a producer's missing queue (exchange and routing key named after it), so
        # messages a producer routes to it land here whichever side declares it first.
        # Its evaluation queue too: shards of a job go to workers of the job's profile (see app.send_shards).
        settings = runtime.settings
        for name in (queue, keys.eval_queue(queue)):
            declared = task_queue(name, settings.broker_url or settings.redis_url, settings.broker_consumer_timeout_s)
            instance.app.amqp.queues.select_add(declared)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _ready(sender: Any = None, **_: Any) -> None:
        pool_size = int(getattr(getattr(sender, "controller", None), "concurrency", None) or 1)
        presence.start(getattr(sender, "hostname", None) or "worker", pool_size)

    @worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _shutdown(**_: Any) -> None:
        presence.stop()

    @task_prerun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _started(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
        hostname = getattr(getattr(task, "request", None), "hostname", None)
        if hostname:
            presence.task_started(hostname, task_id, getattr(task, "name", "?"), list(args or []))

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _ended(task_id: str = "", task: Any = None, **_: Any) -> None:
        hostname = getattr(getattr(task, "request", None), "hostname", None)
        if hostname:
            presence.task_ended(hostname, task_id)

    return presence


def job_queue(client: redis.Redis, job_id: str, default: str) -> str:
    """Return the queue a job's tasks go to (its registry profile's, recorded at submission).

    For tasks a worker sends on a job's behalf (e.g. evaluation shards): they reach only workers able
    to run the job. `default` is returned for jobs submitted before the queue was recorded.
    """
    queue = client.hget(keys.job_key(job_id, "status"), "queue")
    return queue.decode() if isinstance(queue, bytes) else default
