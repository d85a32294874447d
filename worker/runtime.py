"""Per-process runtime: the registry, Redis client and step service, built lazily after fork."""

import os
import threading

import redis

from schemas import keys
from worker.artifacts import store_from_url
from worker.events import EventEmitter, worker_name
from worker.registry import Registry, WorkerResources, load_registry
from worker.service import StepService
from worker.settings import WorkerSettings
from worker.store import JobStore


class WorkerRuntime:
    """Holds what tasks share within one worker process; rebuilt in each forked child."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._service: StepService | None = None
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        """The registry, loaded once per process from the settings' `imports`."""
        if self._registry is None:
            self._registry = load_registry(self.settings.imports)
        return self._registry

    def service(self, worker: str | None = None) -> StepService:
        """Return this process's step service (a fresh one after a fork)."""
        with self._lock:
            if self._service is None or self._pid != os.getpid():
                client = redis.Redis.from_url(self.settings.redis_url)
                resources = WorkerResources(
                    artifacts=store_from_url(self.settings.artifact_dir),
                    secrets={k: v.get_secret_value() for k, v in self.settings.lm_api_keys.items()},
                )
                self._service = StepService(
                    store=JobStore(client, self.settings.job_ttl_s),
                    events=EventEmitter(client, self.settings.job_stream_maxlen, self.settings.global_stream_maxlen),
                    registry=self.registry,
                    resources=resources,
                    settings=self.settings,
                    worker=worker or worker_name(),
                )
                self._pid = os.getpid()
            return self._service

    def sweeper_redis(self) -> redis.Redis:
        """Return a Redis client for the sweeper thread of this (main) worker process."""
        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5)

    def publish_manifest(self, worker: str) -> None:
        """Publish what this worker can run, for producers to validate jobs against."""
        client = redis.Redis.from_url(self.settings.redis_url)
        client.set(keys.MANIFEST, self.registry.manifest(worker).model_dump_json())
        client.close()
