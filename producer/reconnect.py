"""Bounded reconnection to Redis for long waits: retry with capped exponential backoff, and say so.

A Redis restart (a few seconds with AOF) must not turn `btq watch` or `JobClient.wait` into a raw
`redis.ConnectionError`; an outage longer than the budget still ends in one clear error.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from btq.schemas.exceptions import BtqError

T = TypeVar("T")
log = logging.getLogger("btq.producer")

INFRA_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
"""Errors that mean Redis is away or restarting (BusyLoadingError: replaying its AOF), not a bad request."""


class RedisUnavailableError(BtqError, ConnectionError):
    """Raised when Redis stayed unreachable for longer than the reconnect budget."""


class Backoff:
    """Capped exponential backoff with a total budget, restarted after each success."""

    def __init__(self, budget_s: float, first_s: float = 0.2, cap_s: float = 5.0, *, announce: bool = True) -> None:
        self.budget_s = budget_s
        self.announce = announce
        self.first_s = first_s
        self.cap_s = cap_s
        self._since: float | None = None
        self._delay_s = first_s

    def succeeded(self) -> None:
        """Forget past failures."""
        if self._since is not None and self.announce:
            log.warning("Redis is back after %.1f s", time.monotonic() - self._since)
        self._since, self._delay_s = None, self.first_s

    def failed(self, exc: Exception, what: str) -> None:
        """Sleep before the next try, or raise RedisUnavailableError once the budget is spent."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since > self.budget_s:
            raise RedisUnavailableError(
                f"Redis unreachable for {now - self._since:.0f} s while {what} (budget {self.budget_s:.0f} s): {exc}"
            ) from exc
        if self.announce:
            log.warning("Redis unavailable while %s (%s); reconnecting in %.1f s", what, exc, self._delay_s)
        time.sleep(self._delay_s)  # the backoff itself: bounded by cap_s, and in total by budget_s
        self._delay_s = min(self.cap_s, self._delay_s * 2)


def with_reconnect(operation: Callable[[], T], what: str, budget_s: float, *, announce: bool = True) -> T:
    """Run `operation`, retrying on Redis connection errors with bounded backoff; return its value.

    `announce=False` retries without a warning per attempt (a command's first connection: it prints
    one line if the budget runs out).
    """
    backoff = Backoff(budget_s, announce=announce)
    while True:
        try:
            value = operation()
        except INFRA_ERRORS as exc:
            backoff.failed(exc, what)
            continue
        backoff.succeeded()
        return value
