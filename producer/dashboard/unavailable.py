"""Redis away: every API answer is a 503 saying where Redis was looked for (never its password).

A page whose script gets such an answer shows it in a banner, and keeps asking until Redis is back.
"""

from urllib.parse import urlsplit

from btq.producer.reconnect import INFRA_ERRORS

REDIS_AWAY = INFRA_ERRORS
"""Errors that mean Redis cannot be reached now (refused, timed out, loading its data): a 503, not a 500."""


def where(url: str) -> str:
    """Return a Redis URL without its user name and password: `redis://host:port/db`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def message(url: str, exc: BaseException) -> str:
    """The one line the API and the banner show: `redis: cannot reach Redis at redis://…: <reason>`."""
    reason = str(exc).strip().rstrip(".") or type(exc).__name__
    return f"redis: cannot reach Redis at {where(url)}: {reason}"
