"""The embedded demo jobs are valid specs whose compile args the named optimizers accept."""

import inspect

import dspy
import pytest

from btq.producer.demo.jobs import DEMOS
from btq.schemas.job import JobSpec


@pytest.mark.parametrize("model", sorted(DEMOS))
def test_demo_spec_validates_and_its_compile_args_fit_the_optimizers(model: str) -> None:
    spec = JobSpec.model_validate(DEMOS[model].spec)
    for key, args in (spec.optimizer_compile_args or {}).items():
        optimizer = getattr(dspy, spec.optimizers[key].optimizer)
        assert set(args) <= set(inspect.signature(optimizer.compile).parameters), (key, args)


def test_local_demo_runs_prompt_steps_with_the_students_lm() -> None:
    assert JobSpec.model_validate(DEMOS["local"].spec).prompt_steps_use_student_lm is True
    assert JobSpec.model_validate(DEMOS["simulated"].spec).prompt_steps_use_student_lm is False
