"""A minimal server-sent-events reader over httpx, bounded by a deadline."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    id: str
    event: str
    data: dict[str, Any]


def read_events(url: str, *, headers: dict[str, str] | None = None, timeout_s: float = 60) -> Iterator[Message]:
    """Yield SSE messages from `url` until the caller stops or `timeout_s` passes (then AssertionError)."""
    deadline = time.monotonic() + timeout_s
    with httpx.stream("GET", url, headers=headers or {}, timeout=httpx.Timeout(10, read=5)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise AssertionError(f"no end of stream within {timeout_s}s")
            if line == "":
                if "data" in fields:
                    yield Message(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
