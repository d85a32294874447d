"""The bench's job specs and the producer-side helpers that run them and read back what they left."""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from bench.config import lm_name
from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.events import EventType, JobEvent
from btq.schemas.result import JobResult, StepRecord

STRATEGY = "p -> w -> p"
"""The three-step job of the overhead and scale sections."""

SEED = 7
P_KWARGS: dict[str, Any] = {"num_candidate_programs": 2, "max_bootstrapped_demos": 3}
"""BootstrapFewShotWithRandomSearch settings, shared by the job spec and the in-process baseline."""

NUM_THREADS = 2
JOB_TIMEOUT_S = 120.0
"""Bound on any single wait (a bench job takes seconds; the last of a 1-worker scale batch under a
minute): a job that never ends, e.g. a task raising in the worker, fails its section, not the bench."""


def three_step_job(latency_ms: int, seed: int = SEED) -> dict[str, Any]:
    """Return the `p -> w -> p` job on the demo arithmetic trainset (valset split off at ratio 0.1)."""
    return {
        "program": {"name": "demo.qa"},
        "lm": lm_name(latency_ms),
        "metric": "demo.exact_match",
        "strategy": STRATEGY,
        "optimizers": {
            "p": {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": dict(P_KWARGS)},
            "w": {"optimizer": "BootstrapFinetune", "kwargs": {}},
        },
        "trainset": {"dataset": "demo.arithmetic", "split": "train"},
        "seed": seed,
        "num_threads": NUM_THREADS,
    }


def tiny_job(seed: int) -> dict[str, Any]:
    """Return a one-step job (LabeledFewShot, valset of 2): a few LM calls, three Celery tasks."""
    return {
        "program": {"name": "demo.qa"},
        "lm": lm_name(0),
        "metric": "demo.exact_match",
        "strategy": "p",
        "optimizers": {"p": {"optimizer": "LabeledFewShot", "kwargs": {"k": 4}}},
        "trainset": {"dataset": "bench.tiny", "split": "train"},
        "valset": {"dataset": "bench.tiny", "split": "val"},
        "seed": seed,
        "num_threads": 1,
    }


TINY_JOB_EVENTS = 6
"""Events one successful tiny job emits: submitted, 2 x (step started, step succeeded), job succeeded."""


@dataclass
class DistributedRun:
    """One job run through the workers, seen from the producer."""

    job_id: str
    wall_s: float
    events: list[JobEvent]
    result: JobResult


def run_job(client: JobClient, spec: dict[str, Any], timeout_s: float = JOB_TIMEOUT_S) -> DistributedRun:
    """Submit `spec`, follow its events to the terminal one, and return the wall time and result."""
    started = time.perf_counter()
    job_id = client.submit(spec)
    events = list(client.follow(job_id, timeout_s))
    wall_s = time.perf_counter() - started
    result = client.result(job_id)
    if result is None:
        raise RuntimeError(f"job {job_id} ended without a stored result")
    return DistributedRun(job_id, wall_s, events, result)


def step_records(client: "redis.Redis", job_id: str, steps: int) -> list[StepRecord]:
    """Read the stored records of steps 0..steps (the baseline and each strategy step) from Redis."""
    raws = client.mget([keys.step_key(job_id, i) for i in range(steps + 1)])
    return [decode(StepRecord, raw) for raw in raws if raw is not None]


def wait_all(client: JobClient, job_ids: Iterable[str]) -> list[JobResult]:
    """Wait (bounded per job) for every job's result, in order."""
    return [client.wait(job_id, JOB_TIMEOUT_S) for job_id in job_ids]


def event_times(events: Iterable[JobEvent]) -> dict[tuple[EventType, int | None], float]:
    """Index a job's events by (type, step index) -> `at`, for gap arithmetic."""
    return {(e.type, e.step_index): e.at for e in events}
