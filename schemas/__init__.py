"""The wire contract of bettertogether-queue: frozen, JSON-only, versioned pydantic models."""

# Installed as `btq.schemas` only (pyproject.toml maps the folder). Imported under its bare name from
# a checkout, it becomes an alias of `btq.schemas` (one copy of every module), with a DeprecationWarning.
if __name__ != "btq.schemas":
    from btq.schemas.checkout_alias import alias_bare_package

    alias_bare_package(__name__, "btq.schemas")


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
