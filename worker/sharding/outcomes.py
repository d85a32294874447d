"""Example outcomes to and from JSON, so shard results travel without pickle.

A prediction travels as its fields; a score as a JSON scalar, or as a prediction's fields for metrics
that return `dspy.Prediction(score=..., feedback=...)`. Anything else cannot travel and makes the shard
fall back to the step's own process, which holds the real objects.

A traced outcome (trace collection for fine-tuning, see `traces.py`) is dspy's `(prediction, trace)`
pair: the prediction (or dspy's `FailedPrediction`) and every `(predictor, inputs, output)` call, the
predictor named by its place in `named_predictors()` and re-bound on arrival to the receiving program's
own predictor object. Its inputs and outputs must be plain JSON of exactly the types they had (a str
subclass or a tuple would format differently in fine-tuning data), or the shard stays in the step.
"""

import json
import math
from collections.abc import Mapping
from typing import Any

import dspy
from dspy.teleprompt.bootstrap_trace import FailedPrediction

from btq.schemas.exceptions import BtqError
from btq.schemas.sharding import ExampleOutcome, FailedOutput, TracedCall
from btq.worker.sharding.examples import Outcome

_PREDICTION = "$prediction"


class UnencodableOutcome(BtqError):
    """Raised when a prediction or score has values JSON cannot carry exactly."""


def _json_fields(value: Any) -> dict[str, Any]:
    fields = dict(value.toDict()) if hasattr(value, "toDict") else dict(value)
    try:
        text = json.dumps(fields, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UnencodableOutcome(f"prediction fields are not JSON: {exc}") from exc
    decoded: dict[str, Any] = json.loads(text)
    if decoded != fields:  # tuples become lists, int keys become strings: not the same object back
        raise UnencodableOutcome("prediction fields change through JSON")
    return decoded


def encode_score(score: Any) -> Any:
    """Return the wire form of a metric's score (UnencodableOutcome if it cannot travel exactly)."""
    if score is None or isinstance(score, bool | int | str):
        return score
    if isinstance(score, float):
        if not math.isfinite(score):
            raise UnencodableOutcome(f"score {score!r} is not a finite number")
        return score
    if isinstance(score, dspy.Prediction):
        return {_PREDICTION: _json_fields(score)}
    raise UnencodableOutcome(f"score of type {type(score).__name__} cannot travel as JSON")


def encode(outcome: Outcome) -> ExampleOutcome:
    """Return the wire form of one outcome (UnencodableOutcome if it cannot travel exactly)."""
    if outcome.error is not None:
        return ExampleOutcome(error=outcome.error)
    return ExampleOutcome(prediction=_json_fields(outcome.prediction), score=encode_score(outcome.score))


def decode(wire: ExampleOutcome) -> Outcome:
    """Return the outcome a wire form stands for (predictions come back as `dspy.Prediction`)."""
    if wire.error is not None:
        return Outcome(error=wire.error)
    return Outcome(prediction=dspy.Prediction(**(wire.prediction or {})), score=decode_score(wire.score))


def decode_score(score: Any) -> Any:
    """Return the score a wire score stands for (a prediction's fields come back as `dspy.Prediction`)."""
    if isinstance(score, dict) and _PREDICTION in score:
        return dspy.Prediction(**score[_PREDICTION])
    return score


def _plain(value: Any) -> bool:
    """Whether `value` is JSON of exactly the built-in types JSON gives back (no subclass, tuple, NaN)."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def _plain_fields(fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    plain = dict(fields)
    if not _plain(plain):
        raise UnencodableOutcome(f"{what} are not plain JSON")
    return plain


def _encode_output(output: Any) -> tuple[dict[str, Any] | None, FailedOutput | None]:
    """A traced output: a prediction's fields, or a `FailedPrediction`."""
    if type(output) is FailedPrediction:
        if not _plain(output.completion_text) or not _plain(output.format_reward):
            raise UnencodableOutcome("failed prediction is not plain JSON")
        return None, FailedOutput(completion_text=output.completion_text, format_reward=output.format_reward)
    if type(output) is dspy.Prediction:  # its own store: `toDict()` would turn a pydantic value into a dict
        return _plain_fields(output._store, "prediction fields"), None
    raise UnencodableOutcome(f"traced output of type {type(output).__name__} cannot travel")


def _decode_output(fields: dict[str, Any] | None, failed: FailedOutput | None) -> Any:
    if failed is not None:
        return FailedPrediction(completion_text=failed.completion_text, format_reward=failed.format_reward)  # type: ignore[arg-type]
    return dspy.Prediction(**(fields or {}))


def encode_traced(outcome: Outcome, names: Mapping[int, str]) -> ExampleOutcome:
    """Return the wire form of a traced outcome; `names` maps id(predictor) to its name in the program."""
    if outcome.error is not None:
        return ExampleOutcome(error=outcome.error)
    pair = outcome.prediction
    if type(pair) is not tuple or len(pair) != 2 or type(pair[1]) is not list:
        raise UnencodableOutcome("traced prediction is not dspy's (prediction, trace) pair")
    prediction, failed = _encode_output(pair[0])
    calls = []
    for call in pair[1]:
        if type(call) is not tuple or len(call) != 3 or type(call[1]) is not dict:
            raise UnencodableOutcome("trace entry is not a (predictor, inputs, output) tuple")
        name = names.get(id(call[0]))
        if name is None:
            raise UnencodableOutcome("traced predictor is not one of the program's named predictors")
        outputs, failed_output = _encode_output(call[2])
        calls.append(
            TracedCall(
                predictor=name, inputs=_plain_fields(call[1], "trace inputs"), outputs=outputs, failed=failed_output
            )
        )
    return ExampleOutcome(prediction=prediction, failed=failed, score=encode_score(outcome.score), trace=calls)


def decode_traced(wire: ExampleOutcome, predictors: Mapping[str, Any]) -> Outcome:
    """Return the traced outcome a wire form stands for, predictors re-bound by name from `predictors`."""
    if wire.error is not None:
        return Outcome(error=wire.error)
    unknown = {call.predictor for call in wire.trace or []} - set(predictors)
    if unknown:  # the same registered program names the same predictors: this result is not its shard's
        raise ValueError(f"traced predictors {sorted(unknown)} are not the program's")
    trace = [
        (predictors[call.predictor], dict(call.inputs), _decode_output(call.outputs, call.failed))
        for call in wire.trace or []
    ]
    return Outcome(prediction=(_decode_output(wire.prediction, wire.failed), trace), score=decode_score(wire.score))
