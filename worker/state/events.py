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
# second finder adds no duplicate. KEYS[4] is the job's terminal marker: once the terminal event is out,
# nothing more is appended (a late step of a zombie holder, a finder racing the finalize).
_EMIT_ONCE = """
if KEYS[1] ~= KEYS[4] and redis.call('exists', KEYS[4]) == 1 then return 0 end
if not redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return 0 end
redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('xadd', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
return 1
"""
_EMIT = """
if redis.call('exists', KEYS[3]) == 1 then return 0 end
redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
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
        # Fields left at null are left out (readers default them): a finished job's stream is most of what it keeps.
        text = self.redact(event.model_dump_json(exclude_none=True))
        try:
            JobEvent.model_validate_json(text)
        except pydantic.ValidationError:
            # Field names stay as they are (the schema's own); every value, nested keys included, is masked.
            masked = {k: _mask_strings(v, self.redact) for k, v in event.model_dump(mode="json").items()}
            text = JobEvent.model_validate(masked).model_dump_json(exclude_none=True)
        return text

    def emit(self, event_type: EventType, job_id: str, steps_total: int, **fields: Any) -> bool:
        """Build and append one event unless the job's terminal event is out; return whether it was appended."""
        event = JobEvent(type=event_type, job_id=job_id, at=time.time(), steps_total=steps_total, **fields)
        emitted = self.redis.eval(
            _EMIT,
            3,
            keys.job_key(job_id, "events"),
            keys.GLOBAL_EVENTS,
            keys.terminal_marker(job_id),
            self._checked(event),
            self.job_maxlen,
            self.global_maxlen,
        )
        return bool(emitted)

    def emit_once(
        self, marker: str, marker_ttl_s: int, event_type: EventType, job_id: str, steps_total: int, **fields: Any
    ) -> bool:
        """Emit one event unless `marker` says it was emitted already, or the job's terminal event is out.

        Returns whether this call emitted it.
        """
        event = JobEvent(type=event_type, job_id=job_id, at=time.time(), steps_total=steps_total, **fields)
        emitted = self.redis.eval(
            _EMIT_ONCE,
            4,
            marker,
            keys.job_key(job_id, "events"),
            keys.GLOBAL_EVENTS,
            keys.terminal_marker(job_id),
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
