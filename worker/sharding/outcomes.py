"""Example outcomes to and from JSON, so shard results travel without pickle.

A prediction travels as its fields; a score as a JSON scalar, or as a prediction's fields for metrics
that return `dspy.Prediction(score=..., feedback=...)`. Anything else cannot travel and makes the shard
fall back to the step's own process, which holds the real objects.
"""

import json
import math
from typing import Any

import dspy

from btq.schemas.exceptions import BtqError
from btq.schemas.sharding import ExampleOutcome
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


def _encode_score(score: Any) -> Any:
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
    return ExampleOutcome(prediction=_json_fields(outcome.prediction), score=_encode_score(outcome.score))


def decode(wire: ExampleOutcome) -> Outcome:
    """Return the outcome a wire form stands for (predictions come back as `dspy.Prediction`)."""
    if wire.error is not None:
        return Outcome(error=wire.error)
    score: Any = wire.score
    if isinstance(score, dict) and _PREDICTION in score:
        score = dspy.Prediction(**score[_PREDICTION])
    return Outcome(prediction=dspy.Prediction(**(wire.prediction or {})), score=score)
