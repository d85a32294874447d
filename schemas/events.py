"""Events: one per lifecycle change of a job or a step, appended to Redis Streams."""

from enum import StrEnum

from pydantic import Field, JsonValue

from btq.schemas.errors import ErrorRecord
from btq.schemas.version import VersionedModel


class EventType(StrEnum):
    """What happened."""

    JOB_SUBMITTED = "job.submitted"
    JOB_REJECTED = "job.rejected"
    STEP_STARTED = "step.started"
    STEP_PROGRESS = "step.progress"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    CANCEL_REQUESTED = "job.cancel_requested"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for the events that end a job."""
        return self in {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}


class JobEvent(VersionedModel):
    """One event. `step_index` 0 is the baseline evaluation; step k runs the k-th strategy key."""

    type: EventType
    job_id: str
    at: float = Field(description="Unix time (s) when the event was emitted")
    steps_total: int
    step_index: int | None = None
    strategy: str | None = Field(default=None, description="The strategy so far, e.g. 'p -> w'")
    optimizer_key: str | None = None
    score: float | None = None
    duration_s: float | None = None
    worker: str | None = None
    attempt: int | None = None
    error: ErrorRecord | None = None
    detail: dict[str, JsonValue] = Field(default_factory=dict)
