"""The sweeper: every worker looks, every `sweep_interval_s`, for steps whose worker is gone, and re-drives them.

Recovery is driven by step leases, not by the broker's visibility timeout. `keys.RUNNING_STEPS` holds
the next step of every unfinished job with its last sign of life (submission, previous record, lease
renewal). A step is lost when its heartbeat is older than the lease TTL, its lease is gone and it has no
record, and either it had started (its worker died or lost Redis) or nothing waits in the queue (its
message was lost) or the job made no progress for `job_stall_timeout_s` (the job watchdog). A lost step
is re-driven exactly once per delivery attempt: the sweeper that wins `SET NX` on the step's sweep key
sends the step with the rest of the job's chain (later steps and finalize), as the producer did. A step
that keeps stalling without ever starting is recorded failed with the reason, and the job finalizes.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

import redis

from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.errors import ErrorRecord
from btq.schemas.job import JobSpec
from btq.schemas.result import StepOutcome
from btq.worker.settings import WorkerSettings
from btq.worker.state.store import JobStore
from btq.worker.steps.records import record_without_running

log = logging.getLogger(__name__)

Redrive = Callable[[str, int, int], None]
"""Sends step `index` of a job with `steps` strategy steps, followed by the rest of its chain."""


class Sweeper:
    """Finds lost steps in one Redis database and re-drives them through `redrive`."""

    def __init__(
        self,
        client: redis.Redis,
        settings: WorkerSettings,
        redrive: Redrive,
        worker: str,
    ) -> None:
        self.redis = client
        self.store = JobStore(client, settings.job_ttl_s)
        self.settings = settings
        self.redrive = redrive
        self.worker = worker

    def sweep_once(self) -> list[tuple[str, int]]:
        """Re-drive every lost step found now; return `(job_id, index)` of those this call re-drove."""
        now = time.time()
        stale = cast(
            list[tuple[bytes, float]],
            self.redis.zrangebyscore(keys.RUNNING_STEPS, "-inf", now - self.settings.step_lease_ttl_s, withscores=True),
        )
        if not stale:
            return []
        redriven = []
        for member, heartbeat in stale:
            parsed = keys.parse_running_member(member)
            if parsed is None:
                self.redis.zrem(keys.RUNNING_STEPS, member)
                continue
            job_id, index = parsed
            lost = self._lost(member, job_id, index, now - heartbeat, self._queue_empty(job_id))
            if lost is not None and self._redrive(job_id, index, *lost, age_s=now - heartbeat):
                redriven.append((job_id, index))
        return redriven

    def _queue_empty(self, job_id: str) -> bool:
        # Redis broker: priority-0 messages wait in the list named like the job's queue (its registry
        # profile's). A broker elsewhere needs its own depth here; a wrong "empty" only costs a duplicate
        # message, which leases and the message guard absorb.
        raw = self.redis.hget(keys.job_key(job_id, "status"), "queue")
        queue = raw.decode() if isinstance(raw, bytes) else self.settings.queue
        return int(self.redis.llen(queue)) == 0

    def _lost(self, member: bytes, job_id: str, index: int, age_s: float, queue_empty: bool) -> tuple[int, int] | None:
        """Return `(attempt, steps)` when step `index` (steps + 1: finalize) of `job_id` is lost, else None."""
        raw_spec = self.redis.get(keys.job_key(job_id, "spec"))
        if raw_spec is None or self.store.has_result(job_id):
            self.redis.zrem(keys.RUNNING_STEPS, member)  # expired or finished: nothing to recover
            return None
        steps = len(decode(JobSpec, raw_spec).steps())
        if index > steps + 1:
            return None
        if index <= steps and (
            self.redis.exists(keys.step_key(job_id, index)) or self.redis.exists(keys.lease_key(job_id, index))
        ):
            return None  # recorded, or a live holder renews its lease
        attempt = int(self.redis.get(keys.attempts_key(job_id, index)) or 0)
        if attempt >= 1 or queue_empty or age_s > self.settings.job_stall_timeout_s:
            return attempt, steps
        return None  # never started and messages still wait in the queue: it is just queued

    def _redrive(self, job_id: str, index: int, attempt: int, steps: int, *, age_s: float) -> bool:
        """Claim the re-drive of this delivery attempt (one sweeper wins) and send the step again."""
        claim_ttl_s = max(1, int(self.settings.job_stall_timeout_s))
        if not self.redis.set(keys.sweep_key(job_id, index, attempt), self.worker, nx=True, ex=claim_ttl_s):
            return False  # another sweeper re-drove this attempt
        redrives = self._count_redrive(job_id, index)
        if index <= steps and attempt == 0 and redrives > self.settings.max_deliveries_per_step:
            self._fail_stalled(job_id, index, redrives)
            self.redrive(job_id, index + 1, steps)
            return True
        log.warning(
            "re-driving %s %d of job %s (delivery %d lost: %s, %.0f s without a sign of life)",
            "step" if index <= steps else "finalize",
            index,
            job_id,
            attempt,
            "lease lapsed" if attempt else "message lost",
            age_s,
        )
        self.redrive(job_id, index, steps)
        return True

    def _count_redrive(self, job_id: str, index: int) -> int:
        pipe = self.redis.pipeline()
        pipe.incr(keys.redrives_key(job_id, index))
        pipe.expire(keys.redrives_key(job_id, index), self.settings.job_ttl_s)
        count, _ = pipe.execute()
        return int(count)

    def _fail_stalled(self, job_id: str, index: int, redrives: int) -> None:
        """Record step `index` as failed: its messages were lost `redrives` times without it ever starting."""
        spec = self.store.spec(job_id)
        previous = self.store.step(job_id, index - 1) if index else None
        message = (
            f"step {index} never started: re-driven {redrives - 1} times after "
            f"{self.settings.job_stall_timeout_s:.0f} s without progress"
        )
        log.error("job %s: %s; failing the job", job_id, message)
        error = ErrorRecord(type="JobStalledError", message=message)
        record = record_without_running(
            spec, index, previous, StepOutcome.FAILED, worker=self.worker, attempt=0, error=error
        )
        self.store.put_step(job_id, record)


def run_forever(sweeper: Sweeper, interval_s: float, stop: threading.Event) -> None:
    """Sweep every `interval_s` until `stop` is set; a Redis outage is logged once and retried with backoff."""
    delay_s = interval_s
    failing = False
    while not stop.wait(delay_s):
        try:
            sweeper.sweep_once()
        except redis.RedisError as exc:
            if not failing:
                log.warning("sweeper: Redis unavailable (%s); retrying with backoff", exc)
            failing, delay_s = True, min(delay_s * 2, 4 * interval_s)
            continue
        except Exception:  # a bug in one sweep must not end recovery for the process's lifetime
            log.exception("sweeper: sweep failed")
        if failing:
            log.warning("sweeper: Redis is back")
        failing, delay_s = False, interval_s


def start(sweeper: Sweeper, interval_s: float) -> threading.Event:
    """Start the sweeper thread (a daemon); set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run_forever, args=(sweeper, interval_s, stop), name="btq-sweeper", daemon=True).start()
    return stop
