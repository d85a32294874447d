"""Redis key layout and task names: the one place every prefix and name is spelled.

Services in other languages read events and results through these keys, so they are part of the wire
contract and documented in README.md.
"""

PREFIX = "btq"

TASK_STEP = "btq.step"
TASK_FINALIZE = "btq.finalize"
TASK_EVALUATE = "btq.evaluate"
TASK_SHARD = "btq.shard"

EVAL_QUEUE_SUFFIX = ".eval"
"""Shard tasks go to `<queue>.eval`; every worker consumes it beside its step queue."""

DEAD_LETTERS = f"{PREFIX}:dead-letters"
"""List of queue messages no worker could read (newest first, capped by `dead_letter_maxlen`): JSON
entries with `at`, `queue`, `reason` and the message's raw bytes in base64 (`raw_b64`)."""

GLOBAL_EVENTS = f"{PREFIX}:events"
"""Stream of every job's events, capped by the worker's `global_stream_maxlen` setting."""

WORKERS = f"{PREFIX}:workers"
"""Sorted set of worker names scored by their last heartbeat (unix time); stale names are pruned.

Each name's record is `worker_key(name, "manifest")`: a `RegistryManifest` JSON with the worker's pool
size and expiry, set with a Redis expiry and renewed every heartbeat (the fleet's one heartbeat)."""

INTAKE = f"{PREFIX}:intake"
"""Stream services in any language submit jobs to (fields `job` and optional `submission_id`)."""

INTAKE_GROUP = "btq-intake"
"""Consumer group every intake process reads `INTAKE` with."""

LM_CACHE = f"{PREFIX}:lmcache"
"""Prefix of the shared LM-call cache entries `<prefix>:<sha256>` (JSON values with a TTL)."""

LM_CACHE_INDEX = f"{PREFIX}:lmcache:index"
"""Sorted set of cache entry keys by insertion time, to cap the cache's size."""

LM_CACHE_FLIGHT = f"{PREFIX}:lmflight"
"""Prefix of claims `<prefix>:<sha256>` on making an uncached LM call (single flight; a short TTL)."""

RATE_LIMIT = f"{PREFIX}:ratelimit"
"""Prefix of the fleet's LM rate-limit buckets `<prefix>:<limit name>:requests|tokens` (theoretical arrival
times in ms, shared by every worker; see `lm_rate_limits` in the worker settings)."""

JOBS_INDEX = f"{PREFIX}:jobs"
"""Sorted set of job ids scored by submission time."""


RUNNING_STEPS = f"{PREFIX}:running"
"""Sorted set of the next step each unfinished job waits for, as `<job_id>:<index>` (index = steps + 1 is
its finalize), scored by the last sign of life: submission, the previous step's record, or the running
step's lease renewal. The sweeper scans it for steps whose lease lapsed (see `running_member`)."""


CANCELLING = f"{PREFIX}:cancelling"
"""Sorted set of cancelled jobs without a result yet, scored by the cancel's time: every worker's canceller
thread finalizes such a job as soon as none of its steps is held by a live holder (see
`worker/celery/canceller.py`), so a job whose steps still wait in the queue ends at once."""


def terminal_marker(job_id: str) -> str:
    """Return the marker set, atomically with the event, once the job's terminal event was emitted.

    Nothing is appended to the job's streams after it: the event emitter checks it on every emit.
    """
    return job_key(job_id, "emitted:result")


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


def eval_queue(queue: str) -> str:
    """Return the queue shard tasks of jobs on `queue` are sent to."""
    return f"{queue}{EVAL_QUEUE_SUFFIX}"


def eval_key(job_id: str, eval_id: str, part: str) -> str:
    """Return the key of one part (request, todo, results, notify, lease:<n>) of a sharded evaluation."""
    return f"{PREFIX}:job:{job_id}:eval:{eval_id}:{part}"


def step_evals_key(job_id: str, index: int) -> str:
    """Return the set of the ids of the sharded evaluations step `index` published (dropped with them)."""
    return f"{PREFIX}:job:{job_id}:evals:{index}"


EVAL_PARTS = ("request", "todo", "results", "notify")
"""The parts of a sharded evaluation dropped once its step's record is stored (leases lapse by themselves)."""


def worker_key(name: str, part: str) -> str:
    """Return the key of one part ('manifest', 'running') of a live worker's presence; both expire."""
    return f"{PREFIX}:worker:{name}:{part}"


def submission_key(submission_id: str) -> str:
    """Return the hash holding the outcome (accepted with its job id, or rejected) of an intake submission."""
    return f"{PREFIX}:submission:{submission_id}"


def profile_queue(queue: str, profile: str) -> str:
    """Return the Celery queue of the workers whose registry has `profile` (see RegistryManifest.profile)."""
    return f"{queue}.profile.{profile}"


def held_out_key(job_id: str) -> str:
    """Return the hash of a job's held-out scores: field `<dataset>/<split>` -> EvaluationReport JSON.

    The producer that asked for an evaluation stores its report there, expiring with the job's status.
    """
    return f"{PREFIX}:job:{job_id}:held_out"


def usage_key(job_id: str, index: int) -> str:
    """Hash of LM usage counters of step `index` (its shards on any worker included)."""
    return f"{PREFIX}:job:{job_id}:usage:{index}"


def spend_key(job_id: str) -> str:
    """Hash of the job's LM usage counters across steps, with its budget's reservations and reached limit.

    Fields are `Usage` field names (money in nano-dollars), `reserved` and, once spent, `exhausted`.
    """
    return f"{PREFIX}:job:{job_id}:spend"


def job_keys(job_id: str, steps: int) -> list[str]:
    """Return every key a job with `steps` strategy steps may own (for expiry and cleanup)."""
    parts = ["spec", "status", "result", "events", "cancel", "held_out", "emitted:result"]  # the last: terminal_marker
    keys = [job_key(job_id, p) for p in parts] + [spend_key(job_id)]
    for index in range(steps + 2):  # steps + 1 is the finalize, re-driven like a step
        keys += [
            step_key(job_id, index),
            attempts_key(job_id, index),
            emitted_key(job_id, index),
            redrives_key(job_id, index),
            usage_key(job_id, index),
            step_evals_key(job_id, index),
        ]
    return keys


METRICS = f"{PREFIX}:metrics"
"""Hash of the fleet's counters since the database began (field = a `WorkerCount` name, value a number):
workers add to it with HINCRBYFLOAT, `/metrics` reads it at scrape time. Per worker the same counts live
under `worker_key(name, "metrics")` (expiring with `METRICS_WORKER_TTL_S`), for a worker's own endpoint."""

METRICS_WORKER_TTL_S = 24 * 3600

MLFLOW_CURSOR = f"{PREFIX}:mlflow:cursor"
"""The `btq mlflow` exporter's position in `GLOBAL_EVENTS` (a stream entry id), so it resumes after a restart."""
