"""Tasks trust the job's stored state, not their arguments.

A step or finalize message is checked against what Redis holds before anything runs or is written: the
job exists, has no result yet and was not cancelled, the step index is in range, the previous step's record is present, and
a finalize comes only once every step has a record (or the job is failing or cancelled). A message that
fails a check is logged and dropped: a forged or stale message changes nothing.
"""

import logging

from btq.schemas import keys
from btq.schemas.result import StepOutcome
from btq.worker.state.store import JobStore

log = logging.getLogger(__name__)

_STOPPING = (StepOutcome.FAILED, StepOutcome.CANCELLED)


class MessageGuard:
    """Checks step and finalize messages against one job store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def step(self, job_id: object, index: object) -> str | None:
        """Return why a `btq.step(job_id, index)` message must be dropped, or None to run it."""
        if not isinstance(job_id, str) or not isinstance(index, int) or isinstance(index, bool):
            return f"malformed arguments ({type(job_id).__name__}, {type(index).__name__})"
        if not self.store.has_spec(job_id):
            return f"job {job_id} is unknown or expired"
        steps = len(self.store.spec(job_id).steps())
        if not 0 <= index <= steps:
            return f"step index {index} is out of range 0..{steps}"
        ended = self._ended(job_id)
        if ended is not None:
            return ended
        if index > 0 and self.store.step(job_id, index - 1) is None:
            return f"step {index - 1} of job {job_id} has no record yet"
        return None

    def _ended(self, job_id: str) -> str | None:
        if self.store.has_result(job_id):
            return f"job {job_id} already has its result"
        if self.store.is_cancelled(job_id):
            return f"job {job_id} was cancelled"  # it ends without this step (see Finalizer.finalize_if_idle)
        return None

    def chain_moved_on(self, job_id: str, index: int) -> bool:
        """True when the step after `index` already started elsewhere (or the job ended).

        A late duplicate delivery of a recorded step (a dead worker's message coming back after the
        visibility timeout) must not send a second copy of the rest of the chain, which would hold a
        worker slot waiting on every later step. When the next step has not started, the chain goes on:
        that is the delivery recovering a worker that died between storing the record and sending on.
        """
        if self.store.has_result(job_id):
            return True
        steps = len(self.store.spec(job_id).steps())
        if index >= steps:
            return False
        started = self.store.redis.exists(keys.attempts_key(job_id, index + 1), keys.step_key(job_id, index + 1))
        return bool(started)

    def finalize(self, job_id: object) -> str | None:
        """Return why a `btq.finalize(job_id)` message must be dropped, or None to run it."""
        if not isinstance(job_id, str):
            return f"malformed argument ({type(job_id).__name__})"
        if not self.store.has_spec(job_id):
            return f"job {job_id} is unknown or expired"
        if self.store.has_result(job_id):
            return f"job {job_id} already has its result"
        steps = len(self.store.spec(job_id).steps())
        records = self.store.steps(job_id, steps + 1)
        if len(records) == steps + 1 or self.store.is_cancelled(job_id):
            return None
        if any(r.outcome in _STOPPING for r in records):
            return None  # a failing job: later steps will never succeed
        return f"job {job_id} has records for {len(records)} of its {steps + 1} steps"


def drop(task: str, args: tuple[object, ...], reason: str) -> dict[str, str]:
    """Log a dropped message once and return the task's (small) return value."""
    log.warning("dropped %s%r: %s", task, args, reason)
    return {"dropped": reason, "task": task}
