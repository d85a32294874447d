"""What the bench's workers register (settings `imports`): simulated LMs with latency, a tiny dataset.

Workers import this module by name from `BTQ_IMPORTS`; the in-process baseline builds the same LM
through `make_lm`, so both sides talk to an identical deterministic engine.
"""

from collections.abc import Callable

import dspy

from bench.config import LATENCIES_MS, lm_name
from worker.artifacts import ArtifactStore
from worker.builtin import arithmetic_splits
from worker.registry import Registry, WorkerResources
from worker.simulated import simulated_lm

TINY_DATASET = "bench.tiny"
"""A dataset small enough that a job costs a handful of LM calls (events and memory sections)."""

MODEL = "sim/arith-small"
"""The simulated model name, the same as the built-in demo's."""


def make_lm(latency_ms: float, artifacts: ArtifactStore) -> dspy.BaseLM:
    """Return the simulated LM sleeping `latency_ms` per call, fine-tuning into `artifacts`."""
    return simulated_lm(MODEL, task="arith", artifacts=artifacts, latency_ms=latency_ms)


def tiny_splits() -> dict[str, list[dspy.Example]]:
    """Return 8 training and 2 validation examples taken from the demo's arithmetic task."""
    splits = arithmetic_splits()
    return {"train": splits["train"][:8], "val": splits["val"][:2]}


def _lm_factory(latency_ms: int) -> Callable[[WorkerResources], dspy.BaseLM]:
    # A closure per latency: the registry calls factories with the worker's resources only.
    def factory(resources: WorkerResources) -> dspy.BaseLM:
        return make_lm(latency_ms, resources.artifacts)

    return factory


def register(registry: Registry) -> None:
    """Register one simulated LM per bench latency and the tiny dataset."""
    for latency_ms in LATENCIES_MS:
        registry.lm(lm_name(latency_ms), _lm_factory(latency_ms))
    registry.dataset(TINY_DATASET, tiny_splits)
