"""BootstrapFinetune's trace collection, cut into shards, rebuilds exactly what dspy collects in one process.

A shard runs dspy's own `bootstrap_trace_data` on its slice (`collect_traces`), its `(prediction, trace)`
outcomes travel as JSON, and the step re-binds the traced predictors to its own objects. The rebuilt
pairs and scores must equal dspy's, parse failures (`FailedPrediction`) included.
"""

from typing import Any

import dspy
import pytest
from dspy.evaluate.evaluate import Evaluate, EvaluationResult
from dspy.teleprompt.bootstrap_trace import FailedPrediction, bootstrap_trace_data
from dspy.utils.dummies import DummyLM

from btq.schemas.sharding import ExampleOutcome, TraceOptions
from btq.worker.sharding.examples import Outcome, ScoredSlice, score_examples
from btq.worker.sharding.hook import evaluating_with
from btq.worker.sharding.outcomes import UnencodableOutcome, decode_traced, encode_traced
from btq.worker.sharding.traces import TraceCall, collect_traces, trace_call
from tests.fixture_registry import TwoStep

# The second and fifth answers name no `answer` field: the adapter cannot parse them.
ANSWERS = [{"answer": "0"}, {"other": "x"}, {"answer": "7"}, {"answer": "3"}, {"other": "y"}, {"answer": "5"}]


def exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def examples(count: int) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer=str(i)).with_inputs("question") for i in range(count)]


def score(program: dspy.Module, metric: Any, devset: list[dspy.Example]) -> ScoredSlice:
    return score_examples(program, devset, metric, num_threads=1, max_errors=100, provide_traceback=False)


def shipped(outcome: ExampleOutcome) -> ExampleOutcome:
    return ExampleOutcome.model_validate_json(outcome.model_dump_json())


@pytest.mark.parametrize("make", [lambda: dspy.Predict("question -> answer"), TwoStep], ids=["predict", "two-step"])
def test_traces_collected_on_a_shard_rebuild_dspy_in_process_data(make: Any) -> None:
    devset = examples(6)
    step_program = make()
    with dspy.context(lm=DummyLM(ANSWERS * 2)):
        expected = bootstrap_trace_data(step_program, devset, metric=exact, num_threads=1)

    shard_program = make()  # another worker's copy of the program
    with dspy.context(lm=DummyLM(ANSWERS * 2)):
        scored = collect_traces(
            shard_program, devset, exact, TraceOptions(has_metric=True, format_failure_score=-1), 0.0, score
        )
    names = {id(p): name for name, p in shard_program.named_predictors()}
    wire = [shipped(encode_traced(outcome, names)) for outcome in scored.outcomes]
    rebuilt = [decode_traced(w, dict(step_program.named_predictors())) for w in wire]

    assert any(isinstance(d["prediction"], FailedPrediction) for d in expected), "a parse failure is covered"
    assert [(o.prediction, o.score) for o in rebuilt] == [((d["prediction"], d["trace"]), d["score"]) for d in expected]
    for outcome, data in zip(rebuilt, expected, strict=True):  # the step's own predictors, not copies
        assert [call[0] for call in outcome.prediction[1]] == [call[0] for call in data["trace"]]
        assert all(any(call[0] is p for p in step_program.predictors()) for call in outcome.prediction[1])
        assert type(outcome.score) is type(data["score"])


def test_the_trace_collection_is_recognised_with_itsTraceOptions(has_metric=True, format_failure_score=-1) -> None:
    seen: list[TraceCall | None] = []

    class Spy:
        def evaluate(
            self, evaluate: Evaluate, program: Any, metric: Any, devset: Any, threads: Any
        ) -> EvaluationResult | None:
            seen.append(trace_call(program, metric))
            return None  # declined: dspy runs it in-process

    program = dspy.Predict("question -> answer")
    with evaluating_with(Spy()), dspy.context(lm=DummyLM(ANSWERS)):
        bootstrap_trace_data(program, examples(3), metric=exact, format_failure_score=-2, capture_crashes=True)
        dspy.Evaluate(devset=examples(3), metric=exact)(program)  # a plain evaluation is not one

    assert seen[0] is not None and seen[0].metric is exact
    assert seen[0].options.format_failure_score == -2 and seen[0].options.capture_crashes
    assert seen[1] is None


def test_a_trace_whose_inputs_change_through_json_cannot_travel() -> None:
    program = dspy.Predict("question -> answer")
    names = {id(p): name for name, p in program.named_predictors()}
    pair = (dspy.Prediction(answer="1"), [(program, {"question": ("a", "b")}, dspy.Prediction(answer="1"))])
    with pytest.raises(UnencodableOutcome):  # a tuple comes back a list: the shard stays in the step
        encode_traced(Outcome(prediction=pair, score=True), names)
    stranger = dspy.Predict("question -> answer")
    with pytest.raises(UnencodableOutcome):  # a predictor the program does not name cannot be re-bound
        encode_traced(Outcome(prediction=(pair[0], [(stranger, {}, pair[0])]), score=True), names)
