"""A deterministic simulated LM and fine-tuning provider: real dspy machinery, no model weights.

`SimulatedEngine` is a dspy custom engine whose answer is a pure function of (model, prompt): it reads
the ChatAdapter prompt, solves the task with a named solver, and answers correctly with a probability
that grows with the number of demos in the prompt and with each fine-tune in the model name. The same
prompt always gets the same answer, in any thread, process or worker, so distributed runs can be
compared with in-process runs exactly. `SimulatedFinetuneProvider` "fine-tunes" by naming a new model
from a hash of the base model, data and settings and publishing a record of it to the artifact store.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

import dspy
import redis
from dspy.clients.provider import Provider, TrainingJob
from dspy.lm15 import Message, Request, Response, TextPart, Usage

from btq.worker.artifacts.store import ArtifactStore, content_name
from btq.worker.core import interrupt
from btq.worker.core.progress import report

FINETUNE_MARK = ":ft-"

_OUTPUT_FIELDS = re.compile(r"Your output fields are:\n(.*?)(?:\nAll interactions|\Z)", re.S)
_FIELD_NAME = re.compile(r"^\d+\. `([^`]+)`", re.M)
_INPUT_BLOCK = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
_ARITH = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)")


def _solve_arith(inputs: dict[str, str]) -> str:
    match = _ARITH.search(" ".join(inputs.values()))
    if not match:
        return "unknown"
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return str(a + b if op == "+" else a - b if op == "-" else a * b)


def _solve_upper(inputs: dict[str, str]) -> str:
    return next(iter(inputs.values()), "").strip().upper()


SOLVERS: dict[str, Callable[[dict[str, str]], str]] = {"arith": _solve_arith, "upper": _solve_upper}
"""Tasks the simulated LM can solve, by name (the engine's state names one)."""


def _unit_interval(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _wrong(answer: str, salt: float) -> str:
    if answer.lstrip("-").isdigit():
        return str(int(answer) + 1 + int(salt * 7))
    return answer.lower() + "?"


def simulated_tokens(*texts: str) -> int:
    """Tokens the simulated LM reports for some text: one per four characters, rounded up."""
    return sum(-(-len(text) // 4) for text in texts)


class SimulatedEngine:
    """A dspy custom engine answering ChatAdapter prompts deterministically."""

    def __init__(
        self,
        task: str = "arith",
        base_skill: float = 0.35,
        demo_gain: float = 0.08,
        finetune_gain: float = 0.2,
        latency_ms: float = 0.0,
    ) -> None:
        if task not in SOLVERS:
            raise ValueError(f"unknown simulated task {task!r} (known: {sorted(SOLVERS)})")
        self.task = task
        self.base_skill = base_skill
        self.demo_gain = demo_gain
        self.finetune_gain = finetune_gain
        self.latency_ms = latency_ms

    def skill(self, model: str, demos: int) -> float:
        """Probability of a correct answer for `model` with `demos` demonstrations in the prompt."""
        gain = self.demo_gain * demos + self.finetune_gain * model.count(FINETUNE_MARK)
        return min(0.97, self.base_skill + gain)

    def complete(self, request: Request) -> Response:
        """Answer one request; the text depends only on the model name and the prompt."""
        interrupt.raise_if_cancelled()  # the LM call path: a cancel stops an optimizer's compile here
        if self.latency_ms:
            interrupt.sleep(self.latency_ms / 1000)
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(getattr(p, "text", "") for p in (request.system or ()))
        )
        messages = [m.text or "" for m in request.messages]
        demos = sum(1 for m in request.messages if m.role == "assistant")
        declared = _OUTPUT_FIELDS.search(system)
        outputs = _FIELD_NAME.findall(declared.group(1)) if declared else []
        inputs = dict(_INPUT_BLOCK.findall(messages[-1] if messages else ""))
        answer = SOLVERS[self.task](inputs)
        roll = _unit_interval(request.model, system, *messages)
        if roll >= self.skill(request.model, demos):
            answer = _wrong(answer, roll)
        fields = outputs or ["answer"]
        body = "".join(
            f"[[ ## {name} ## ]]\n{answer if i == len(fields) - 1 else 'Working it out.'}\n\n"
            for i, name in enumerate(fields)
        )
        text = body + "[[ ## completed ## ]]\n"
        # Deterministic token counts (about four characters a token), so accounting is testable.
        prompt_tokens = simulated_tokens(system, *messages)
        completion_tokens = simulated_tokens(text)
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(
                input_tokens=prompt_tokens,
                output_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def stream(self, request: Request) -> Any:
        """Stream one response as events (dspy's streaming contract)."""
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        """Nothing to release."""

    def dump_state(self) -> dict[str, Any]:
        """Return the engine's JSON state (dspy saves it inside the LM state)."""
        return {
            "task": self.task,
            "base_skill": self.base_skill,
            "demo_gain": self.demo_gain,
            "finetune_gain": self.finetune_gain,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> "SimulatedEngine":
        """Rebuild an engine from `dump_state` output."""
        return cls(**state)


class CountingEngine(SimulatedEngine):
    """The simulated engine, also counting the calls it answers in the worker's Redis (`BTQ_REDIS_URL`).

    How tests and benchmarks see how many LM calls a job really made (cache hits never reach an engine).
    Subclasses name the counter with `calls_key`.
    """

    calls_key = "btq:sim:lm-calls"

    def complete(self, request: Request) -> Response:
        """Count the call, then answer it like the simulated engine."""
        url = os.environ.get("BTQ_REDIS_URL")
        if url:
            redis.Redis.from_url(url).incr(self.calls_key)
        return super().complete(request)


class SimulatedFinetuneProvider(Provider):  # type: ignore[misc]
    """A fine-tunable provider whose fine-tune names a content-addressed model and publishes a record."""

    def __init__(self, artifacts: ArtifactStore | None = None, finetune_s: float = 0.0) -> None:
        super().__init__()
        self.finetunable = True
        self.artifacts = artifacts
        self.finetune_s = finetune_s

    def finetune(  # type: ignore[override]
        self,
        job: TrainingJob,
        model: str,
        train_data: list[dict[str, Any]],
        train_data_format: Any,
        train_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Return the fine-tuned model's name: the base model plus a hash of data and settings."""
        digest = content_name("", model, train_data, train_kwargs or {})[:12]
        name = f"{model}{FINETUNE_MARK}{digest}"
        report(phase="finetune", model=name, examples=len(train_data))
        # Simulated training time; a cancel ends it before anything is published (nothing partial is kept).
        interrupt.sleep(self.finetune_s)
        if self.artifacts is not None:
            record = {"base_model": model, "examples": len(train_data), "train_kwargs": train_kwargs or {}}
            self.artifacts.publish_files(name, {"finetune.json": json.dumps(record, default=str).encode()})
        return name


def simulated_lm(
    model: str = "sim/arith-small",
    *,
    task: str = "arith",
    artifacts: ArtifactStore | None = None,
    finetunable: bool = True,
    latency_ms: float = 0.0,
    cache: bool = False,
    engine_class: type[SimulatedEngine] = SimulatedEngine,
    finetune_s: float = 0.0,
    **engine_kwargs: Any,
) -> dspy.LM:
    """Return a `dspy.LM` backed by `SimulatedEngine` (and a simulated fine-tuning provider).

    `cache=True` lets dspy's cache (the fleet's shared LM-call cache, in a worker) answer repeated calls;
    `finetune_s` is how long a simulated fine-tune trains (interrupted by a cancel).
    """
    engine = engine_class(task=task, latency_ms=latency_ms, **engine_kwargs)
    provider = SimulatedFinetuneProvider(artifacts, finetune_s) if finetunable else Provider()
    return dspy.LM(model, engine=engine, provider=provider, cache=cache)
