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


class TraceOptions(WireModel):
    """What makes an evaluation a trace collection (dspy's `bootstrap_trace_data`), besides its metric.

    Each example then runs through dspy's patched forward: its prediction and the trace of predictor calls
    come back with its score, as the fine-tuning data is built from them.
    """

    has_metric: bool = Field(description="False when no metric was given (every example then scores True)")
    format_failure_score: JsonValue = Field(description="Score of an output the adapter could not parse")
    log_format_failures: bool = False
    capture_crashes: bool = False


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
    trace: TraceOptions | None = Field(
        default=None, description="Set when the call collects traces for fine-tuning instead of only scoring"
    )


class FailedOutput(WireModel):
    """dspy's `FailedPrediction`: the raw completion of an output the adapter could not parse."""

    completion_text: str | None = None
    format_reward: JsonValue = None


class TracedCall(WireModel):
    """One predictor call of a traced example: the predictor by name, its inputs and its output."""

    predictor: str = Field(description="The predictor's name in the program's `named_predictors()`")
    inputs: dict[str, JsonValue]
    outputs: dict[str, JsonValue] | None = Field(default=None, description="The output prediction's fields")
    failed: FailedOutput | None = Field(default=None, description="Set instead of `outputs` for a parse failure")


class ExampleOutcome(WireModel):
    """One example's `(prediction, score)`, or the error its program or metric raised."""

    prediction: dict[str, JsonValue] | None = None
    score: JsonValue = None
    error: str | None = None
    failed: FailedOutput | None = Field(default=None, description="Traced: the program's output failed to parse")
    trace: list[TracedCall] | None = Field(default=None, description="Traced: the example's predictor calls")


class ShardResult(VersionedModel):
    """A finished shard: one outcome per example in shard order, stored once per shard."""

    shard: int
    worker: str
    outcomes: list[ExampleOutcome]
    aborted: bool = Field(default=False, description="The shard's own errors reached max_errors and it stopped")
    duration_s: float = 0.0
    usage: Usage | None = Field(default=None, description="LM usage of scoring this shard (None: not metered)")
