"""Microbenchmarks of the per-step Redis work a worker does besides the step itself.

Each runs the real class against the real Redis on a bench database, with realistic payloads (a
step record taken from a distributed run, an event with the fields a step's outcome event carries).
"""

import time
import uuid
from collections.abc import Callable

import redis

from bench.stats import Summary, summarize
from btq.schemas.events import EventType
from btq.schemas.result import StepRecord
from btq.worker.settings import WorkerSettings
from btq.worker.state.events import EventEmitter
from btq.worker.state.store import JobStore

WARMUP_CALLS = 20
"""Untimed calls first: connection setup and pydantic's first-use costs are not per-step costs."""


def time_calls(call: Callable[[int], object], calls: int) -> Summary:
    """Time `calls` invocations of `call(i)` one by one; return the per-call summary in milliseconds."""
    for i in range(WARMUP_CALLS):
        call(-1 - i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return summarize(samples)


def bench_put_step(client: "redis.Redis", record: StepRecord, calls: int) -> Summary:
    """Time `JobStore.put_step` storing `record` (a fresh job id per call, so every SET NX wins)."""
    settings = WorkerSettings()
    store = JobStore(client, settings.job_ttl_s)
    prefix = f"bench-micro-{uuid.uuid4().hex[:8]}"
    return time_calls(lambda i: store.put_step(f"{prefix}-{i}", record), calls)


def bench_reads(client: "redis.Redis", job_id: str, index: int, calls: int) -> Summary:
    """Time the Redis round trips a step starts with: spec, own and previous record, attempt, cancel flag."""
    settings = WorkerSettings()
    store = JobStore(client, settings.job_ttl_s)

    def reads(_: int) -> None:
        store.spec(job_id)
        store.step(job_id, index)
        store.step(job_id, index - 1)
        store.claim_attempt(f"{job_id}-micro", index)  # a throwaway counter: the real job stays intact
        store.is_cancelled(job_id)

    return time_calls(reads, calls)


def bench_emit(client: "redis.Redis", calls: int) -> Summary:
    """Time `EventEmitter.emit` of a step-succeeded event (two XADDs in one pipeline)."""
    settings = WorkerSettings()
    emitter = EventEmitter(client, settings.job_stream_maxlen, settings.global_stream_maxlen)
    job_id = f"bench-micro-{uuid.uuid4().hex}"
    detail = {"outcome": "succeeded", "load_s": 0.004, "optimize_s": 0.3, "evaluate_s": 0.05}

    def emit(_: int) -> None:
        emitter.emit(
            EventType.STEP_SUCCEEDED,
            job_id,
            3,
            step_index=2,
            strategy="p -> w",
            optimizer_key="w",
            score=95.0,
            duration_s=0.4,
            worker="bench@host:1234",
            attempt=1,
            detail=detail,
        )

    return time_calls(emit, calls)
