"""Redis key layout and task names: the one place every prefix and name is spelled.

Services in other languages read events and results through these keys, so they are part of the wire
contract and documented in README.md.
"""

PREFIX = "btq"

TASK_STEP = "btq.step"
TASK_FINALIZE = "btq.finalize"
TASK_EVALUATE = "btq.evaluate"

GLOBAL_EVENTS = f"{PREFIX}:events"
"""Stream of every job's events, capped by the worker's `global_stream_maxlen` setting."""

MANIFEST = f"{PREFIX}:manifest"
"""JSON RegistryManifest published by workers at start; the producer validates jobs against it."""

JOBS_INDEX = f"{PREFIX}:jobs"
"""Sorted set of job ids scored by submission time."""


RUNNING_STEPS = f"{PREFIX}:running"
"""Sorted set of the next step each unfinished job waits for, as `<job_id>:<index>` (index = steps + 1 is
its finalize), scored by the last sign of life: submission, the previous step's record, or the running
step's lease renewal. The sweeper scans it for steps whose lease lapsed (see `running_member`)."""


def running_member(job_id: str, index: int) -> str:
    """Return the member of `RUNNING_STEPS` for step `index` of `job_id`."""
    return f"{job_id}:{index}"


def parse_running_member(member: bytes | str) -> tuple[str, int] | None:
    """Return `(job_id, index)` of a `RUNNING_STEPS` member, or None if it is malformed."""
    text = member.decode() if isinstance(member, bytes) else member
    job_id, _, index = text.rpartition(":")
    return (job_id, int(index)) if job_id and index.isdigit() else None


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


def sweep_key(job_id: str, index: int, attempt: int) -> str:
    """Return the claim a sweeper takes (SET NX) before re-driving step `index` after delivery `attempt`."""
    return f"{PREFIX}:job:{job_id}:sweep:{index}:{attempt}"


def redrives_key(job_id: str, index: int) -> str:
    """Return the counter of re-drives of step `index` (the watchdog fails a job that keeps stalling)."""
    return f"{PREFIX}:job:{job_id}:redrives:{index}"


def emitted_key(job_id: str, index: int) -> str:
    """Return the marker set, atomically with the event, once step `index`'s outcome event was emitted."""
    return f"{PREFIX}:job:{job_id}:emitted:{index}"


def evaluation_key(job_id: str, request_id: str) -> str:
    """Return the list an evaluation's report is pushed to (the requester pops it, bounded)."""
    return f"{PREFIX}:job:{job_id}:evaluation:{request_id}"


def job_keys(job_id: str, steps: int) -> list[str]:
    """Return every key a job with `steps` strategy steps may own (for expiry and cleanup)."""
    parts = ["spec", "status", "result", "events", "cancel", "emitted:result"]
    keys = [job_key(job_id, p) for p in parts]
    for index in range(steps + 2):  # steps + 1 is the finalize, re-driven like a step
        keys += [
            step_key(job_id, index),
            attempts_key(job_id, index),
            emitted_key(job_id, index),
            redrives_key(job_id, index),
        ]
    return keys
