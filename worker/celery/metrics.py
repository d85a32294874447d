"""A worker's side of the metrics: counters flushed at every task's end, and an optional `/metrics` endpoint.

Prefork: each pool process counts in memory and adds its counts to Redis (`worker/state/metrics.py`); the
main process serves `/metrics` (BTQ_METRICS_PORT) from those Redis counters. So the endpoint needs no
prometheus-client multiprocess mode (a shared directory of mmap files, set before the first import and
cleaned when children die) and a restarted pool child loses nothing. Fleet-wide numbers are on the
dashboard's `/metrics`; a worker's own endpoint says what this worker did and whether it is up.
"""

import logging
from typing import Any

import redis
from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from btq.schemas import keys
from btq.schemas.metrics import COUNT_HELP, parse_counts
from btq.worker.celery.runtime import WorkerRuntime
from btq.worker.core.tally import TALLY

log = logging.getLogger(__name__)


def connect_metrics(app: Celery, runtime: WorkerRuntime) -> None:
    """Flush counters when tasks end; serve `/metrics` from the main process when `metrics_port` is set."""

    @task_prerun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _node(task: Any = None, **_: Any) -> None:
        TALLY.node = getattr(getattr(task, "request", None), "hostname", None) or TALLY.node

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _flush(**_: Any) -> None:
        TALLY.flush()

    stops: list[Any] = []

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _serve(sender: Any = None, **_: Any) -> None:
        port = runtime.settings.metrics_port
        if port is None:
            return
        node = getattr(sender, "hostname", None) or "worker"
        pool_size = int(getattr(getattr(sender, "controller", None), "concurrency", None) or 1)
        try:
            stops.append(serve_worker_metrics(runtime, node, pool_size, port))
        except ImportError:  # the worker runs without its endpoint rather than not at all
            log.error("BTQ_METRICS_PORT needs the metrics extra: pip install 'bettertogether-queue[metrics]'")
        except OSError as exc:
            log.error("worker metrics: cannot listen on %s:%s: %s", runtime.settings.metrics_host, port, exc)

    @worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _stop(**_: Any) -> None:
        for stop in stops:
            stop()


def serve_worker_metrics(runtime: WorkerRuntime, node: str, pool_size: int, port: int) -> Any:
    """Start the worker's `/metrics` server in a thread; return its stop function."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    client = redis.Redis.from_url(runtime.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)

    class WorkerCollector(Collector):  # type: ignore[misc]
        """This worker's counters (all its pool processes) and pool size, read from Redis per scrape."""

        def collect(self) -> Any:
            slots = GaugeMetricFamily("btq_worker_pool_slots", "Processes in this worker's pool")
            slots.add_metric([], pool_size)
            yield slots
            try:
                counts = parse_counts(client.hgetall(keys.worker_key(node, "metrics")))  # type: ignore[arg-type]
            except redis.RedisError as exc:
                log.warning("worker metrics: Redis unreachable: %r", exc)
                counts = {}
            up = GaugeMetricFamily("btq_worker_redis_up", "1 when this worker's Redis answered the scrape")
            up.add_metric([], 0 if not counts and not _pings(client) else 1)
            yield up
            for name, text in COUNT_HELP.items():
                family = CounterMetricFamily(f"btq_worker_{name.value}", f"{text} (this worker)")
                family.add_metric([], counts.get(name, 0.0))
                yield family

    registry = CollectorRegistry()
    registry.register(WorkerCollector())
    server, thread = start_http_server(port, addr=runtime.settings.metrics_host, registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", runtime.settings.metrics_host, server.server_port)

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)

    return stop


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
