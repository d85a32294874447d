"""Is any worker alive and consuming our queue? Asked over Celery's remote control (a broadcast ping).

`submit --wait` and `watch` ask once before waiting, so a missing fleet is reported in about a second
instead of after the whole wait.
"""

from typing import Any

from celery import Celery


def live_workers(app: Celery, queue: str, timeout_s: float = 1.5) -> list[str]:
    """Return the names of workers that answered within `timeout_s` and consume `queue`."""
    replies: dict[str, Any] = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return sorted(name for name, queues in replies.items() if any(q.get("name") == queue for q in queues or []))
