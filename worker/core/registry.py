"""The registry: the only things a message may name.

User modules listed in the worker's `imports` setting define `register(registry)`; the worker imports
them at start (module names come from settings, never from messages) and calls that function.
"""

import importlib
import importlib.util
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import (
    COPRO,
    GEPA,
    SIMBA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    BootstrapFinetune,
    LabeledFewShot,
    MIPROv2,
)
from dspy.teleprompt.teleprompt import Teleprompter

from btq.schemas.exceptions import RegistryError
from btq.schemas.manifest import OptimizerSignature, RegistryManifest
from btq.worker.artifacts.store import ArtifactStore

BUILTIN_OPTIMIZERS: dict[str, type[Teleprompter]] = {
    cls.__name__: cls
    for cls in (
        LabeledFewShot,
        BootstrapFewShot,
        BootstrapFewShotWithRandomSearch,
        BootstrapFinetune,
        MIPROv2,
        COPRO,
        GEPA,
        SIMBA,
    )
}
"""dspy optimizers a job may name. User modules may add more with `Registry.optimizer`."""


@dataclass(frozen=True)
class WorkerResources:
    """What registered factories may use: the shared artifact store and the worker's secrets."""

    artifacts: ArtifactStore
    secrets: dict[str, str] = field(default_factory=dict)


ProgramFactory = Callable[[], dspy.Module]
LMFactory = Callable[[WorkerResources], dspy.BaseLM]
Metric = Callable[..., Any]
DatasetLoader = Callable[[], dict[str, list[dspy.Example]]]


@dataclass
class Registry:
    """Named programs, metrics, LMs, datasets and extra optimizer classes."""

    programs: dict[str, ProgramFactory] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    lms: dict[str, LMFactory] = field(default_factory=dict)
    datasets: dict[str, DatasetLoader] = field(default_factory=dict)
    optimizers: dict[str, type[Teleprompter]] = field(default_factory=lambda: dict(BUILTIN_OPTIMIZERS))
    _dataset_cache: dict[str, dict[str, list[dspy.Example]]] = field(default_factory=dict, repr=False)

    def program(self, name: str, factory: ProgramFactory) -> None:
        """Register a factory returning a fresh, un-optimized program."""
        self.programs[name] = factory

    def metric(self, name: str, fn: Metric) -> None:
        """Register a metric `(example, prediction, trace=None) -> number`."""
        self.metrics[name] = fn

    def lm(self, name: str, factory: LMFactory) -> None:
        """Register an LM factory; it receives the worker's resources (artifact store, secrets)."""
        self.lms[name] = factory

    def dataset(self, name: str, loader: DatasetLoader) -> None:
        """Register a loader returning named splits of `dspy.Example`s (inputs already marked)."""
        self.datasets[name] = loader

    def optimizer(self, cls: type[Teleprompter], name: str | None = None) -> None:
        """Allow an extra Teleprompter class, named by its class name unless `name` is given."""
        if not (inspect.isclass(cls) and issubclass(cls, Teleprompter)):
            raise TypeError(f"{cls!r} is not a dspy Teleprompter class")
        self.optimizers[name or cls.__name__] = cls

    def get(self, kind: str, name: str) -> Any:
        """Return the entry `name` of `kind` ('programs', 'metrics', 'lms', 'datasets', 'optimizers')."""
        entries: dict[str, Any] = getattr(self, kind)
        if name not in entries:
            raise RegistryError(f"no {kind[:-1]} named {name!r} is registered (known: {sorted(entries)})")
        return entries[name]

    def dataset_split(self, name: str, split: str) -> list[dspy.Example]:
        """Return one split of a registered dataset, loading the dataset once per process."""
        if name not in self._dataset_cache:
            self._dataset_cache[name] = self.get("datasets", name)()
        splits = self._dataset_cache[name]
        if split not in splits:
            raise RegistryError(f"dataset {name!r} has no split {split!r} (known: {sorted(splits)})")
        return splits[split]

    def manifest(self, worker: str) -> RegistryManifest:
        """Describe what is registered, for producers to validate jobs without importing worker code."""
        programs = {name: [n for n, _ in factory().named_predictors()] for name, factory in self.programs.items()}
        datasets = {name: sorted(self._splits(name)) for name in self.datasets}
        return RegistryManifest(
            programs=programs,
            metrics=sorted(self.metrics),
            lms=sorted(self.lms),
            datasets=datasets,
            optimizers={
                name: optimizer_signature(cls) for name, cls in self.optimizers.items() if optimizer_runs_here(name)
            },
            worker=worker,
            published_at=time.time(),
        )

    def _splits(self, name: str) -> list[str]:
        if name not in self._dataset_cache:
            self._dataset_cache[name] = self.datasets[name]()
        return list(self._dataset_cache[name])


RUNTIME_DEPENDENCIES: dict[str, tuple[str, ...]] = {"MIPROv2": ("optuna",), "SIMBA": ("numpy",), "GEPA": ("gepa",)}
"""Modules dspy optimizers import only when they run: without them a step would fail with ImportError."""


def optimizer_runs_here(name: str) -> bool:
    """Whether this worker has what optimizer `name` imports at run time (the manifest lists only those)."""
    return all(importlib.util.find_spec(module) is not None for module in RUNTIME_DEPENDENCIES.get(name, ()))


def optimizer_signature(cls: type[Teleprompter]) -> OptimizerSignature:
    """Return the constructor and compile() parameters of an optimizer class."""
    init = inspect.signature(cls.__init__).parameters
    compile_params = inspect.signature(cls.compile).parameters
    return OptimizerSignature(
        init_params=[p for p in init if p != "self"],
        compile_params=[p for p in compile_params if p != "self"],
        init_var_kwargs=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in init.values()),
    )


BUILTIN_IMPORTS: tuple[str, ...] = ("btq.worker.lm.builtin",)
"""Registered in every worker before the settings' `imports`: the embedded demo task on the simulated LM.

Named, not imported here: the built-ins are a registry module like any user's, and the core does not
depend on an LM backend (the layer contracts in pyproject.toml check that)."""


def load_registry(modules: list[str]) -> Registry:
    """Build a registry from the built-in demo entries plus each settings-named module's `register`."""
    registry = Registry()
    for module_name in (*BUILTIN_IMPORTS, *modules):
        module = importlib.import_module(module_name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise RegistryError(f"module {module_name!r} (from settings.imports) defines no register(registry)")
        register(registry)
    return registry
