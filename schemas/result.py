"""Stored step records, job status and the final job result."""

from enum import StrEnum

from pydantic import Field, JsonValue

from btq.schemas.errors import ErrorRecord
from btq.schemas.usage import Usage
from btq.schemas.version import VersionedModel, WireModel


class StepOutcome(StrEnum):
    """How a step ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class RngReplay(WireModel):
    """BetterTogether's generator as `random.Random(seed)` after shuffling lists of these lengths, in order."""

    seed: int
    shuffles: list[int] = Field(default_factory=list)
    order: int | None = Field(
        default=None,
        description="When set, the trainset order is `range(order)` shuffled by these shuffles (`train_order` is empty)",
    )


class StepRecord(VersionedModel):
    """What a step stored: its candidate and everything the next step needs to continue exactly.

    `rng` is the generator after this step's shuffle, as its seed and the shuffles done (replayed to the
    same state); `rng_state` is `random.Random.getstate()` instead, in records of older versions or when the
    generator was used for more than shuffles. `train_order` is the current trainset order (indices into
    the post-split trainset), empty when `rng.order` says the same replay rebuilds it, so step k+1 shuffles
    the same list with the same generator as the in-process run does.
    """

    index: int
    strategy: str
    optimizer_key: str | None
    outcome: StepOutcome
    score: float | None = None
    program_state: dict[str, JsonValue] | None = None
    rng: RngReplay | None = None
    rng_state: list[JsonValue] = Field(default_factory=list)
    train_order: list[int]
    worker: str | None = None
    attempt: int = 1
    started_at: float
    finished_at: float
    error: ErrorRecord | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    usage: Usage | None = Field(default=None, description="LM usage of the step, its shards on any worker included")


class Candidate(WireModel):
    """One evaluated program, as in `BetterTogether`'s `candidate_programs`."""

    strategy: str
    score: float | None
    step_index: int
    program_state: dict[str, JsonValue]


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    """A cancel was requested; running steps are being interrupted, the result follows."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once the job has a result or will never get one."""
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


class JobStatus(VersionedModel):
    """A job's current state and progress."""

    job_id: str
    state: JobState
    steps_total: int
    steps_done: int
    submitted_at: float
    updated_at: float


class JobResult(VersionedModel):
    """The final result: candidates ranked exactly as `dspy.BetterTogether` ranks them.

    `best` is the highest score (earlier wins ties), or the latest program when there is no valset.
    `state` is `succeeded` even when a step failed (dspy returns the best so far and sets the flag);
    `failed` means no candidate exists (the baseline itself could not run).
    """

    job_id: str
    state: JobState
    strategy: str
    seed: int
    candidates: list[Candidate]
    best: Candidate | None
    flag_compilation_error_occurred: bool
    error: ErrorRecord | None = None
    finished_at: float
    detail: dict[str, JsonValue] = Field(default_factory=dict)
    usage: Usage | None = Field(default=None, description="LM usage of the whole job (the sum of its steps)")
    step_usage: dict[int, Usage] = Field(default_factory=dict, description="LM usage by step index (0: baseline)")

    @property
    def failed_steps(self) -> int:
        """How many steps failed: dspy stops at the first failure, so 0 or 1."""
        return 1 if self.flag_compilation_error_occurred else 0

    @property
    def state_label(self) -> str:
        """The state as a person should read it: `succeeded, 1 step failed` when a step failed.

        Every place that shows a job's final state (CLI tables, `watch`, the dashboard) uses this, so a
        job whose step crashed never reads as a plain success.
        """
        failed = self.failed_steps
        if failed and self.state is JobState.SUCCEEDED:
            return f"{self.state.value}, {failed} step failed"
        return self.state.value


class EvaluationReport(VersionedModel):
    """Scores of a finished job's candidates on a registered dataset split (e.g. a held-out test set)."""

    job_id: str
    dataset: str
    split: str
    scores: dict[str, float | None] = Field(description="candidate step index -> score (percent)")
    worker: str | None = None
    error: ErrorRecord | None = None
