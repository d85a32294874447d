"""A second team's registry: what only some workers of a heterogeneous fleet register."""

import dspy

from btq.worker.core.registry import Registry
from tests.fixture_registry import exact, lm_for, splits


def register(registry: Registry) -> None:
    """Register a program, LM, metric and dataset that workers without this module lack."""
    registry.program("b.qa", lambda: dspy.Predict("question -> answer"))
    registry.lm("b.sim", lambda resources: lm_for("t.sim", resources))
    registry.lm("b.sim_slow", lambda resources: lm_for("t.sim_slow", resources))
    registry.metric("b.exact", exact)
    registry.dataset("b.arith", splits)
