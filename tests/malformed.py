"""Malformed event-stream entries, as anyone who can reach Redis could write them, for the reader tests."""

import json

import redis

MALFORMED_ENTRIES: list[dict[str, bytes]] = [
    {b"note": b"no event field at all"},
    {b"event": b"this is not json"},
    {b"event": b"\xff\xfe not utf-8 \x80"},
    {b"event": json.dumps({"type": 5, "job_id": ["wrong"], "at": "yesterday"}).encode()},
    {b"event": b"[1, 2, 3]"},
]
"""One entry of each kind a reader must skip: no `event` field, not JSON, not UTF-8, wrong types, not an object."""


def add_malformed(client: redis.Redis, stream: str) -> list[str]:
    """Append one entry of each malformed kind to `stream`; return their entry ids."""
    ids = []
    for fields in MALFORMED_ENTRIES:
        entry_id = client.xadd(stream, fields)  # type: ignore[arg-type]
        ids.append(entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id))
    return ids
