"""The schema version top-level wire models carry, and the frozen bases they share."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1
"""Bumped on any change that an older reader could misinterpret."""


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields refused, JSON only."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionedModel(WireModel):
    """A top-level document (job, event, record, result): carries the schema version."""

    schema_version: Literal[1] = 1
