"""Optimizers from JSON: an allowlisted class, kwargs, and `$metric`/`$lm`/`$program` references."""

import inspect
from collections.abc import Callable
from typing import Any

from dspy.teleprompt import BootstrapFewShotWithRandomSearch, BootstrapFinetune
from dspy.teleprompt.teleprompt import Teleprompter

from btq.schemas.exceptions import RegistryError
from btq.schemas.job import REF_MARKERS, JobSpec, OptimizerSpec
from btq.worker.core.registry import Registry, WorkerResources


def resolve_refs(value: Any, registry: Registry, resources: WorkerResources) -> Any:
    """Replace `{"$metric": name}`-style references (at any depth) by the registered objects."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in REF_MARKERS:
            marker, name = next(iter(value.items()))
            entry = registry.get(REF_MARKERS[marker], str(name))
            if marker == "$lm":
                return entry(resources)
            return entry() if marker == "$program" else entry
        return {k: resolve_refs(v, registry, resources) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, registry, resources) for v in value]
    return value


def build_optimizer(
    key: str,
    spec: JobSpec,
    metric: Callable[..., Any],
    registry: Registry,
    resources: WorkerResources,
) -> Teleprompter:
    """Build the optimizer of strategy key `key`; call inside `dspy.context(lm=...)`.

    With no optimizers in the job, `p` and `w` are dspy's defaults built exactly as BetterTogether
    builds them. Some optimizers (MIPROv2) read `dspy.settings.lm` in their constructor, which is why
    this runs inside the job's LM context.
    """
    if not spec.optimizers:
        defaults: dict[str, Callable[[], Teleprompter]] = {
            "p": lambda: BootstrapFewShotWithRandomSearch(metric=metric),
            "w": lambda: BootstrapFinetune(metric=metric),
        }
        return defaults[key]()
    return _from_spec(spec.optimizers[key], metric, registry, resources)


def _from_spec(
    opt: OptimizerSpec, metric: Callable[..., Any], registry: Registry, resources: WorkerResources
) -> Teleprompter:
    cls = registry.get("optimizers", opt.optimizer)
    kwargs = resolve_refs(dict(opt.kwargs), registry, resources)
    if "metric" not in kwargs and _accepts(cls, "metric"):
        kwargs["metric"] = metric
    try:
        optimizer: Teleprompter = cls(**kwargs)
    except TypeError as exc:
        raise RegistryError(f"optimizer {opt.optimizer} rejected its kwargs: {exc}") from exc
    return optimizer


def _accepts(cls: type[Teleprompter], name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters
