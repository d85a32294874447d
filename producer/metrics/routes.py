"""`/metrics`, `/healthz` and `/readyz` for the dashboard's app (or any Starlette app over one Redis).

`/healthz` says the process answers; `/readyz` that Redis and the broker answer (503 naming which does
not); `/metrics` is the Prometheus text format of `FleetCollector` (501 without the `metrics` extra).
"""

import importlib.util
import threading
from collections.abc import Callable

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

BrokerCheck = Callable[[], None]
"""Raises when the broker cannot be reached (bounded by its own timeout)."""


class HealthRoutes:
    """The three endpoints over one Redis client and one broker check."""

    def __init__(self, client: redis.Redis, queue: str, broker_check: BrokerCheck) -> None:
        self.redis = client
        self.queue = queue
        self.broker_check = broker_check
        self._registry: object | None = None
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        """The routes to add to an app."""
        return [Route("/metrics", self.metrics), Route("/healthz", self.healthz), Route("/readyz", self.readyz)]

    async def healthz(self, request: Request) -> Response:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Redis and the broker answer (each check bounded); 503 naming what does not."""
        failures = await run_in_threadpool(self._failures)
        if failures:
            return JSONResponse({"status": "unavailable", "failing": failures}, status_code=503)
        return JSONResponse({"status": "ok"})

    def _failures(self) -> dict[str, str]:
        failures: dict[str, str] = {}
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            failures["redis"] = f"{type(exc).__name__}: {exc}"
        try:
            self.broker_check()
        except Exception as exc:  # kombu raises many types; any of them means not ready
            failures["broker"] = f"{type(exc).__name__}: {exc}"
        return failures

    async def metrics(self, request: Request) -> Response:
        """The fleet's metrics in Prometheus' text format."""
        if importlib.util.find_spec("prometheus_client") is None:
            return PlainTextResponse(
                "metrics need the metrics extra: pip install 'bettertogether-queue[metrics]'\n", status_code=501
            )
        from prometheus_client import CONTENT_TYPE_LATEST

        body = await run_in_threadpool(self._render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def _render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        from btq.producer.metrics.collector import FleetCollector

        with self._lock:  # one scrape at a time: the event tally keeps a cursor
            if self._registry is None:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(FleetCollector(self.redis, self.queue))
                self._registry = registry
            return bytes(generate_latest(self._registry))  # type: ignore[arg-type]
