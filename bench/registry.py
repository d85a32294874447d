"""What the bench's workers register (settings `imports`): simulated LMs with latency, a tiny dataset.

Workers import this module by name from `BTQ_IMPORTS`; the in-process baseline builds the same LM
through `make_lm`, so both sides talk to an identical deterministic engine.
"""

import random
from collections.abc import Callable

import dspy

from bench.config import LATENCIES_MS, lm_name
from btq.worker.artifacts.store import ArtifactStore
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.lm import simulated
from btq.worker.lm.builtin import arithmetic_splits
from btq.worker.lm.simulated import simulated_lm

TINY_DATASET = "bench.tiny"
"""A dataset small enough that a job costs a handful of LM calls (events and memory sections)."""

MODEL = "sim/arith-small"
"""The simulated model name, the same as the built-in demo's."""


EVAL_DATASET = "bench.eval"
"""Generated arithmetic: 20 training and 200 validation examples (an evaluation-bound job)."""

ONEJOB_DATASET = "bench.onejob"
"""Generated arithmetic: 100 training and 200 validation examples (the one-job scaling section's job)."""

COUNTED_LM = "bench.counted20"
"""A cached simulated LM (20 ms per call) counting the calls it answers in the worker's Redis."""

LM_CALLS_KEY = "bench:lm-calls"

STORAGE_DATASET = "bench.storage"
"""Generated arithmetic: 100 training and 200 validation examples (the storage and crash sections' job)."""

COUNTED_LM_0 = "bench.counted0"
"""The counted, cached simulated LM answering at once (0 ms): what the cache itself costs shows."""


class CountingEngine(simulated.CountingEngine):
    """The simulated engine, counting the calls it answers under `LM_CALLS_KEY` in the worker's Redis."""

    calls_key = LM_CALLS_KEY


def eval_splits(seed: int = 4242, train: int = 20) -> dict[str, list[dspy.Example]]:
    """Return `train` training and 200 validation two-operand arithmetic questions."""
    rng = random.Random(seed)
    examples = []
    for _ in range(train + 200):
        a, b, op = rng.randint(2, 99), rng.randint(2, 99), rng.choice("+-*")
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        examples.append(dspy.Example(question=f"What is {a} {op} {b}?", answer=str(answer)).with_inputs("question"))
    return {"train": examples[:train], "val": examples[train:]}


def onejob_splits() -> dict[str, list[dspy.Example]]:
    """Return 100 training and 200 validation arithmetic questions."""
    return eval_splits(seed=4343, train=100)


def feedback(
    gold: dspy.Example, pred: object, trace: object = None, pred_name: object = None, pred_trace: object = None
) -> dspy.Prediction:
    """GEPA's five-argument metric: exact match with a textual feedback."""
    score = float(str(getattr(pred, "answer", "")).strip() == str(gold.answer).strip())
    return dspy.Prediction(score=score, feedback="correct" if score else f"expected {gold.answer}")


def make_lm(latency_ms: float, artifacts: ArtifactStore) -> dspy.BaseLM:
    """Return the simulated LM sleeping `latency_ms` per call, fine-tuning into `artifacts`."""
    return simulated_lm(MODEL, task="arith", artifacts=artifacts, latency_ms=latency_ms)


def storage_splits() -> dict[str, list[dspy.Example]]:
    """Return 100 training and 200 validation two-operand arithmetic questions."""
    examples = eval_splits(seed=977)["val"] + eval_splits(seed=978)["val"]
    return {"train": examples[:100], "val": examples[100:300]}


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
    registry.dataset(EVAL_DATASET, eval_splits)
    registry.dataset(STORAGE_DATASET, storage_splits)
    registry.dataset(ONEJOB_DATASET, onejob_splits)
    registry.metric("bench.feedback", feedback)
    registry.lm(
        COUNTED_LM_0,
        lambda res: simulated_lm(
            MODEL, task="arith", artifacts=res.artifacts, latency_ms=0, cache=True, engine_class=CountingEngine
        ),
    )
    registry.lm(
        COUNTED_LM,
        lambda res: simulated_lm(
            MODEL, task="arith", artifacts=res.artifacts, latency_ms=20, cache=True, engine_class=CountingEngine
        ),
    )
