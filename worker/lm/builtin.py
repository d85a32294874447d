"""The embedded default: a small arithmetic task on the simulated LM, always registered as `demo.*`.

It lets `btq demo` and a fresh fleet run a real BetterTogether optimization with no model download
and no API key; user registries (settings `imports`) add their own entries beside it.
"""

import random
from typing import Any

import dspy

from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.lm.simulated import simulated_lm


def arithmetic_splits(seed: int = 20261124) -> dict[str, list[dspy.Example]]:
    """Return train/val/test splits of two-operand arithmetic questions (generated, deterministic)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(90):
        a, b, op = rng.randint(2, 99), rng.randint(2, 99), rng.choice("+-*")
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        examples.append(dspy.Example(question=f"What is {a} {op} {b}?", answer=str(answer)).with_inputs("question"))
    return {"train": examples[:50], "val": examples[50:70], "test": examples[70:]}


def exact_match(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """True when the predicted answer equals the expected one (whitespace ignored)."""
    return str(getattr(prediction, "answer", "")).strip() == str(example.answer).strip()


def register(registry: Registry) -> None:
    """Register the demo program, metric, LM and dataset."""
    registry.program("demo.qa", lambda: dspy.Predict("question -> answer"))
    registry.metric("demo.exact_match", exact_match)
    registry.dataset("demo.arithmetic", arithmetic_splits)

    def lm_factory(resources: WorkerResources) -> dspy.BaseLM:
        return simulated_lm("sim/arith-small", task="arith", artifacts=resources.artifacts)

    registry.lm("demo.sim", lm_factory)
