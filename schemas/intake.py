"""The intake contract: how a service in any language submits a job with one stream entry.

A submission is one entry on the Redis Stream `keys.INTAKE`:

- field `job` (required): the job spec as JSON text, the same document `btq submit` reads
  (`btq schema job`);
- field `submission_id` (optional): an id the client chooses, 1-128 characters of `A-Z a-z 0-9 . _ : -`;
  without it the entry id XADD returned is the submission id.

The outcome is written once to the hash `keys.submission_key(submission_id)` (a `SubmissionStatus`).
"""

import re
from enum import StrEnum

from btq.schemas.version import VersionedModel

SUBMISSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""What a client-chosen submission id may look like (it becomes part of a Redis key)."""

ENTRY_FIELDS = frozenset({"job", "submission_id"})
"""The fields an intake entry may carry."""


class SubmissionState(StrEnum):
    """What the intake decided."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SubmissionStatus(VersionedModel):
    """The outcome of one submission; `field`/`message` are those `btq submit` prints for a refused job."""

    submission_id: str
    state: SubmissionState
    job_id: str
    field: str | None = None
    message: str | None = None
    at: float
