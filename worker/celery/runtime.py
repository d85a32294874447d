"""Per-process runtime: the registry, Redis client, step service and shard runner, built lazily after fork."""

import os
import threading

import redis

from btq.worker.artifacts.store import store_from_url
from btq.worker.celery.canceller import Canceller
from btq.worker.core import formatting, lm_observer
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.registry import Registry, WorkerResources, load_registry
from btq.worker.core.tally import TALLY
from btq.worker.settings import WorkerSettings
from btq.worker.sharding.evaluator import SendShards, ShardingConfig, ShardingSupport
from btq.worker.sharding.runner import ShardRunner
from btq.worker.state.events import EventEmitter, worker_name
from btq.worker.state.fleet import live_slots
from btq.worker.state.fleet_gate import FleetMetering
from btq.worker.state.lm_cache import install_cache
from btq.worker.state.metrics import redis_sink
from btq.worker.state.store import JobStore
from btq.worker.steps.finalizer import Finalizer
from btq.worker.steps.redaction import Redactor
from btq.worker.steps.service import StepService


class WorkerRuntime:
    """Holds what tasks share within one worker process; rebuilt in each forked child."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._service: StepService | None = None
        self._shards: ShardRunner | None = None
        self._registry: Registry | None = None
        self._send_shards: SendShards | None = None
        self.redactor = Redactor.from_settings(settings)

    @property
    def registry(self) -> Registry:
        """The registry, loaded once per process from the settings' `imports`."""
        if self._registry is None:
            self._registry = load_registry(self.settings.imports)
        return self._registry

    def bind_shard_sender(self, send: SendShards) -> None:
        """Give steps a way to ask the fleet for help with their evaluations (a Celery group)."""
        self._send_shards = send

    @property
    def sharding_config(self) -> ShardingConfig:
        """How evaluations are cut, from settings."""
        return ShardingConfig(
            min_examples=self.settings.shard_min_examples,
            shards_per_slot=self.settings.shards_per_slot,
            lease_ttl_s=self.settings.shard_lease_ttl_s,
            ttl_s=self.settings.job_ttl_s,
            cancel_poll_interval_s=self.settings.cancel_poll_interval_s,
        )

    def service(self, worker: str | None = None) -> StepService:
        """Return this process's step service (a fresh one after a fork)."""
        with self._lock:
            if self._service is None or self._pid != os.getpid():
                self._build(worker or worker_name())
            assert self._service is not None
            return self._service

    def sweeper_redis(self) -> redis.Redis:
        """Return a Redis client for the sweeper thread of this (main) worker process."""
        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5)

    def canceller(self, client: redis.Redis, worker: str) -> Canceller:
        """Return the canceller of this (main) worker process, on its own Redis client."""
        events = EventEmitter(
            client, self.settings.job_stream_maxlen, self.settings.global_stream_maxlen, self.redactor
        )
        store = JobStore(client, self.settings.job_ttl_s, self.redactor)
        return Canceller(client, Finalizer(store, events, self.settings, worker))

    def shard_runner(self, worker: str | None = None) -> ShardRunner:
        """Return this process's shard runner (a fresh one after a fork)."""
        self.service(worker)
        assert self._shards is not None
        return self._shards

    def _build(self, worker: str) -> None:
        client = redis.Redis.from_url(self.settings.redis_url)
        resources = WorkerResources(
            artifacts=store_from_url(self.settings.artifact_dir),
            secrets={k: v.get_secret_value() for k, v in self.settings.lm_api_keys.items()},
        )
        s = self.settings
        install_cache(
            client if s.lm_cache_enabled else None,
            s.lm_cache_ttl_s,
            s.lm_cache_max_entries,
            s.lm_cache_max_value_bytes,
            s.lm_cache_flight_ttl_s,
            worker,
        )
        # This process's counters go to Redis in batches (task end, or every few seconds while counting).
        TALLY.bind(redis_sink(client, lambda: TALLY.node))
        lm_observer.install(spans=s.otel_exporter != "none")
        formatting.install()
        sharding = None
        if s.sharding_enabled and self._send_shards is not None:
            sharding = ShardingSupport(
                config=self.sharding_config, live_slots=lambda: live_slots(client), send_shards=self._send_shards
            )
        store = JobStore(client, s.job_ttl_s, self.redactor)
        self._service = StepService(
            store=store,
            events=EventEmitter(client, s.job_stream_maxlen, s.global_stream_maxlen, self.redactor),
            registry=self.registry,
            resources=resources,
            settings=s,
            worker=worker,
            sharding=sharding,
        )

        def resolve(job_id: str) -> ResolvedJob:
            return ResolvedJob.resolve(store.spec(job_id), self.registry, resources, s)

        self._shards = ShardRunner(
            client,
            self.sharding_config,
            resolve,
            store.is_cancelled,
            worker,
            store.redact,
            metering=FleetMetering(client, s),
        )
        self._pid = os.getpid()
