"""Redis key layout and task names: the one place every prefix and name is spelled.

Services in other languages read events and results through these keys, so they are part of the wire
contract and documented in README.md.
"""

PREFIX = "btq"

TASK_STEP = "btq.step"
TASK_FINALIZE = "btq.finalize"
TASK_EVALUATE = "btq.evaluate"

DEAD_LETTERS = f"{PREFIX}:dead-letters"
"""List of queue messages no worker could read (newest first, capped by `dead_letter_maxlen`): JSON
entries with `at`, `queue`, `reason` and the message's raw bytes in base64 (`raw_b64`)."""

GLOBAL_EVENTS = f"{PREFIX}:events"
"""Stream of every job's events, capped by the worker's `global_stream_maxlen` setting."""

MANIFEST = f"{PREFIX}:manifest"
"""JSON RegistryManifest published by workers at start; the producer validates jobs against it."""

JOBS_INDEX = f"{PREFIX}:jobs"
"""Sorted set of job ids scored by submission time."""


def job_key(job_id: str, part: str) -> str:
    """Return the key of one part (spec, status, result, events, cancel...) of a job."""
    return f"{PREFIX}:job:{job_id}:{part}"


def step_key(job_id: str, index: int) -> str:
    """Return the key holding the stored record of step `index` (0 is the baseline)."""
    return f"{PREFIX}:job:{job_id}:step:{index}"


def attempts_key(job_id: str, index: int) -> str:
    """Return the counter of deliveries of step `index`, used to cap redeliveries."""
    return f"{PREFIX}:job:{job_id}:attempts:{index}"


def lease_key(job_id: str, index: int) -> str:
    """Return the key of the lease held by the worker running step `index`."""
    return f"{PREFIX}:job:{job_id}:lease:{index}"


def evaluation_key(job_id: str, request_id: str) -> str:
    """Return the list an evaluation's report is pushed to (the requester pops it, bounded)."""
    return f"{PREFIX}:job:{job_id}:evaluation:{request_id}"


def job_keys(job_id: str, steps: int) -> list[str]:
    """Return every key a job with `steps` strategy steps may own (for expiry and cleanup)."""
    parts = ["spec", "status", "result", "events", "cancel"]
    keys = [job_key(job_id, p) for p in parts]
    for index in range(steps + 1):
        keys += [step_key(job_id, index), attempts_key(job_id, index)]
    return keys
