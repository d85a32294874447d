"""Server-sent events from a Redis Stream (one job's, or every job's): replay from a cursor, then follow.

Each SSE message carries the stream entry id as its `id`, so a browser's automatic reconnect sends
it back as `Last-Event-ID` and the replay resumes right after it: nothing lost, nothing repeated.
"""

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis

from btq.schemas.event_entry import event_from_entry
from btq.schemas.events import JobEvent

_CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")
_BLOCK_MS = 1000  # short blocking reads: the loop notices a closed connection within a second


def parse_cursor(value: str | None) -> str:
    """Return a Redis Stream id to read after ('0-0' when absent); raise ValueError on anything else."""
    if value is None or value == "":
        return "0-0"
    if value == "$":
        return value
    if not _CURSOR.match(value):
        raise ValueError(f"cursor: {value!r} is not a stream id like '1700000000000-0'")
    return value


def sse_message(entry_id: str, event: JobEvent) -> str:
    """Return one SSE message: `id` is the stream cursor, `event` the JobEvent type, `data` its JSON."""
    return f"id: {entry_id}\nevent: {event.type.value}\ndata: {event.model_dump_json()}\n\n"


async def follow_stream(
    client: aioredis.Redis,
    stream: str,
    after: str,
    heartbeat_s: float,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """Yield SSE messages of `stream` after cursor `after`, then new ones as they arrive.

    It keeps following after a job's terminal event (a cancel may still add one); the page closes
    the connection. A comment line on an idle stream keeps proxies from closing it.
    """
    cursor = after
    idle_ms = 0.0
    yield "retry: 2000\n\n"
    while not await is_disconnected():
        batches = cast(list[Any], await client.xread({stream: cursor}, block=_BLOCK_MS, count=200) or [])
        if not batches:
            idle_ms += _BLOCK_MS
            if idle_ms >= heartbeat_s * 1000:
                idle_ms = 0
                yield ": keep-alive\n\n"
            continue
        idle_ms = 0
        for _, entries in batches:
            for entry_id, data in entries:
                cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                # A malformed entry is skipped (with a warning), never sent: the cursor still moves past it.
                event = event_from_entry(stream, cursor, data)
                if event is not None:
                    yield sse_message(cursor, event)
