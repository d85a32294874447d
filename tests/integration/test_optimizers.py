"""Every advertised optimizer runs as `p` in `p -> w -> p`, sharded, and equals in-process dspy."""

from typing import Any

import pytest

from btq.producer.client import JobClient
from tests.integration.test_parity import assert_same, spec
from tests.integration.test_sharding import evaluation_reports

pytestmark = pytest.mark.integration

OPTIMIZERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "LabeledFewShot": ({"k": 3}, {}),
    "BootstrapFewShot": ({"max_bootstrapped_demos": 2, "max_labeled_demos": 2}, {}),
    "MIPROv2": (
        {"auto": None, "num_candidates": 2, "max_bootstrapped_demos": 1, "max_labeled_demos": 1, "num_threads": 2},
        {"num_trials": 2, "minibatch": False},
    ),
    "COPRO": ({"breadth": 2, "depth": 1}, {}),
    "SIMBA": ({"bsize": 4, "num_candidates": 2, "max_steps": 1, "max_demos": 1}, {}),
    "GEPA": ({"max_metric_calls": 40, "reflection_lm": {"$lm": "t.sim"}, "metric": {"$metric": "t.feedback"}}, {}),
}
SHARDED_INSIDE = {"MIPROv2", "COPRO"}
"""Optimizers whose own evaluations go through dspy.Evaluate with the job's metric (so they are sharded too).
SIMBA scores through dspy.Parallel and GEPA through its adapter's metric wrapper: only the step's own
valset score of those is sharded."""


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_as_p_in_p_w_p_equals_in_process(client: JobClient, name: str) -> None:
    kwargs, compile_args = OPTIMIZERS[name]
    job = spec("p -> w -> p", "given", True, 13)
    job["optimizers"]["p"] = {"optimizer": name, "kwargs": kwargs}
    if compile_args:
        job["optimizer_compile_args"] = {"p": compile_args}
    result = client.wait(client.submit(job), timeout_s=240)
    assert_same(result, job)
    assert not result.flag_compilation_error_occurred, result.error
    in_p_step = [e for e in evaluation_reports(client, result.job_id) if e.step_index == 1]
    assert len(in_p_step) >= (2 if name in SHARDED_INSIDE else 1)
