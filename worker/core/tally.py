"""In-process counters of what this worker process did (LM requests, cache hits, shards), flushed in batches.

Counting is a dict update under a lock; a flush (`worker/state/metrics.py`) adds the batch to Redis in one
round trip, at most every `flush_interval_s` while counts flow and at the end of every task, so a count
costs no Redis call of its own. No Redis here: the sink is given by the caller.
"""

import threading
import time
from collections.abc import Callable

from btq.schemas.metrics import WorkerCount

Sink = Callable[[dict[WorkerCount, float]], None]
"""Adds a batch of counts somewhere (Redis); may raise, the batch is then kept for the next flush."""


class Tally:
    """Counts of one process; thread-safe (dspy scores examples on threads)."""

    def __init__(self, flush_interval_s: float = 2.0) -> None:
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._counts: dict[WorkerCount, float] = {}
        self._sink: Sink | None = None
        self._flushed_at = time.monotonic()
        self.node: str | None = None
        """The Celery node this process serves (set when a task starts): names the worker's own counters."""

    def bind(self, sink: Sink | None) -> None:
        """Send future flushes to `sink` (None: counts are kept until a sink is bound)."""
        self._sink = sink

    def add(self, name: WorkerCount, amount: float = 1.0) -> None:
        """Count `amount` of `name`; flush when the last flush is older than the interval."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0.0) + amount
            due = time.monotonic() - self._flushed_at >= self.flush_interval_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Hand the counts so far to the sink; on failure they are kept for the next flush."""
        sink = self._sink
        with self._lock:
            if sink is None or not self._counts:
                return
            batch, self._counts = self._counts, {}
            self._flushed_at = time.monotonic()
        try:
            sink(batch)
        except Exception:  # Redis away: keep the counts, a later flush adds them
            with self._lock:
                for name, amount in batch.items():
                    self._counts[name] = self._counts.get(name, 0.0) + amount

    def pending(self) -> dict[WorkerCount, float]:
        """The counts not yet flushed (for tests and the worker's own endpoint)."""
        with self._lock:
            return dict(self._counts)


TALLY = Tally()
"""This process's tally: a pool child counts into its own copy after the fork (flushed by the task hooks)."""
