"""OpenTelemetry for a worker: the tracer provider, and task spans joined into one trace per job.

Initialised in every pool process after the fork (`worker_process_init`; a provider's export thread
does not survive a fork). A job's trace id and its root span id are derived from the job id, so every step
of a job, on any worker, joins one trace without the producer knowing OpenTelemetry; `btq.finalize`
records the root `btq.job` span itself (submission to result). Tasks a task sends (evaluation shards)
carry the sender's context in their message headers (W3C `traceparent`), so a shard on another worker is
a child of the evaluation that asked for it. Spans: btq.job > btq.step > btq.evaluation > btq.shard (a task
on another worker) > btq.shard.score > btq.lm_call; attributes `btq.job_id`, `btq.step`, `btq.strategy`,
`btq.optimizer_key`, `btq.optimizer`, `btq.worker`.
"""

import contextvars
import hashlib
import os
import time
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun, worker_process_init
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from btq.schemas import keys
from btq.worker.celery.runtime import WorkerRuntime
from btq.worker.celery.span_export import JsonLinesSpanExporter
from btq.worker.core import tracing
from btq.worker.settings import WorkerSettings

_JOB_CHILDREN = {keys.TASK_STEP, keys.TASK_FINALIZE}

_forced_ids: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar("btq_forced_ids", default=None)


class JobIdGenerator(RandomIdGenerator):  # type: ignore[misc]
    """Random ids, except the ids a job's root span must have (set around its creation)."""

    def generate_span_id(self) -> int:
        """The forced span id when one is set, else a random one."""
        forced = _forced_ids.get()
        return forced.span_id if forced is not None else int(super().generate_span_id())

    def generate_trace_id(self) -> int:
        """The forced trace id when one is set, else a random one."""
        forced = _forced_ids.get()
        return forced.trace_id if forced is not None else int(super().generate_trace_id())


def job_root(job_id: str) -> SpanContext:
    """Return the root span context of a job's trace: both ids derived from the job id."""
    digest = hashlib.sha256(job_id.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _exporter(settings: WorkerSettings) -> SpanExporter:
    if settings.otel_exporter == "jsonl":
        assert settings.otel_jsonl_path is not None  # the settings refuse jsonl without a path
        return JsonLinesSpanExporter(settings.otel_jsonl_path)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class TaskTracer:
    """Task spans of one worker process, keyed by task id between prerun and postrun."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.provider: TracerProvider | None = None
        self._pid: int | None = None
        self._open: dict[str, tuple[Any, Any]] = {}

    def ensure(self) -> None:
        """Build this process's provider once (after a fork, a new one)."""
        if self._pid == os.getpid():
            return
        resource = Resource.create({"service.name": "btq-worker", "process.pid": os.getpid()})
        self.provider = TracerProvider(resource=resource, id_generator=JobIdGenerator())
        self.provider.add_span_processor(
            BatchSpanProcessor(_exporter(self.runtime.settings), schedule_delay_millis=500)
        )
        self._pid = os.getpid()
        # The global provider too: spans inside the task (evaluation, shard, LM call) use the global tracer.
        trace.set_tracer_provider(self.provider)
        tracing.enable()

    def tracer(self) -> trace.Tracer:
        """This process's tracer."""
        self.ensure()
        assert self.provider is not None
        return self.provider.get_tracer(tracing.TRACER_NAME)

    def start(self, task_id: str, task: Any, args: list[Any]) -> None:
        """Open the task's span under its sender's context (a shard) or its job's root (a step)."""
        name = getattr(task, "name", "?")
        job_id = args[0] if args and isinstance(args[0], str) else None
        carrier = {"traceparent": getattr(task.request, "traceparent", None)}
        parent = propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})
        # Steps and the finalize hang under the job's root: the previous step sends the next one (a chain),
        # and its context in the message would nest every step inside the one before.
        if job_id and (name in _JOB_CHILDREN or not trace.get_current_span(parent).get_span_context().is_valid):
            parent = trace.set_span_in_context(NonRecordingSpan(job_root(job_id)))
        attributes = {"btq.job_id": job_id, "btq.worker": getattr(task.request, "hostname", None)}
        attributes.update(self._step_attributes(name, job_id, args))
        span = self.tracer().start_span(
            name, context=parent, attributes={k: v for k, v in attributes.items() if v is not None}
        )
        ctx = trace.set_span_in_context(span, parent)
        token = otel_context.attach(ctx)
        tracing.set_task_context(ctx)
        self._open[task_id] = (span, token)

    def _step_attributes(self, name: str, job_id: str | None, args: list[Any]) -> dict[str, Any]:
        if name != keys.TASK_STEP or job_id is None or len(args) < 2 or not isinstance(args[1], int):
            return {}
        try:
            spec = self.runtime.service().store.spec(job_id)
        except Exception:  # a forged or expired job: the span just has fewer attributes
            return {"btq.step": args[1]}
        steps = spec.steps()
        index = args[1]
        key = steps[index - 1] if 0 < index <= len(steps) else None
        chosen = spec.optimizers.get(key) if key is not None else None
        return {
            "btq.step": index,
            "btq.strategy": spec.strategy,
            "btq.optimizer_key": key,
            # The class the job named; a key the job left to the fleet's defaults has none here.
            "btq.optimizer": chosen.optimizer if chosen is not None else None,
        }

    def end(self, task_id: str, task: Any, args: list[Any]) -> None:
        """Close the task's span; a finalize also records its job's root span."""
        opened = self._open.pop(task_id, None)
        if opened is None:
            return
        span, token = opened
        span.end()
        otel_context.detach(token)
        tracing.set_task_context(None)
        if getattr(task, "name", None) == keys.TASK_FINALIZE and args and isinstance(args[0], str):
            self._job_span(args[0])
        assert self.provider is not None
        self.provider.force_flush(timeout_millis=5000)

    def _job_span(self, job_id: str) -> None:
        """Record the job's root span (submission to now) with the id its steps already point at."""
        root = job_root(job_id)
        status = self.runtime.service().store.redis.hgetall(keys.job_key(job_id, "status"))
        submitted = float(status.get(b"submitted_at", time.time()))
        token = _forced_ids.set(root)
        try:  # a root span (empty context): the SDK asks the id generator for both ids
            span = self.tracer().start_span(
                "btq.job",
                context=otel_context.Context(),
                start_time=int(submitted * 1e9),
                attributes={"btq.job_id": job_id},
            )
        finally:
            _forced_ids.reset(token)
        span.end()


def connect_tracing(runtime: WorkerRuntime) -> TaskTracer | None:
    """Wire task spans and context propagation to Celery's signals when `otel_exporter` is set."""
    if runtime.settings.otel_exporter == "none":
        return None
    tracer = TaskTracer(runtime)

    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _init(**_: Any) -> None:
        tracer.ensure()

    @task_prerun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _prerun(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
        tracer.start(task_id, task, list(args or []))

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _postrun(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
        tracer.end(task_id, task, list(args or []))

    @before_task_publish.connect(weak=False)  # type: ignore[untyped-decorator]
    def _inject(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is not None and trace.get_current_span().get_span_context().is_valid:
            propagate.inject(headers)

    return tracer
