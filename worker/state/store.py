"""The job store in Redis: spec, status, step records (write-once), attempts, cancel flag, result."""

import time
from collections.abc import Callable

import redis

from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import JobNotFoundError
from btq.schemas.job import JobSpec
from btq.schemas.result import EvaluationReport, JobResult, JobState, StepOutcome, StepRecord

# Write-once record + the job's frontier moved to the next step + status, in one atomic step: a crash
# can never leave a record whose job still looks stuck on the step (the sweeper would re-drive it). A
# record stored late (a step that found the cancel flag after the canceller ended the job) never moves a
# `cancelling` or final state back to `running`.
_PUT_STEP = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('zrem', KEYS[2], ARGV[2])
redis.call('zadd', KEYS[2], ARGV[4], ARGV[3])
local state = redis.call('hget', KEYS[3], 'state')
if state == 'queued' or state == 'running' or not state then redis.call('hset', KEYS[3], 'state', 'running') end
redis.call('hset', KEYS[3], 'updated_at', ARGV[4])
if ARGV[6] == '1' then redis.call('hset', KEYS[3], 'steps_done', ARGV[5]) end
return 1
"""

# Only a queued job becomes running: a cancelling or ended job keeps its state.
_MARK_RUNNING = """
if redis.call('hget', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('hset', KEYS[1], 'state', 'running', 'updated_at', ARGV[1])
return 1
"""


class JobStore:
    """Reads and writes one Redis database. Step records and results are written once (SET NX)."""

    def __init__(self, client: redis.Redis, job_ttl_s: int, redact: Callable[[str], str] | None = None) -> None:
        self.redis = client
        self.job_ttl_s = job_ttl_s
        # Records carry exception messages, which may quote a secret a provider echoed back.
        self.redact = redact or (lambda text: text)

    def spec(self, job_id: str) -> JobSpec:
        """Return the job's normalized spec."""
        raw = self.redis.get(keys.job_key(job_id, "spec"))
        if raw is None:
            raise JobNotFoundError(job_id)
        return decode(JobSpec, raw)

    def step(self, job_id: str, index: int) -> StepRecord | None:
        """Return the stored record of step `index`, if any."""
        raw = self.redis.get(keys.step_key(job_id, index))
        return decode(StepRecord, raw) if raw is not None else None

    def steps(self, job_id: str, count: int) -> list[StepRecord]:
        """Return the stored records of steps 0..count-1 that exist, in order."""
        raws = self.redis.mget([keys.step_key(job_id, i) for i in range(count)])
        return [decode(StepRecord, raw) for raw in raws if raw is not None]

    def put_step(self, job_id: str, record: StepRecord) -> tuple[StepRecord, bool]:
        """Store `record` unless the step already has one; return the stored record and whether ours won."""
        key = keys.step_key(job_id, record.index)
        won = self.redis.eval(
            _PUT_STEP,
            3,
            key,
            keys.RUNNING_STEPS,
            keys.job_key(job_id, "status"),
            self.redact(record.model_dump_json()),
            keys.running_member(job_id, record.index),
            keys.running_member(job_id, record.index + 1),  # index steps + 1 is the finalize
            time.time(),
            record.index,
            # A step skipped after a failure or cancelled did not run: `cancelled, 7/25 steps`, not 25/25.
            "1" if record.outcome in (StepOutcome.SUCCEEDED, StepOutcome.FAILED) else "0",
        )
        if won:
            return record, True
        existing = self.step(job_id, record.index)
        assert existing is not None  # NX failed, so the key exists
        return existing, False

    def claim_attempt(self, job_id: str, index: int) -> int:
        """Count one more delivery of step `index` and return the count (1 on first delivery)."""
        key = keys.attempts_key(job_id, index)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.job_ttl_s)
        count, _ = pipe.execute()
        return int(count)

    def is_cancelled(self, job_id: str) -> bool:
        """True once a cancel was requested."""
        return bool(self.redis.exists(keys.job_key(job_id, "cancel")))

    def set_state(self, job_id: str, state: JobState) -> None:
        """Record the job's state."""
        self.redis.hset(keys.job_key(job_id, "status"), mapping={"state": state.value, "updated_at": time.time()})

    def mark_running(self, job_id: str) -> None:
        """Set a queued job's state to running (when its first step starts); other states are kept."""
        self.redis.eval(_MARK_RUNNING, 1, keys.job_key(job_id, "status"), time.time())

    def has_result(self, job_id: str) -> bool:
        """True once the job's result is stored."""
        return bool(self.redis.exists(keys.job_key(job_id, "result")))

    def has_spec(self, job_id: str) -> bool:
        """True while the job's spec is stored (submitted and not expired)."""
        return bool(self.redis.exists(keys.job_key(job_id, "spec")))

    def result(self, job_id: str) -> JobResult:
        """Return the job's stored result (JobNotFoundError while it has none)."""
        raw = self.redis.get(keys.job_key(job_id, "result"))
        if raw is None:
            raise JobNotFoundError(f"job {job_id} has no result yet")
        return decode(JobResult, raw)

    def push_evaluation(self, job_id: str, request_id: str, report: EvaluationReport) -> None:
        """Hand an evaluation report to its requester (kept one hour if nobody pops it)."""
        key = keys.evaluation_key(job_id, request_id)
        pipe = self.redis.pipeline()
        pipe.rpush(key, self.redact(report.model_dump_json()))
        pipe.expire(key, 3600)
        pipe.execute()

    def put_result(self, result: JobResult, steps: int) -> tuple[JobResult, bool]:
        """Store the result once, set the final state, and start the retention clock on every key."""
        key = keys.job_key(result.job_id, "result")
        won = bool(self.redis.set(key, self.redact(result.model_dump_json()), nx=True))
        if not won:
            raw = self.redis.get(key)
            assert raw is not None
            return decode(JobResult, raw), False
        self.set_state(result.job_id, result.state)
        pipe = self.redis.pipeline()
        pipe.zrem(keys.RUNNING_STEPS, *[keys.running_member(result.job_id, i) for i in range(steps + 2)])
        for k in keys.job_keys(result.job_id, steps):
            pipe.expire(k, self.job_ttl_s)
        # The index would otherwise grow forever; entries older than the retention have no keys left.
        pipe.zremrangebyscore(keys.JOBS_INDEX, "-inf", time.time() - self.job_ttl_s)
        pipe.execute()
        return result, True
