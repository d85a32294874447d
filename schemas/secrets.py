"""Credentials smuggled into a job: keys that look like secrets or endpoints, in any casing or nesting.

Workers take API keys and endpoints from their settings. A job that carries its own (an `API_KEY`
kwarg, an `extra_headers` Authorization header, an `extra_body` that a provider merges into the request)
would replace the worker's credentials or send them elsewhere, so it is refused at validation.
"""

import re
from collections.abc import Iterator

SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "key",
        "keys",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "secrets",
        "token",
    }
)
"""Words of a key name that make it a credential. `tokens` (a count, as in `max_tokens`) is not one."""

ENDPOINT_NAMES = frozenset(
    {
        "api_base",
        "api_url",
        "base_url",
        "azure_endpoint",
        "endpoint",
        "engine",
        "extra_body",
        "model_list",
        "provider",
        "proxy",
        "proxies",
    }
)
"""Normalized key names that redirect requests or rewrite their body; refused anywhere in an LM spec."""

CREDENTIAL_VALUE = re.compile(r"^\s*bearer\s+\S+\s*$", re.IGNORECASE)
"""A string value that is an HTTP credential whatever key holds it (`"X-Custom": "Bearer sk-..."`)."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def normalize(name: str) -> str:
    """Return `name` in snake case: `X-Api-Key`, `apiKey` and `API_KEY` all become `x_api_key`/`api_key`."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def refusal(name: str) -> str | None:
    """Return why a key called `name` may not appear in a job, or None when it may."""
    snake = normalize(name)
    if snake in ENDPOINT_NAMES:
        return "may not be sent in a job: it sets an endpoint or request body; workers take those from their settings"
    if SECRET_WORDS.intersection(snake.split("_")) or "apikey" in snake.replace("_", ""):
        return "may not be sent in a job: it looks like a credential; workers take credentials from their settings"
    return None


def credential_paths(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield `(dotted path, reason)` for every refused key anywhere in `value` (iterative, any depth)."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                at = f"{where}.{key}" if where else str(key)
                reason = refusal(str(key))
                if reason is not None:
                    yield at, reason
                else:
                    stack.append((at, sub))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}.{i}" if where else str(i), v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, str) and CREDENTIAL_VALUE.match(item):
            yield (
                where,
                "may not be sent in a job: the value is an HTTP credential; workers take credentials from their settings",
            )
