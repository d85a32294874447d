"""A job spec resolved into dspy objects: examples, valset split, LM, metric, programs, optimizers."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.teleprompt.teleprompt import Teleprompter

from btq.schemas.job import DatasetRef, ExampleSource, JobSpec, ProgramRef
from btq.worker.core.lm_binding import LMBinder, build_job_lm
from btq.worker.core.optimizers import build_optimizer, resolve_refs
from btq.worker.core.program_state import load_program
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.settings import WorkerSettings

DEFAULT_OPTIMIZERS = {"p": "BootstrapFewShotWithRandomSearch", "w": "BootstrapFinetune"}
"""What dspy.BetterTogether uses when a job names no optimizers."""

EXAMPLE_SETS = ("trainset", "valset")
"""compile args holding examples; they arrive as JSON records and become dspy.Examples."""


def to_examples(source: ExampleSource, input_keys: list[str] | None, registry: Registry) -> list[dspy.Example]:
    """Turn inline records (with the job's input keys) or a dataset reference into examples."""
    if isinstance(source, list):
        return [dspy.Example(**record).with_inputs(*(input_keys or [])) for record in source]
    return list(registry.dataset_split(source.dataset, source.split))


def split_valset(
    trainset: list[dspy.Example], valset: list[dspy.Example] | None, valset_ratio: float
) -> tuple[list[dspy.Example], list[dspy.Example] | None]:
    """Split exactly as BetterTogether: a given valset wins; else the first int(ratio*n) examples."""
    trainset = trainset[:]
    if valset:
        return trainset, valset
    if valset_ratio == 0:
        return trainset, None
    n_val = int(valset_ratio * len(trainset))
    return trainset[n_val:], trainset[:n_val]


_KNOWN_NO_HISTORY = frozenset(
    {"LabeledFewShot", "BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "BootstrapFinetune"}
)
"""Optimizers checked not to read `lm.history`. MIPROv2 (token counts, task-model traces), GEPA, SIMBA,
COPRO and classes registries add keep it: history is only switched off where nothing reads it."""


@dataclass
class ResolvedJob:
    """Everything a step needs, built from the spec and the worker's registry."""

    spec: JobSpec
    registry: Registry
    resources: WorkerResources
    lm: dspy.BaseLM
    metric: Callable[..., Any]
    trainset: list[dspy.Example]
    valset: list[dspy.Example] | None

    @classmethod
    def resolve(
        cls, spec: JobSpec, registry: Registry, resources: WorkerResources, settings: WorkerSettings
    ) -> "ResolvedJob":
        """Resolve every named reference of `spec` (raises RegistryError for unknown names)."""
        trainset = to_examples(spec.trainset, spec.input_keys, registry)
        valset = to_examples(spec.valset, spec.input_keys, registry) if spec.valset is not None else None
        trainset, valset = split_valset(trainset, valset, spec.valset_ratio)
        return cls(
            spec=spec,
            registry=registry,
            resources=resources,
            lm=build_job_lm(spec.lm, registry, resources, settings),
            metric=registry.get("metrics", spec.metric),
            trainset=trainset,
            valset=valset,
        )

    def initial_student(self) -> dspy.Module:
        """Return the program to optimize: factory, optional initial state, the job LM on every predictor."""
        student = self._program(self.spec.program, binder=None)
        student.set_lm(self.lm)
        return student

    def student_from_state(self, state: dict[str, Any]) -> dspy.Module:
        """Return the program a previous step produced, with its LMs rebuilt from the job LM."""
        factory = self.registry.get("programs", self.spec.program.name)
        return load_program(factory(), state, LMBinder(self.lm))

    def teachers(self) -> list[dspy.Module] | None:
        """Return fresh teacher programs (None when the job has none, as dspy normalizes it)."""
        refs = self.spec.teachers()
        return [self._program(ref, binder=LMBinder(self.lm)) for ref in refs] or None

    def optimizer(self, key: str) -> Teleprompter:
        """Build the optimizer of strategy key `key` (call inside the job's dspy.context)."""
        return build_optimizer(key, self.spec, self.metric, self.registry, self.resources)

    def reads_lm_history(self, key: str) -> bool:
        """Whether the optimizer of strategy key `key` may read LM call history (unknown classes: yes)."""
        spec = self.spec.optimizers.get(key)
        name = spec.optimizer if spec is not None else DEFAULT_OPTIMIZERS.get(key, "")
        return name not in _KNOWN_NO_HISTORY

    def compile_args(self, key: str) -> dict[str, Any]:
        """Return `optimizer_compile_args[key]` with example sets, teachers and references resolved."""
        raw = dict((self.spec.optimizer_compile_args or {}).get(key, {}))
        args: dict[str, Any] = {}
        for name, value in raw.items():
            if name in EXAMPLE_SETS and isinstance(value, list):
                records = [v for v in value if isinstance(v, dict)]
                args[name] = to_examples(records, self.spec.input_keys, self.registry)
            elif name in EXAMPLE_SETS and isinstance(value, dict):  # {"dataset": ..., "split": ...}
                args[name] = to_examples(DatasetRef.model_validate(value), self.spec.input_keys, self.registry)
            elif name == "teacher" and value is not None:
                # One teacher stays one module, a list stays a list: optimizers differ in what they take.
                args[name] = [self._teacher(r) for r in value] if isinstance(value, list) else self._teacher(value)
            else:
                args[name] = resolve_refs(value, self.registry, self.resources)
        return args

    def _teacher(self, raw: Any) -> dspy.Module:
        return self._program(ProgramRef.model_validate(raw), LMBinder(self.lm))

    def _program(self, ref: ProgramRef, binder: LMBinder | None) -> dspy.Module:
        program: dspy.Module = self.registry.get("programs", ref.name)()
        if ref.state is not None:
            program = load_program(program, dict(ref.state), binder)
        return program
