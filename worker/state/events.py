"""Event emitter: appends JobEvents to the job's stream and the global stream (XADD, capped)."""

import socket
import time
from collections.abc import Callable
from typing import Any

import pydantic
import redis

from btq.schemas import keys
from btq.schemas.events import EventType, JobEvent

# The event and its emitted-marker in one atomic step: whoever finds a stored record without the marker
# emits its event, so a crash between storing a record and emitting its event loses no event, and a
# second finder adds no duplicate.
_EMIT_ONCE = """
if not redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return 0 end
redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('xadd', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
return 1
"""


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

    def _checked(self, event: JobEvent) -> str:
        """The event's redacted JSON, checked against the schema, so no reader ever meets a malformed entry.

        Masking works on the JSON text; a secret that happens to spell part of the JSON syntax or a field
        name would break it, so then every value is masked one by one instead.
        """
        text = self.redact(event.model_dump_json())
        try:
            JobEvent.model_validate_json(text)
        except pydantic.ValidationError:
            # Field names stay as they are (the schema's own); every value, nested keys included, is masked.
            masked = {k: _mask_strings(v, self.redact) for k, v in event.model_dump(mode="json").items()}
            text = JobEvent.model_validate(masked).model_dump_json()
        return text

    def emit(self, event_type: EventType, job_id: str, steps_total: int, **fields: Any) -> JobEvent:
        """Build, append and return one event."""
        event = JobEvent(type=event_type, job_id=job_id, at=time.time(), steps_total=steps_total, **fields)
        payload = {"event": self._checked(event)}
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(keys.job_key(job_id, "events"), payload, maxlen=self.job_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.xadd(keys.GLOBAL_EVENTS, payload, maxlen=self.global_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()
        return event

    def emit_once(
        self, marker: str, marker_ttl_s: int, event_type: EventType, job_id: str, steps_total: int, **fields: Any
    ) -> bool:
        """Emit one event unless `marker` says it was emitted already; return whether this call emitted it."""
        event = JobEvent(type=event_type, job_id=job_id, at=time.time(), steps_total=steps_total, **fields)
        emitted = self.redis.eval(
            _EMIT_ONCE,
            3,
            marker,
            keys.job_key(job_id, "events"),
            keys.GLOBAL_EVENTS,
            self._checked(event),
            self.job_maxlen,
            self.global_maxlen,
            marker_ttl_s,
        )
        return bool(emitted)


def _mask_strings(value: Any, redact: Callable[[str], str]) -> Any:
    """Return `value` (JSON data) with every string, keys included, passed through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k): _mask_strings(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v, redact) for v in value]
    return value
