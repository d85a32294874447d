"""The dashboard's ASGI app (Starlette): three pages, a JSON API, event streams and cancel."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from btq.producer.client import JobClient
from btq.producer.dashboard import pages, reader
from btq.producer.dashboard.auth import TokenAuth
from btq.producer.dashboard.guard import RequestGuard
from btq.producer.dashboard.job_list import JobList
from btq.producer.dashboard.settings import DashboardSettings
from btq.producer.dashboard.stream import follow_stream, parse_cursor
from btq.producer.fleet.liveness import live_workers
from btq.producer.metrics.routes import HealthRoutes
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.exceptions import JobNotFoundError


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


class Dashboard:
    """Request handlers over one Redis database; reads use a sync client in Starlette's thread pool."""

    def __init__(self, settings: DashboardSettings, stopping: threading.Event) -> None:
        self.settings = settings
        self.stopping = stopping
        self.redis = redis.Redis.from_url(settings.redis_url)
        producer = ProducerSettings(redis_url=settings.redis_url, queue=settings.queue, broker_url=settings.broker_url)
        self.client = JobClient(producer, self.redis)
        self.jobs = JobList(self.redis)
        self._live_names: set[str] = set()
        self._live_at = float("-inf")

    async def jobs_page(self, request: Request) -> Response:
        """The jobs list."""
        return HTMLResponse(pages.jobs_page())

    async def job_page(self, request: Request) -> Response:
        """One job's page; 404 (a page without a Cancel button) for a job Redis does not hold."""
        job_id = request.path_params["job_id"]
        if not await run_in_threadpool(self.redis.exists, keys.job_key(job_id, "status")):
            return HTMLResponse(pages.unknown_job_page(job_id), status_code=404)
        return HTMLResponse(pages.job_page(job_id))

    async def workers_page(self, request: Request) -> Response:
        """The workers page."""
        return HTMLResponse(pages.workers_page())

    def check_broker(self) -> None:
        """Raise unless the broker accepts a connection (for `/readyz`; one attempt, bounded)."""
        with self.client.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    async def api_jobs(self, request: Request) -> Response:
        """Jobs newest first; `?state=` filters."""
        state = request.query_params.get("state") or None
        try:
            rows = await run_in_threadpool(self.jobs.rows, state, self.settings.dashboard_jobs_limit)
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse(rows)

    async def api_job(self, request: Request) -> Response:
        """One job's status, steps, ranked candidates and best program."""
        job_id = request.path_params["job_id"]
        detail = await run_in_threadpool(reader.job_detail, self.redis, job_id)
        if detail is None:
            return JSONResponse({"error": f"job_id: unknown job {job_id!r}"}, status_code=404)
        return JSONResponse(detail)

    def _live(self) -> set[str]:
        # A remote-control ping takes up to its timeout: answer page polls from a short-lived cache.
        now = time.monotonic()
        if now - self._live_at > self.settings.dashboard_ping_cache_s:
            self._live_names = set(live_workers(self.client.celery, self.settings.queue, timeout_s=1.0))
            self._live_at = now
        return self._live_names

    def _workers(self) -> list[dict[str, Any]]:
        return reader.list_workers(self.redis, self.settings.dashboard_worker_events_scan, live=self._live())

    async def api_workers(self, request: Request) -> Response:
        """Known workers (live ones answer a ping), what each registered and what each runs."""
        return JSONResponse(await run_in_threadpool(self._workers))

    async def api_cancel(self, request: Request) -> Response:
        """Request cancellation (the token middleware already refused unauthenticated callers)."""
        job_id = request.path_params["job_id"]
        try:
            accepted = await run_in_threadpool(self.client.cancel, job_id)
        except JobNotFoundError:
            return JSONResponse({"error": f"job_id: unknown job {job_id!r}"}, status_code=404)
        message = "cancel requested" if accepted else "job already ended"
        return JSONResponse({"cancelled": accepted, "message": message}, status_code=202 if accepted else 409)

    def _events(self, request: Request, stream: str) -> Response:
        # A reconnecting EventSource sends the last id it saw; it wins over the page's `?after=`.
        try:
            after = parse_cursor(request.headers.get("last-event-id") or request.query_params.get("after"))
        except ValueError as exc:
            return _bad_request(str(exc))
        body = self._follow(request, stream, after)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def _follow(self, request: Request, stream: str, after: str) -> AsyncIterator[str]:
        client = aioredis.Redis.from_url(self.settings.redis_url)

        async def done() -> bool:
            return self.stopping.is_set() or await request.is_disconnected()

        try:
            async for message in follow_stream(client, stream, after, self.settings.dashboard_heartbeat_s, done):
                yield message
        finally:
            await client.aclose()

    async def api_job_events(self, request: Request) -> Response:
        """Server-sent events of one job: replay after `Last-Event-ID` (or `?after=`), then follow."""
        job_id = request.path_params["job_id"]
        exists = await run_in_threadpool(self.redis.exists, keys.job_key(job_id, "status"))
        if not exists:
            return JSONResponse({"error": f"job_id: unknown job {job_id!r}"}, status_code=404)
        return self._events(request, keys.job_key(job_id, "events"))

    async def api_all_events(self, request: Request) -> Response:
        """Server-sent events of every job (the global stream), same cursor rules."""
        return self._events(request, keys.GLOBAL_EVENTS)


def create_app(settings: DashboardSettings, stopping: threading.Event | None = None) -> Starlette:
    """Return the dashboard app; with `dashboard_token` set, every request needs the token.

    Setting `stopping` ends the open event streams (within a second), so a server shuts down cleanly.
    """
    dash = Dashboard(settings, stopping or threading.Event())
    routes = [
        Route("/", dash.jobs_page),
        Route("/jobs/{job_id:str}", dash.job_page),
        Route("/workers", dash.workers_page),
        Route("/api/jobs", dash.api_jobs),
        Route("/api/jobs/{job_id:str}", dash.api_job),
        Route("/api/jobs/{job_id:str}/events", dash.api_job_events),
        Route("/api/jobs/{job_id:str}/cancel", dash.api_cancel, methods=["POST"]),
        Route("/api/events", dash.api_all_events),
        Route("/api/workers", dash.api_workers),
        *HealthRoutes(dash.redis, settings.queue, dash.check_broker).routes(),
    ]
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    guard = Middleware(
        RequestGuard,
        bind_host=settings.dashboard_host,
        port=settings.dashboard_port,
        allowed_hosts=settings.dashboard_allowed_hosts,
        token=token,
    )
    # The guard runs first: a foreign Host or a cross-site POST is refused before the token is even looked at.
    middleware = [guard, Middleware(TokenAuth, token=token)] if token else [guard]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(None, partial(dash.redis.close))

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
