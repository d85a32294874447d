"""The dashboard's ASGI app (Starlette): four pages, a JSON API, event streams and cancel."""

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from btq.producer.client import JobClient
from btq.producer.dashboard import compare_view, job_view, pages, reader, unavailable
from btq.producer.dashboard.auth import TokenAuth
from btq.producer.dashboard.candidate_diff import program_diff
from btq.producer.dashboard.guard import RequestGuard
from btq.producer.dashboard.job_list import JobList
from btq.producer.dashboard.list_query import ListQuery, ListQueryError
from btq.producer.dashboard.settings import DashboardSettings
from btq.producer.dashboard.stream import follow_stream, parse_cursor
from btq.producer.fleet.liveness import live_workers
from btq.producer.metrics.routes import HealthRoutes
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import DecodeError, JobNotFoundError
from btq.schemas.job import JobSpec
from btq.schemas.saved_program import SavedProgram, manifest_path, saved_program

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _unknown(job_id: str) -> JSONResponse:
    return JSONResponse({"error": f"job_id: unknown job {job_id!r}"}, status_code=404)


def _step_param(params: QueryParams, name: str, problems: list[str]) -> int | None:
    raw = params.get(name)
    if raw is None or not raw.isdigit():
        problems.append(f"{name}: {raw!r} is not a candidate's step index (0 is the baseline)")
        return None
    return int(raw)


