"""The wire contract of bettertogether-queue: frozen, JSON-only, versioned pydantic models."""

# The package is installed as `btq.schemas` (pyproject.toml maps it). Imported from the repository's
# top-level folder under its bare name it would be a second copy of every module (two Celery apps, two
# registries) and would shadow PyPI's unrelated `schemas`: refuse, naming the right import.
if __name__ != "btq.schemas":
    raise ImportError(f"import btq.schemas, not {__name__}: bettertogether-queue installs its packages under btq.*")


from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType, JobEvent
from btq.schemas.job import (
    DatasetRef,
    ExampleRecord,
    JobSpec,
    LiteLLMSpec,
    OptimizerSpec,
    ProgramRef,
)
from btq.schemas.manifest import OptimizerSignature, RegistryManifest
from btq.schemas.result import Candidate, EvaluationReport, JobResult, JobState, JobStatus, StepOutcome, StepRecord
from btq.schemas.version import SCHEMA_VERSION

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
