"""The registry the test workers import (settings `imports`), as a user's module would be."""

import os
import random
from typing import Any

import dspy
import redis
from dspy.clients.provider import Provider
from dspy.teleprompt.teleprompt import Teleprompter

from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.lm import simulated
from btq.worker.lm.simulated import simulated_lm

LM_CALLS_KEY = "btq-test:lm-calls"
LM_CALLS_BY_PID_KEY = "btq-test:lm-calls-by-pid"
"""Hash: worker process id -> LM calls answered there (`t.counted_pids`), to see which process made calls."""
"""Counter of calls the `t.counted` LM answered, in the worker's Redis database."""


class TwoStep(dspy.Module):
    """A two-predictor program: a draft, then a checked answer."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, draft -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        draft = self.draft(question=question).answer
        return self.check(question=question, draft=draft)


class FailingOptimizer(Teleprompter):
    """An optimizer that always raises: injects a failure at a chosen strategy step."""

    def __init__(self, message: str = "injected failure") -> None:
        self.message = message

    def compile(self, student: dspy.Module, *, trainset: list[dspy.Example], **_: Any) -> dspy.Module:
        raise RuntimeError(self.message)


def splits(seed: int = 11, size: int = 40) -> dict[str, list[dspy.Example]]:
    """Arithmetic examples: train / val / test."""
    rng = random.Random(seed)
    examples = []
    for _ in range(size + 20):
        a, b, op = rng.randint(2, 60), rng.randint(2, 60), rng.choice("+-*")
        value = a + b if op == "+" else a - b if op == "-" else a * b
        examples.append(dspy.Example(question=f"What is {a} {op} {b}?", answer=str(value)).with_inputs("question"))
    return {"train": examples[:size], "val": examples[size : size + 10], "test": examples[size + 10 :]}


def exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Exact answer match."""
    return str(getattr(prediction, "answer", "")).strip() == str(example.answer).strip()


class CountingEngine(simulated.CountingEngine):
    """The simulated engine, counting the calls it answers under `LM_CALLS_KEY` in the worker's Redis."""

    calls_key = LM_CALLS_KEY


class PidCountingEngine(simulated.SimulatedEngine):
    """The simulated engine, counting each answered call under its worker process id in the worker's Redis."""

    def complete(self, request: Any) -> Any:
        """Answer like the simulated engine, then count the call (an interrupted call is not counted)."""
        response = super().complete(request)
        url = os.environ.get("BTQ_REDIS_URL")
        if url:
            redis.Redis.from_url(url).hincrby(LM_CALLS_BY_PID_KEY, str(os.getpid()), 1)
        return response


def flaky(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Exact match that raises on answers ending in 3: a metric with deterministic errors."""
    if str(example.answer).endswith("3"):
        raise ValueError(f"flaky metric refuses {example.answer}")
    return exact(example, prediction, trace)


def feedback(
    gold: dspy.Example, pred: Any, trace: Any = None, pred_name: str | None = None, pred_trace: Any = None
) -> dspy.Prediction:
    """GEPA's five-argument metric: the exact-match score with a textual feedback."""
    score = float(exact(gold, pred, trace))
    return dspy.Prediction(score=score, feedback="correct" if score else f"expected {gold.answer}")


METRICS = {"t.exact": exact, "t.flaky": flaky, "t.feedback": feedback}


def lm_for(name: str, resources: WorkerResources | None = None) -> dspy.BaseLM:
    """Build one of the test LMs (the in-process reference calls this too)."""
    artifacts = resources.artifacts if resources else None
    if name == "t.sim":
        return simulated_lm("sim/t-small", task="arith", artifacts=artifacts)
    if name == "t.sim_slow":
        return simulated_lm("sim/t-small", task="arith", artifacts=artifacts, latency_ms=25)
    if name == "t.sim_slower":
        return simulated_lm("sim/t-small", task="arith", artifacts=artifacts, latency_ms=120)
    if name == "t.counted":
        return simulated_lm("sim/t-counted", task="arith", artifacts=artifacts, cache=True, engine_class=CountingEngine)
    if name == "t.counted_slow":  # calls long enough for two workers to make the same one at the same time
        return simulated_lm(
            "sim/t-counted", task="arith", artifacts=artifacts, cache=True, engine_class=CountingEngine, latency_ms=30
        )
    if name == "t.counted_pids":  # calls of 40 ms, counted per worker process
        return simulated_lm(
            "sim/t-small", task="arith", artifacts=artifacts, latency_ms=40, engine_class=PidCountingEngine
        )
    if name == "t.sim_crawl":  # an optimizer compile of minutes, for cancel tests
        return simulated_lm("sim/t-small", task="arith", artifacts=artifacts, latency_ms=300)
    if name == "t.sim_longft":  # a fine-tune of ten minutes, for cancel tests
        return simulated_lm("sim/t-small", task="arith", artifacts=artifacts, finetune_s=600)
    if name == "t.sim_fixed":
        lm = simulated_lm("sim/t-fixed", task="arith", finetunable=False)
        assert isinstance(lm.provider, Provider)
        return lm
    raise KeyError(name)


def teacher_program() -> dspy.Module:
    """A stronger teacher: the same program on a more skilled simulated model."""
    program = dspy.Predict("question -> answer")
    program.set_lm(simulated_lm("sim/t-teacher", task="arith", finetunable=False, base_skill=0.9))
    return program


def register(registry: Registry) -> None:
    """Register the test programs, metric, LMs, dataset and the failing optimizer."""
    registry.program("t.qa", lambda: dspy.Predict("question -> answer"))
    registry.program("t.two", TwoStep)
    registry.program("t.teacher", teacher_program)
    for metric_name, metric in METRICS.items():
        registry.metric(metric_name, metric)
    registry.dataset("t.arith", splits)
    for name in (
        "t.sim",
        "t.sim_slow",
        "t.sim_slower",
        "t.counted",
        "t.counted_slow",
        "t.sim_fixed",
        "t.sim_crawl",
        "t.sim_longft",
        "t.counted_pids",
    ):
        registry.lm(name, lambda resources, name=name: lm_for(name, resources))
    registry.optimizer(FailingOptimizer)
