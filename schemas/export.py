"""JSON Schema export, so services in other languages can build and validate jobs and read events."""

import json
from typing import Any

from pydantic import BaseModel

from btq.schemas.events import JobEvent
from btq.schemas.intake import SubmissionStatus
from btq.schemas.job import JobSpec
from btq.schemas.result import JobResult, JobStatus

EXPORTED: dict[str, type[BaseModel]] = {
    "job": JobSpec,
    "event": JobEvent,
    "result": JobResult,
    "status": JobStatus,
    "submission": SubmissionStatus,
}


def json_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema of one exported model ('job', 'event', 'result', 'status', 'submission')."""
    return EXPORTED[name].model_json_schema(mode="validation")


def json_schema_text(name: str | None = None) -> str:
    """Return one schema, or all of them keyed by name, as indented JSON."""
    if name is not None:
        return json.dumps(json_schema(name), indent=2)
    return json.dumps({key: json_schema(key) for key in EXPORTED}, indent=2)
