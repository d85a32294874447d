"""What `btq` prints and returns when a command cannot do its work: one line, one exit code per kind.

A person reads `cannot reach Redis at redis://:***@db:6379/0: connection refused` instead of a traceback;
a script tells the kinds apart by exit code (`exit_codes.ExitCode`, listed in docs/cli.md).
"""

import errno
import os
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import kombu.exceptions
import redis

from btq.producer.cli.exit_codes import ExitCode
from btq.producer.reconnect import INFRA_ERRORS, RedisUnavailableError
from btq.producer.settings import ProducerSettings
from btq.schemas.exceptions import (
    BtqError,
    FleetUnavailableError,
    JobNotFoundError,
    JobTimeoutError,
    JobValidationError,
)


def redacted_url(url: str) -> str:
    """Return `url` with its password replaced by `***` (a URL without one is returned as it is)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def reason(exc: BaseException) -> str:
    """Return why a connection failed in a few words: `connection refused`, `timed out`, `authentication failed`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis.AuthenticationError):
            return "authentication failed (check the password in the URL)"
        if isinstance(current, (redis.TimeoutError, TimeoutError)):
            return "timed out"
        if isinstance(current, OSError) and current.errno is not None:
            return os.strerror(current.errno).lower()
        current = current.__cause__ or current.__context__
    text = str(exc)
    # redis-py words it "Error 111 connecting to host:port. Connection refused."
    if "Error 111" in text or "Connection refused" in text:
        return os.strerror(errno.ECONNREFUSED).lower()
    return text.splitlines()[0] if text else type(exc).__name__


def _settings() -> ProducerSettings | None:
    try:
        return ProducerSettings()
    except ValueError:
        return None


def _redis_line(exc: BaseException, settings: ProducerSettings | None) -> str:
    url = redacted_url(settings.redis_url) if settings else "the configured Redis"
    cause = exc.__cause__ if isinstance(exc, RedisUnavailableError) and exc.__cause__ else exc
    return f"cannot reach Redis at {url}: {reason(cause)}"


def _broker_line(exc: BaseException, settings: ProducerSettings | None) -> str:
    url = redacted_url(settings.broker) if settings else "the configured broker"
    return f"cannot reach the broker at {url}: {reason(exc)}"


def _path_line(exc: BaseException, settings: ProducerSettings | None) -> str:
    assert isinstance(exc, OSError)
    return f"cannot use {exc.filename}: {(exc.strerror or str(exc)).lower()}"


_Line = Callable[[BaseException, ProducerSettings | None], str]
_FAILURES: list[tuple[tuple[type[BaseException], ...], ExitCode, _Line]] = [
    ((JobValidationError,), ExitCode.BAD_INPUT, lambda e, _: f"invalid job: {e}"),
    ((JobTimeoutError,), ExitCode.TIMEOUT, lambda e, _: f"timed out: {e}"),
    ((JobNotFoundError,), ExitCode.NOT_FOUND, lambda e, _: f"unknown job id: {e}"),
    ((FleetUnavailableError,), ExitCode.NO_WORKER, lambda e, _: f"error: {e}"),
    ((RedisUnavailableError, *INFRA_ERRORS), ExitCode.UNREACHABLE, _redis_line),
    ((kombu.exceptions.OperationalError,), ExitCode.UNREACHABLE, _broker_line),
    ((BtqError,), ExitCode.JOB_NOT_SUCCEEDED, lambda e, _: f"error: {type(e).__name__}: {e}"),
]
"""First match wins: the more specific kinds come first (RedisUnavailableError is also a BtqError)."""


def failure(exc: BaseException) -> tuple[ExitCode, str] | None:
    """Return the exit code and the one line to print for an error a command raised (None: a bug, re-raise)."""
    for kinds, code, line in _FAILURES:
        if isinstance(exc, kinds):
            return code, line(exc, _settings())
    if isinstance(exc, OSError) and exc.filename is not None:  # a path the command was given
        return ExitCode.BAD_INPUT, _path_line(exc, None)
    return None


def report(exc: BaseException) -> int:
    """Print the one line for `exc` on standard error and return its exit code; re-raise an unknown error."""
    known = failure(exc)
    if known is None:
        raise exc
    code, line = known
    print(line, file=sys.stderr)
    return int(code)
