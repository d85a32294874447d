"""Event emitter: appends JobEvents to the job's stream and the global stream (XADD, capped)."""

import socket
import time
from collections.abc import Callable
from typing import Any

import redis

from schemas import keys
from schemas.events import EventType, JobEvent


def worker_name() -> str:
    """Return this process's name in events: host and pid."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class EventEmitter:
    """Emits events for one Redis database."""

    def __init__(
        self, client: redis.Redis, job_maxlen: int, global_maxlen: int, redact: Callable[[str], str] | None = None
    ) -> None:
        self.redis = client
        self.job_maxlen = job_maxlen
        self.global_maxlen = global_maxlen
        self.redact = redact or (lambda text: text)

    def emit(self, event_type: EventType, job_id: str, steps_total: int, **fields: Any) -> JobEvent:
        """Build, append and return one event."""
        event = JobEvent(type=event_type, job_id=job_id, at=time.time(), steps_total=steps_total, **fields)
        payload = {"event": self.redact(event.model_dump_json())}
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(keys.job_key(job_id, "events"), payload, maxlen=self.job_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.xadd(keys.GLOBAL_EVENTS, payload, maxlen=self.global_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()
        return event
