"""Counts of steps and jobs, kept by reading the global event stream (`btq:events`) from where it was last read.

Each scrape reads the events added since the previous one, so the counters cover the retained stream from
the process's start on (a restart counts the retained stream again: Prometheus sees a counter reset, which
`rate()` handles). A step's optimizer class comes from its job's spec, read once per job and remembered.
"""

import json
import logging
import threading
from collections import OrderedDict
from typing import Any, cast

import redis

from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.events import EventType, JobEvent

log = logging.getLogger(__name__)

STEP_DURATION_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)
"""Upper bounds (seconds) of the step duration histogram: simulated steps take a second, real ones hours."""

_STEP_OUTCOMES = {
    EventType.STEP_SUCCEEDED: "succeeded",
    EventType.STEP_FAILED: "failed",
    EventType.STEP_SKIPPED: "skipped",
}
_JOB_ENDS = {EventType.JOB_SUCCEEDED: "succeeded", EventType.JOB_FAILED: "failed", EventType.JOB_CANCELLED: "cancelled"}
_BATCH = 1000
_MAX_PER_SCRAPE = 200_000  # one scrape never reads more; the next continues where it stopped


class Histogram:
    """Cumulative bucket counts, sum and count of observations (Prometheus histogram semantics)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * len(bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1
        self.total += value
        self.count += 1


class EventTally:
    """Step and job counters from the global stream; `update()` reads what is new (thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.cursor = "0-0"
        self.steps: dict[tuple[str, str, str], int] = {}
        """(optimizer_key, optimizer class, outcome) -> steps ended."""
        self.durations: dict[tuple[str, str], Histogram] = {}
        """(optimizer_key, outcome) -> step duration histogram."""
        self.jobs_submitted = 0
        self.jobs_rejected = 0
        self.jobs_finished: dict[str, int] = {}
        self.step_retries = 0
        self._classes: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def update(self) -> None:
        """Read the events added since the last update and count them."""
        with self._lock:
            read = 0
            while read < _MAX_PER_SCRAPE:
                entries = cast(
                    list[Any], self.redis.xrange(keys.GLOBAL_EVENTS, min=f"({self.cursor}", max="+", count=_BATCH)
                )
                if not entries:
                    return
                for entry_id, fields in entries:
                    self.cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self._count(fields)
                read += len(entries)

    def _count(self, fields: dict[bytes, bytes]) -> None:
        try:
            event = decode(JobEvent, fields[b"event"])
        except Exception:  # a malformed entry is skipped, as every reader does
            log.warning("metrics: skipped an unreadable event at %s", self.cursor)
            return
        if event.type is EventType.JOB_SUBMITTED:
            self.jobs_submitted += 1
        elif event.type is EventType.JOB_REJECTED:
            self.jobs_rejected += 1
        elif event.type in _JOB_ENDS:
            state = _JOB_ENDS[event.type]
            self.jobs_finished[state] = self.jobs_finished.get(state, 0) + 1
        elif event.type in _STEP_OUTCOMES:
            self._count_step(event, _STEP_OUTCOMES[event.type])
        elif event.type is EventType.STEP_STARTED and (event.attempt or 1) > 1:
            self.step_retries += 1

    def _count_step(self, event: JobEvent, outcome: str) -> None:
        key = event.optimizer_key or ("baseline" if event.step_index == 0 else "none")
        cls = self._optimizer_class(event.job_id, event.optimizer_key)
        self.steps[(key, cls, outcome)] = self.steps.get((key, cls, outcome), 0) + 1
        if event.duration_s is not None:
            hist = self.durations.setdefault((key, outcome), Histogram(STEP_DURATION_BUCKETS_S))
            hist.observe(event.duration_s)

    def _optimizer_class(self, job_id: str, optimizer_key: str | None) -> str:
        """The class behind a strategy key of a job ("" for the baseline, "default" when the fleet chose)."""
        if optimizer_key is None:
            return ""
        if job_id not in self._classes:
            self._classes[job_id] = self._read_classes(job_id)
            while len(self._classes) > 1000:
                self._classes.popitem(last=False)
        return self._classes[job_id].get(optimizer_key, "default")

    def _read_classes(self, job_id: str) -> dict[str, str]:
        try:
            raw = self.redis.get(keys.job_key(job_id, "spec"))
            optimizers = json.loads(raw).get("optimizers") or {} if raw else {}
            return {k: str(v.get("optimizer", "default")) for k, v in optimizers.items() if isinstance(v, dict)}
        except (ValueError, AttributeError, redis.RedisError):
            return {}
