"""Redaction of the worker's secret settings from everything it writes: logs, records, results, events.

A provider that echoes the key in an error ("Incorrect API key provided: sk-...") puts it into exception
messages, tracebacks, dspy's per-example error logs and the step's stored error record. Every such text
passes through `Redactor` first: in logging through a record factory installed at worker start (so it
covers every logger and handler, third-party ones included), in Redis through the store and emitter.
"""

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

MASK = "[redacted]"

MIN_SECRET_CHARS = 4
"""Shorter values are not masked: a one-letter "secret" would mangle every line it occurs in."""


class Redactor:
    """Replaces each known secret value (and its JSON-escaped forms) with `MASK`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_CHARS:
                continue
            forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        # Longest first, so a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        """Return `text` with every secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    @classmethod
    def from_settings(cls, settings: BaseModel) -> "Redactor":
        """Collect every `SecretStr` in `settings` (nested in dicts and lists too) and passwords in URLs."""
        return cls(_secret_values(settings))


def _secret_values(settings: BaseModel) -> list[str]:
    found: list[str] = []
    stack: list[Any] = [getattr(settings, name) for name in type(settings).model_fields]
    while stack:
        value = stack.pop()
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            stack.extend(value)
        elif isinstance(value, BaseModel):
            stack.extend(getattr(value, name) for name in type(value).model_fields)
        elif isinstance(value, str) and "://" in value:
            password = _url_password(value)
            if password:
                found.append(password)
    return found


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


_installed: list[Redactor] = []


def install_log_redaction(redactor: Redactor) -> None:
    """Mask secrets in every log record created in this process (and in children forked after this).

    The message is formatted and masked when the record is made, and so is an attached traceback (kept
    in `exc_text`, which formatters print instead of formatting the exception again).
    """
    if _installed:
        _installed[0] = redactor  # already wrapping the factory: only the secrets change
        return
    if not redactor:
        return
    _installed.append(redactor)
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record, _installed[0])
        return record

    logging.setLogRecordFactory(redacting_record)


def _redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: logging reports it itself when the record is emitted
        return
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
