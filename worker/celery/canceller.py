"""The canceller: every worker's main process ends cancelled jobs at once, whatever the queue holds.

A cancel sets the job's flag and adds the job to `keys.CANCELLING`. Steps that run stop through their
own polled check; steps still waiting in the queue would otherwise end the job only when their messages
are delivered, behind every busy worker. This thread, in the main process (never busy with a task),
looks every `cancel_poll_interval_s` and finalizes each cancelled job none of whose steps is held by a
live holder. Several workers may race on the same job: the result is stored with `SET NX` and the
terminal event with its marker in one Lua call, so the job ends once. Step messages delivered later
find the result and are dropped without work.
"""

import logging
import threading

import redis

from btq.schemas import keys
from btq.schemas.exceptions import JobNotFoundError
from btq.worker.steps.finalizer import Finalizer

log = logging.getLogger(__name__)


class Canceller:
    """Finalizes the cancelled jobs of one Redis database that no live holder is working on."""

    def __init__(self, client: redis.Redis, finalizer: Finalizer) -> None:
        self.redis = client
        self.finalizer = finalizer

    def sweep_once(self) -> list[str]:
        """Finalize every idle cancelled job found now; return the ids this call finalized."""
        ended = []
        for raw in self.redis.zrange(keys.CANCELLING, 0, -1):
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                done = self.finalizer.store.has_result(job_id) or self.finalizer.finalize_if_idle(job_id) is not None
            except JobNotFoundError:  # expired, or flushed with its Redis: nothing to end
                done = True
            if done:
                self.redis.zrem(keys.CANCELLING, job_id)
                ended.append(job_id)
        return ended


def run_forever(canceller: Canceller, interval_s: float, stop: threading.Event) -> None:
    """Look every `interval_s` until `stop` is set; a Redis outage is logged once, then retried."""
    failing = False
    while not stop.wait(interval_s):
        try:
            for job_id in canceller.sweep_once():
                log.info("cancelled job %s ended", job_id)
        except redis.RedisError as exc:
            if not failing:
                log.warning("canceller: Redis unavailable (%s); retrying", exc)
            failing = True
            continue
        except Exception:  # a bug with one job must not stop cancels for the process's lifetime
            log.exception("canceller: sweep failed")
        failing = False


def start(canceller: Canceller, interval_s: float) -> threading.Event:
    """Start the canceller thread (a daemon); set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run_forever, args=(canceller, interval_s, stop), name="btq-canceller", daemon=True).start()
    return stop
