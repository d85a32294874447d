"""Sharded evaluation: what a step publishes for other workers to score, and what they store back.

An evaluation request names everything by reference: the registered program and metric, the program's
`dump_state()` JSON, the context LM as a state derived from the job LM, and the examples as indices into
the job's resolved train and validation sets. No code and no pickle travel.
"""

from typing import Literal

from pydantic import Field, JsonValue

from btq.schemas.usage import Usage
from btq.schemas.version import VersionedModel, WireModel

ExampleSet = Literal["train", "val"]


class EvalRequest(VersionedModel):
    """One `dspy.Evaluate` call of a step, cut into shards that any worker may claim."""

    job_id: str
    step_index: int
    eval_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    program: str = Field(description="Registered program name whose factory builds the evaluated program")
    program_state: dict[str, JsonValue]
    context_lm: dict[str, JsonValue] | None = Field(
        default=None, description="State of the context LM (derived from the job LM); None means the job LM"
    )
    metric: str | None = Field(default=None, description="Registered metric name; None means the job's metric")
    examples: list[tuple[ExampleSet, int]]
    shards: list[tuple[int, int]] = Field(description="Half-open [start, end) positions into `examples`")
    num_threads: int | None = None
    max_errors: int
    provide_traceback: bool | None = None
    failure_score: float = 0.0
    cache: bool = True


class ExampleOutcome(WireModel):
    """One example's `(prediction, score)`, or the error its program or metric raised."""

    prediction: dict[str, JsonValue] | None = None
    score: JsonValue = None
    error: str | None = None


class ShardResult(VersionedModel):
    """A finished shard: one outcome per example in shard order, stored once per shard."""

    shard: int
    worker: str
    outcomes: list[ExampleOutcome]
    aborted: bool = Field(default=False, description="The shard's own errors reached max_errors and it stopped")
    duration_s: float = 0.0
    usage: Usage | None = Field(default=None, description="LM usage of scoring this shard (None: not metered)")
