"""Bench constants: where Redis is, which database each section owns, and how much each section runs."""

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: worker subprocesses run here so `bench.registry` imports."""

RESULTS_DIR = ROOT / "bench" / "results"
"""Where the JSON figures go (git-ignored)."""

REDIS_HOST = os.environ.get("BTQ_BENCH_REDIS", "redis://127.0.0.1:6379")
"""Redis server; the database number is appended per section."""

BENCH_DBS = (10, 11, 12, 13, 14, 15)
"""The only databases the bench may use or flush: other databases belong to the test suite."""

DB_OVERHEAD, DB_SCALE, DB_EVENTS, DB_MEMORY, DB_ONEJOB, DB_CACHE = BENCH_DBS
DB_RECOVERY = DB_ONEJOB
"""Sections run one after another and flush their database before and after: recovery reuses one."""
"""One database per section, so a section's leftover workers or keys can never touch another's."""

LATENCIES_MS = (0, 20, 50)
"""LM latencies the bench workers register, one LM name each (see `lm_name`)."""

LM_DESCRIPTION = (
    "SimulatedEngine (worker/lm/simulated.py): deterministic answers, sleeps latency_ms per call, "
    "simulated fine-tuning; no model weights, no network"
)
"""Printed and stored with the figures: which LM produced them."""


def lm_name(latency_ms: int) -> str:
    """Return the registered name of the simulated LM with `latency_ms` per call."""
    return f"bench.sim{latency_ms}"


@dataclass(frozen=True)
class Plan:
    """How much each section runs; `FULL` for `make bench`, `QUICK` for a smoke run."""

    overhead_reps: int
    overhead_latencies_ms: tuple[int, ...]
    micro_calls: int
    scale_workers: tuple[int, ...]
    scale_jobs: int
    scale_reps: int
    scale_latency_ms: int
    events_jobs: int
    events_workers: int
    memory_checkpoints: tuple[int, ...]
    """Cumulative job counts after which the worker's RSS is read (all go to the JSON)."""
    memory_report: tuple[int, ...]
    """The checkpoints shown in the table."""
    onejob_workers: tuple[int, ...] = (1, 2, 4, 8, 16)
    onejob_reps: int = 2
    onejob_latency_ms: int = 20
    cache_valset: int = 60


FULL = Plan(
    overhead_reps=9,
    overhead_latencies_ms=(0, 20),
    micro_calls=300,
    scale_workers=(1, 2, 4),
    scale_jobs=12,
    scale_reps=3,
    scale_latency_ms=50,
    events_jobs=1000,
    events_workers=2,
    memory_checkpoints=(1, 10, 50, 100, 200, 300, 400, 500),
    memory_report=(1, 100, 500),
)

QUICK = Plan(
    overhead_reps=2,
    overhead_latencies_ms=(0, 20),
    micro_calls=100,
    scale_workers=(1, 2, 4),
    scale_jobs=4,
    scale_reps=1,
    scale_latency_ms=50,
    events_jobs=100,
    events_workers=2,
    memory_checkpoints=(1, 20, 50),
    memory_report=(1, 20, 50),
    onejob_workers=(1, 2, 4),
    onejob_reps=1,
    cache_valset=30,
)
