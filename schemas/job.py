"""The job spec: what a service submits. It mirrors `dspy.BetterTogether.compile()`.

Fields that `compile()` receives as Python objects (program, LM, metric, optimizers, teacher) are named
references to entries the workers registered; everything else keeps dspy's names, defaults and rules.
"""

from typing import Annotated, Any

from pydantic import Field, JsonValue, field_validator, model_validator

from btq.schemas.payload import payload_error
from btq.schemas.secrets import credential_paths
from btq.schemas.usage import Budget
from btq.schemas.version import VersionedModel, WireModel

STRATEGY_SEPARATOR = " -> "
"""The separator dspy.BetterTogether splits strategies on (exactly, spaces included)."""

DEFAULT_OPTIMIZER_KEYS = ("p", "w")
"""Keys available when a job names no optimizers: dspy's defaults, p and w."""

SECRET_LM_KEYS = frozenset({"api_key", "api_base", "base_url", "model_list", "engine", "provider"})
"""LM settings a payload may not carry: credentials and endpoints come from worker settings."""

REF_MARKERS = {"$metric": "metrics", "$lm": "lms", "$program": "programs"}
"""JSON reference markers in optimizer kwargs and compile args, and the registry section each names."""

ExampleRecord = dict[str, JsonValue]
"""One example as a JSON object; `JobSpec.input_keys` says which fields are inputs."""

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/@+-]+$")]


class ProgramRef(WireModel):
    """A registered program factory and, optionally, a `Module.dump_state()` to start from."""

    name: Name
    state: dict[str, JsonValue] | None = None


class LiteLLMSpec(WireModel):
    """An LM named by a LiteLLM model string; credentials come from the worker's settings."""

    model: Annotated[str, Field(min_length=3, pattern=r"^[^/\s]+/\S+$")]
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("kwargs")
    @classmethod
    def _no_secrets(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for path, reason in credential_paths(value):
            raise ValueError(f"{path}: {reason}")
        return value


class OptimizerSpec(WireModel):
    """An optimizer: a class name from the workers' allowlist and its constructor kwargs as JSON.

    A kwarg value `{"$metric": name}`, `{"$lm": name}` or `{"$program": name}` refers to a registered
    entry. When the class takes `metric` and none is given, the job's metric is used.
    """

    optimizer: Name
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)


class DatasetRef(WireModel):
    """One split of a registered dataset."""

    dataset: Name
    split: Name


ExampleSource = list[ExampleRecord] | DatasetRef


class JobSpec(VersionedModel):
    """A BetterTogether job; field names and defaults follow `BetterTogether.compile()`."""

    program: ProgramRef
    lm: Name | LiteLLMSpec
    metric: Name
    optimizers: dict[Name, OptimizerSpec] = Field(default_factory=dict)
    strategy: str = "p -> w -> p"
    trainset: ExampleSource
    valset: ExampleSource | None = None
    input_keys: list[str] | None = None
    teacher: ProgramRef | list[ProgramRef] | None = None
    num_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    max_errors: Annotated[int, Field(ge=0)] | None = None
    provide_traceback: bool | None = None
    seed: int | None = None
    valset_ratio: float = 0.1
    shuffle_trainset_between_steps: bool = True
    optimizer_compile_args: dict[str, dict[str, JsonValue]] | None = None
    cache: bool = Field(
        default=True,
        description="Use the fleet's shared LM-call cache (a re-run or a redelivered step replays finished calls)",
    )

    budget: Budget | None = Field(
        default=None,
        description="Limits on LM calls, tokens and dollars across the fleet; reaching one fails the running step",
    )

    prompt_steps_use_student_lm: bool = False
    """Not a `compile()` argument: run each optimizer step with the student's current LM (the fine-tuned one
    after `w`) as `dspy.settings.lm`, so prompt optimizers bootstrap and score with it (as in the paper).
    Off, the job equals `dspy.BetterTogether`, whose prompt steps after `w` bootstrap with the base LM."""

    @model_validator(mode="before")
    @classmethod
    def _payload_is_safe(cls, data: Any) -> Any:
        error = payload_error(data)
        if error is not None:
            raise ValueError(error)
        return data

    @field_validator("trainset")
    @classmethod
    def _trainset_not_empty(cls, value: ExampleSource) -> ExampleSource:
        if isinstance(value, list) and not value:
            raise ValueError("trainset cannot be empty")
        return value

    @field_validator("valset_ratio")
    @classmethod
    def _ratio_in_range(cls, value: float) -> float:
        if value < 0 or value >= 1:
            raise ValueError(f"valset_ratio must be in range [0, 1), got {value}")
        return value

    @field_validator("strategy")
    @classmethod
    def _strategy_not_empty(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("strategy cannot be empty")
        return value

    @model_validator(mode="after")
    def _keys_are_known(self) -> "JobSpec":
        known = self.optimizer_keys()
        invalid = [s for s in self.steps() if s not in known]
        if invalid:
            raise ValueError(f"strategy: Strategy contains invalid optimizer keys: {invalid}. Valid keys are: {known}")
        for key, args in (self.optimizer_compile_args or {}).items():
            if key not in known:
                raise ValueError(f"optimizer_compile_args: Invalid optimizer key '{key}'. Valid keys are: {known}")
            if "student" in args:
                raise ValueError(
                    f"optimizer_compile_args.{key}: 'student' is not allowed in optimizer_compile_args for "
                    f"optimizer '{key}'. The same student is used throughout compilation."
                )
        return self

    def optimizer_keys(self) -> list[str]:
        """Return the keys a strategy may use: the job's optimizers, or dspy's defaults p and w."""
        return list(self.optimizers) if self.optimizers else list(DEFAULT_OPTIMIZER_KEYS)

    def steps(self) -> list[str]:
        """Return the strategy split exactly as dspy.BetterTogether splits it."""
        return self.strategy.split(STRATEGY_SEPARATOR)

    def strategy_prefix(self, steps_done: int) -> str:
        """Return the strategy string of the candidate after `steps_done` steps ('' is the baseline)."""
        return STRATEGY_SEPARATOR.join(self.steps()[:steps_done])

    def teachers(self) -> list[ProgramRef]:
        """Return the teacher references as a list (dspy accepts one module or a list)."""
        if self.teacher is None:
            return []
        return self.teacher if isinstance(self.teacher, list) else [self.teacher]

    def with_seed(self, seed: int) -> "JobSpec":
        """Return a copy of this spec with a concrete seed."""
        data: dict[str, Any] = self.model_dump(mode="json")
        data["seed"] = seed
        return JobSpec.model_validate(data)
