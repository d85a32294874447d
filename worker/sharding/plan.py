"""Deciding whether one `Evaluate` call can be sharded, and describing it by reference if so.

A call is sharded only when every part of it can be rebuilt by another worker exactly: the program is
an instance of the job's registered program whose `dump_state()` loads back to the same state, the
context LM is the job LM or a state derived from it, the metric is registered, and every example is one
of the job's resolved train or validation examples (found by identity). Anything else runs in-process,
as dspy would run it: correctness never depends on sharding.
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any

import dspy

from btq.schemas.exceptions import ProgramStateError
from btq.schemas.sharding import EvalRequest, ExampleSet, TraceOptions
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.lm_binding import LMBinder
from btq.worker.core.program_state import dump_program, load_program

METRIC_ATTRIBUTE = "__btq_metric__"
"""Set on metric wrappers (cancel checks) to name the registered metric they wrap."""


def shard_bounds(size: int, live_slots: int, min_examples: int, shards_per_slot: int) -> list[tuple[int, int]]:
    """Cut `size` examples into contiguous shards whose sizes differ by at most one.

    Up to `shards_per_slot` shards per live worker process, none below `min_examples` (the per-shard cost
    of a task, a lease and a stored result must stay small next to the examples' LM calls). Above one
    shard per process the count is a whole number of rounds (a multiple of the processes), so every
    process finishes its last shard at about the same time instead of a few tail shards keeping the
    fleet waiting; below it (many processes, a small set) the floor halves rather than leave processes
    idle. A pure function of its inputs: the same fleet size always gives the same plan.
    """
    slots = max(1, live_slots)
    count = min(slots * shards_per_slot, size // max(1, min_examples))
    if count < slots:
        count = min(slots, size // max(1, min_examples // 2))
    elif count > slots:
        count -= count % slots
    count = max(1, min(count, size))
    base, extra = divmod(size, count)
    bounds = []
    start = 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


class ShardPlanner:
    """Turns the `Evaluate` calls of one step into `EvalRequest`s, or None when they must stay in-process."""

    def __init__(self, job: ResolvedJob, job_id: str, step_index: int) -> None:
        self.job = job
        self.job_id = job_id
        self.step_index = step_index
        self.binder = LMBinder(job.lm)
        self._refs: dict[int, tuple[ExampleSet, int]] = {}
        for index, example in enumerate(job.trainset):
            self._refs[id(example)] = ("train", index)
        for index, example in enumerate(job.valset or []):
            self._refs[id(example)] = ("val", index)
        self._program_type = type(job.registry.get("programs", job.spec.program.name)())
        self._metric_names = {id(fn): name for name, fn in job.registry.metrics.items()}

    def plan(
        self,
        seq: int,
        program: dspy.Module,
        metric: Callable[..., Any] | None,
        devset: list[dspy.Example],
        *,
        num_threads: int | None,
        max_errors: int,
        provide_traceback: bool | None,
        failure_score: float,
        bounds: list[tuple[int, int]],
        trace: TraceOptions | None = None,
    ) -> EvalRequest | None:
        """Return the request for evaluation number `seq` of the step, or None if it cannot be sharded.

        With `trace` the call collects traces (BootstrapFinetune) and `metric` is the one dspy's wrapper
        calls, None when none was given.
        """
        examples = [self._refs.get(id(example)) for example in devset]
        metric_name = None if trace is not None and not trace.has_metric else self._metric_name(metric)
        if None in examples or metric_name is False or type(program) is not self._program_type:
            return None
        state = self._portable_state(program)
        context_lm = self._context_lm_state()
        if state is None or context_lm is False:
            return None
        described: dict[str, Any] = {
            "job_id": self.job_id,
            "step_index": self.step_index,
            "program": self.job.spec.program.name,
            "program_state": state,
            "context_lm": context_lm,
            "metric": metric_name,
            "examples": examples,
            "num_threads": num_threads,
            "max_errors": max_errors,
            "provide_traceback": provide_traceback,
            "failure_score": failure_score,
            "cache": self.job.spec.cache,
            "trace": trace.model_dump(mode="json") if trace is not None else None,
        }
        # The id names the work, not the attempt: a redelivered step that reaches the same evaluation
        # finds the shards its dead holder finished. The sequence number separates identical calls.
        digest = hashlib.sha256(json.dumps([seq, described], sort_keys=True, default=str).encode()).hexdigest()
        return EvalRequest(eval_id=digest[:32], shards=bounds, **described)

    def _metric_name(self, metric: Callable[..., Any] | None) -> str | bool | None:
        """None for the job's metric, a registered name for another one, False for an unknown callable."""
        inner = getattr(metric, METRIC_ATTRIBUTE, metric)
        if inner is self.job.metric:
            return None
        return self._metric_names.get(id(inner), False)

    def _portable_state(self, program: dspy.Module) -> dict[str, Any] | None:
        """The program's state if a fresh program from the factory loads back to exactly it."""
        try:
            state = dump_program(program)
            factory = self.job.registry.get("programs", self.job.spec.program.name)
            rebuilt = load_program(factory(), json.loads(json.dumps(state)), self.binder)
        except (ProgramStateError, TypeError, ValueError):
            return None
        if dump_program(rebuilt) != state:
            return None
        if [p.lm for p in rebuilt.predictors()] != [p.lm for p in program.predictors()]:
            rebound = [self._same_lm(a, b) for a, b in zip(rebuilt.predictors(), program.predictors(), strict=True)]
            if not all(rebound):
                return None
        return state

    @staticmethod
    def _same_lm(rebuilt: Any, original: Any) -> bool:
        if rebuilt.lm is None or original.lm is None:
            return rebuilt.lm is original.lm
        same: bool = rebuilt.lm.dump_state() == original.lm.dump_state()
        return same

    def _context_lm_state(self) -> dict[str, Any] | bool | None:
        """None for the job LM, the state of an LM derived from it, False for any other LM."""
        lm = dspy.settings.lm
        if lm is self.job.lm:
            return None
        if lm is None:
            return False
        try:
            state: dict[str, Any] = lm.dump_state()
            rebuilt = self.binder.lm_for(state)
        except (ProgramStateError, TypeError, ValueError, AttributeError):
            return False
        return state if rebuilt is not None and rebuilt.dump_state() == state else False
