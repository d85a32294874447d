"""Program state round trips: demos, instructions and LMs come back without importing classes."""

import dspy
import pytest

from btq.schemas.exceptions import ProgramStateError
from btq.worker.core.lm_binding import LMBinder
from btq.worker.core.program_state import dump_program, load_program
from btq.worker.lm.simulated import simulated_lm
from tests.fixture_registry import TwoStep


def optimized_two_step(lm: dspy.BaseLM) -> dspy.Module:
    program = TwoStep()
    program.set_lm(lm)
    program.draft.demos = [dspy.Example(question="1 + 1", answer="2", augmented=True)]
    program.check.signature = program.check.signature.with_instructions("Check the draft carefully.")
    return program


def test_composite_program_round_trips_exactly_with_shared_lms() -> None:
    lm = simulated_lm()
    original = optimized_two_step(lm)
    loaded = load_program(TwoStep(), dump_program(original), LMBinder(lm))
    assert dump_program(loaded) == dump_program(original)
    assert isinstance(loaded.draft.demos[0], dspy.Example)
    assert loaded.draft.lm is loaded.check.lm, "predictors that shared an LM share one again"


def test_bare_predict_round_trips() -> None:
    lm = simulated_lm()
    predict = dspy.Predict("question -> answer")
    predict.set_lm(lm)
    predict.demos = [dspy.Example(question="q", answer="a")]
    loaded = load_program(dspy.Predict("question -> answer"), dump_program(predict), LMBinder(lm))
    assert dump_program(loaded) == dump_program(predict)


def test_finetuned_model_name_is_rebuilt_from_the_job_lm_keeping_its_provider() -> None:
    lm = simulated_lm()
    program = TwoStep()
    program.set_lm(lm.copy(model="sim/arith-small:ft-abc"))
    loaded = load_program(TwoStep(), dump_program(program), LMBinder(lm))
    assert loaded.draft.lm.model == "sim/arith-small:ft-abc"
    assert loaded.draft.lm.provider is lm.provider


@pytest.mark.parametrize(
    ("key", "value"),
    [("_dspy_lm_class", "evil.module.LM"), ("api_base", "http://attacker"), ("engine", {"class": "os:system"})],
)
def test_lm_state_cannot_switch_class_engine_or_endpoint(key: str, value: object) -> None:
    lm = simulated_lm()
    program = TwoStep()
    program.set_lm(lm)
    state = dump_program(program)
    state["draft"]["lm"][key] = value
    with pytest.raises(ProgramStateError):
        load_program(TwoStep(), state, LMBinder(lm))


def test_state_of_another_program_shape_is_refused() -> None:
    with pytest.raises(ProgramStateError, match="check"):
        load_program(TwoStep(), {"draft": dump_program(dspy.Predict("question -> answer"))}, None)
