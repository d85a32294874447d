"""`optimizer_context`: which model a prompt optimizer bootstraps and scores with (no broker)."""

from typing import Any, ClassVar

import dspy
import pytest
from dspy.lm15 import Request, Response

from btq.worker.core.student_lm import optimizer_context, student_lm
from btq.worker.lm.simulated import SimulatedEngine, simulated_lm
from tests.fixture_registry import exact, splits


class RecordingEngine(SimulatedEngine):
    """The simulated engine, recording the model of every request (class-level: LM copies share it)."""

    models: ClassVar[list[str]] = []

    def complete(self, request: Request) -> Response:
        RecordingEngine.models.append(request.model)
        return super().complete(request)


def lms() -> tuple[dspy.LM, dspy.LM]:
    base = simulated_lm("sim/u-small")
    base = dspy.LM("sim/u-small", engine=RecordingEngine(), provider=base.provider, cache=False)
    return base, base.copy(model="sim/u-small:ft-0123456789ab")


def bootstrap(enabled: bool) -> list[str]:
    base, finetuned = lms()
    student = dspy.Predict("question -> answer")
    student.set_lm(finetuned)
    data = splits(seed=5)
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=1, max_bootstrapped_demos=2, num_threads=1
    )
    RecordingEngine.models.clear()
    with dspy.context(lm=base), optimizer_context(enabled, student, base):
        optimizer.compile(student, trainset=data["train"][:8], valset=data["val"][:4])
    return list(RecordingEngine.models)


def test_enabled_bootstraps_and_scores_with_the_students_fine_tuned_model() -> None:
    models = bootstrap(enabled=True)
    assert models
    assert set(models) == {"sim/u-small:ft-0123456789ab"}


def test_disabled_keeps_dspys_behaviour_the_reset_student_runs_the_context_lm() -> None:
    models = bootstrap(enabled=False)
    assert models
    assert set(models) == {"sim/u-small"}


@pytest.mark.parametrize("with_lm", [True, False])
def test_student_lm_is_the_first_predictors_lm_or_the_fallback(with_lm: bool) -> None:
    base, finetuned = lms()
    student = dspy.Predict("question -> answer")
    if with_lm:
        student.set_lm(finetuned)
    chosen: Any = student_lm(student, base)
    assert chosen is (finetuned if with_lm else base)


def test_the_job_option_defaults_off_and_a_non_boolean_is_refused_naming_the_field() -> None:
    from pydantic import ValidationError

    from btq.schemas.job import JobSpec

    base = {"program": {"name": "t.qa"}, "lm": "t.sim", "metric": "t.exact", "trainset": [{"question": "q"}]}
    assert JobSpec.model_validate(base).prompt_steps_use_student_lm is False
    with pytest.raises(ValidationError, match="prompt_steps_use_student_lm"):
        JobSpec.model_validate({**base, "prompt_steps_use_student_lm": "sometimes"})
