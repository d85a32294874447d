"""Reading one event-stream entry: the one decoder every reader uses, which skips what is not an event.

A stream entry is written by anyone who can reach Redis, so readers (the CLI, `JobClient`, the
dashboard) must survive one that is not ours: no `event` field, bytes that are not UTF-8 or not JSON,
JSON of the wrong shape. Such an entry is skipped with one warning naming its stream and entry id,
and the reader goes on with the next entry.
"""

import logging
from collections.abc import Mapping

from pydantic import ValidationError

from btq.schemas.events import JobEvent

logger = logging.getLogger("btq.events")

_FIELD = "event"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def event_from_entry(
    stream: str, entry_id: bytes | str, fields: Mapping[bytes, bytes] | Mapping[str, str]
) -> JobEvent | None:
    """Return the entry's JobEvent, or None (after one warning) when the entry is not a valid event."""
    by_name = {_text(k): v for k, v in fields.items()}
    raw = by_name.get(_FIELD)
    if raw is None:
        _skip(stream, entry_id, f"no {_FIELD!r} field (fields: {sorted(by_name)[:5]})")
        return None
    try:
        return JobEvent.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "event"
        _skip(stream, entry_id, f"{where}: {first.get('msg')}")
        return None


def _skip(stream: str, entry_id: bytes | str, why: str) -> None:
    logger.warning("skipping malformed entry %s of stream %s: %s", _text(entry_id), stream, why)