class Dashboard:
    """Request handlers over one Redis database; reads use a sync client in Starlette's thread pool."""

    def __init__(self, settings: DashboardSettings, stopping: threading.Event) -> None:
        self.settings = settings
        self.stopping = stopping
        # Bounded: a Redis that stopped answering makes a request fail (503) instead of hang.
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=15)
        producer = ProducerSettings(redis_url=settings.redis_url, queue=settings.queue, broker_url=settings.broker_url)
        self.client = JobClient(producer, self.redis)
        self.jobs = JobList(self.redis)
        self._live_names: set[str] = set()
        self._live_at = float("-inf")

    async def jobs_page(self, request: Request) -> Response:
        """The jobs list (its filters, search, sort and page come from the address, read by the script)."""
        return HTMLResponse(pages.jobs_page(self.settings.dashboard_jobs_limit))

    async def job_page(self, request: Request) -> Response:
        """One job's page; 404 (a page without a Cancel button) for a job Redis does not hold."""
        job_id = request.path_params["job_id"]
        if not await run_in_threadpool(self.redis.exists, keys.job_key(job_id, "status")):
            return HTMLResponse(pages.unknown_job_page(job_id), status_code=404)
        return HTMLResponse(pages.job_page(job_id))

    async def compare_page(self, request: Request) -> Response:
        """Several jobs side by side: `?group=` (one `btq compare`) or `?jobs=id,id,...`."""
        return HTMLResponse(pages.compare_page())

    async def workers_page(self, request: Request) -> Response:
        """The workers page."""
        return HTMLResponse(pages.workers_page())

    def warm(self) -> None:
        """Read every job into the list's index once, so the first page does not pay for it."""
        try:
            self.jobs.refresh()
        except unavailable.REDIS_AWAY as exc:  # the first request will answer 503 and try again
            logger.warning(
                "%s; the jobs index fills on the first request", unavailable.message(self.settings.redis_url, exc)
            )

    def check_broker(self) -> None:
        """Raise unless the broker accepts a connection (for `/readyz`; one attempt, bounded)."""
        with self.client.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    async def api_jobs(self, request: Request) -> Response:
        """One page of jobs and the total: `state`, `q`, `strategy`, `program`, `group`, `sort`, `order`, `page`."""
        try:
            query = ListQuery.from_params(request.query_params, self.settings.dashboard_jobs_limit)
        except ListQueryError as exc:
            return JSONResponse({"error": str(exc), "errors": exc.problems}, status_code=400)
        began = time.perf_counter()
        page = await run_in_threadpool(self.jobs.page, query)
        return JSONResponse({**page, "took_ms": round(1000 * (time.perf_counter() - began), 1)})

    async def api_job(self, request: Request) -> Response:
        """One job: status, spec, timings, steps, every ranked candidate's program, usage, held-out scores."""
        job_id = request.path_params["job_id"]
        detail = await run_in_threadpool(job_view.job_detail, self.redis, job_id)
        if detail is None:
            return _unknown(job_id)
        return JSONResponse(detail)

    async def api_diff(self, request: Request) -> Response:
        """What changed from candidate `?a=` to candidate `?b=` (step indexes) of one job."""
        job_id = request.path_params["job_id"]
        problems: list[str] = []
        a = _step_param(request.query_params, "a", problems)
        b = _step_param(request.query_params, "b", problems)
        if problems:
            return _bad_request("; ".join(problems))
        done = await run_in_threadpool(job_view.result, self.redis, job_id)
        if done is None:
            exists = await run_in_threadpool(self.redis.exists, keys.job_key(job_id, "status"))
            return _bad_request(f"job_id: job {job_id!r} has no candidates yet") if exists else _unknown(job_id)
        programs = {c.step_index: c for c in done.candidates}
        missing = [
            f"{n}: step {i} is not a candidate of this job" for n, i in (("a", a), ("b", b)) if i not in programs
        ]
        if missing or a is None or b is None:
            return _bad_request("; ".join(missing))
        old, new = programs[a], programs[b]
        return JSONResponse(
            {
                "a": {"step_index": a, "strategy": old.strategy, "score": old.score},
                "b": {"step_index": b, "strategy": new.strategy, "score": new.score},
                "predictors": program_diff(
                    job_view.program_view(old.program_state), job_view.program_view(new.program_state)
                ),
            }
        )

    def _saved(self, job_id: str, step: int) -> SavedProgram | JSONResponse:
        done = job_view.result(self.redis, job_id)
        if done is None:
            if self.redis.exists(keys.job_key(job_id, "status")):
                return _bad_request(f"job_id: job {job_id!r} has no candidates yet")
            return _unknown(job_id)
        rank = next((i for i, c in enumerate(done.candidates) if c.step_index == step), None)
        if rank is None:
            return JSONResponse({"error": f"step: step {step} is not a candidate of job {job_id!r}"}, status_code=404)
        raw = self.redis.get(keys.job_key(job_id, "spec"))
        try:
            spec = decode(JobSpec, cast(bytes, raw)) if raw is not None else None
        except DecodeError:
            spec = None
        if spec is None:  # the program to rebuild is named by the spec: without it there is no manifest
            return JSONResponse(
                {"error": f"job_id: the spec of job {job_id!r} is missing or unreadable"}, status_code=409
            )
        return saved_program(done, spec, rank=rank)

    async def api_program(self, request: Request) -> Response:
        """A candidate as a download: dspy's saved-program JSON (`program.json`) or its `manifest.json`."""
        job_id, step, part = (request.path_params[k] for k in ("job_id", "step", "part"))
        if part not in ("program", "manifest"):
            return JSONResponse({"error": f"part: {part!r} is not program or manifest"}, status_code=404)
        saved = await run_in_threadpool(self._saved, job_id, step)
        if isinstance(saved, Response):
            return saved
        stem = f"btq-{_SAFE_NAME.sub('_', job_id)[:32]}-step{step}"
        name = f"{stem}.json" if part == "program" else manifest_path(f"{stem}.json").name
        body = saved.program_json() if part == "program" else saved.manifest_json()
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type="application/json", headers=headers)

    def _comparison(self, params: QueryParams) -> JSONResponse:
        group = params.get("group") or None
        ids = [j for j in (params.get("jobs") or "").split(",") if j]
        if not group and not ids:
            return _bad_request("jobs: name the jobs to compare (?jobs=id,id,...) or a comparison (?group=...)")
        if len(ids) > compare_view.MOST_JOBS:
            return _bad_request(f"jobs: {len(ids)} jobs; one comparison shows at most {compare_view.MOST_JOBS}")
        if group:
            # Shorter strategies first, as `btq compare` lists them (it submits the longest first).
            jobs = sorted(self.jobs.in_group(group), key=compare_view.strategy_order)[: compare_view.MOST_JOBS]
            if not jobs:
                return JSONResponse({"error": f"group: no jobs in comparison {group!r}"}, status_code=404)
        else:
            known = {j["job_id"]: j for j in self.jobs.refresh() if j["job_id"] in set(ids)}
            unknown = [i for i in ids if i not in known]
            if unknown:
                return JSONResponse({"error": f"jobs: unknown job(s) {', '.join(unknown)}"}, status_code=404)
            jobs = [known[i] for i in ids]
        return JSONResponse(compare_view.comparison(self.redis, jobs, group))

    async def api_compare(self, request: Request) -> Response:
        """Validation and held-out score, wall time and spend of several jobs' final programs, side by side."""
        return await run_in_threadpool(self._comparison, request.query_params)

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
            return _unknown(job_id)
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
        except unavailable.REDIS_AWAY as exc:
            # The response has begun, so no 503 now: end the stream; the page reconnects and sees the 503.
            logger.warning("%s; closing an event stream", unavailable.message(self.settings.redis_url, exc))
        finally:
            await client.aclose()

    async def api_job_events(self, request: Request) -> Response:
        """Server-sent events of one job: replay after `Last-Event-ID` (or `?after=`), then follow."""
        job_id = request.path_params["job_id"]
        exists = await run_in_threadpool(self.redis.exists, keys.job_key(job_id, "status"))
        if not exists:
            return _unknown(job_id)
        return self._events(request, keys.job_key(job_id, "events"))

    async def api_all_events(self, request: Request) -> Response:
        """Server-sent events of every job (the global stream), same cursor rules."""
        await run_in_threadpool(self.redis.ping)  # Redis away: a 503 now, not a stream that ends at once
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
        Route("/compare", dash.compare_page),
        Route("/api/jobs", dash.api_jobs),
        Route("/api/jobs/{job_id:str}", dash.api_job),
        Route("/api/jobs/{job_id:str}/diff", dash.api_diff),
        Route("/api/jobs/{job_id:str}/candidates/{step:int}/{part:str}.json", dash.api_program),
        Route("/api/compare", dash.api_compare),
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
        # Fill the jobs index while the first page loads (one cold read per process; see job_list).
        threading.Thread(target=dash.warm, name="btq-dashboard-index", daemon=True).start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, partial(dash.redis.close))

    async def redis_away(request: Request, exc: Exception) -> Response:
        text = unavailable.message(settings.redis_url, exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": text}, status_code=503, headers={"Retry-After": "5"})
        return HTMLResponse(pages.unavailable_page(text), status_code=503, headers={"Retry-After": "5"})

    handlers = dict.fromkeys(unavailable.REDIS_AWAY, redis_away)
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers)
