"""The wire contract of bettertogether-queue: frozen, JSON-only, versioned pydantic models."""

from schemas.errors import ErrorRecord
from schemas.events import EventType, JobEvent
from schemas.job import (
    DatasetRef,
    ExampleRecord,
    JobSpec,
    LiteLLMSpec,
    OptimizerSpec,
    ProgramRef,
)
from schemas.manifest import OptimizerSignature, RegistryManifest
from schemas.result import Candidate, EvaluationReport, JobResult, JobState, JobStatus, StepOutcome, StepRecord
from schemas.version import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Candidate",
    "DatasetRef",
    "ErrorRecord",
    "EvaluationReport",
    "EventType",
    "ExampleRecord",
    "JobEvent",
    "JobResult",
    "JobSpec",
    "JobState",
    "JobStatus",
    "LiteLLMSpec",
    "OptimizerSignature",
    "OptimizerSpec",
    "ProgramRef",
    "RegistryManifest",
    "StepOutcome",
    "StepRecord",
]
