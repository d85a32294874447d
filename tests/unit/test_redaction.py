"""Redaction: secret settings values are masked in log records (message and traceback) and JSON text."""

import json
import logging

import pytest
from pydantic import SecretStr

from btq.worker.settings import WorkerSettings
from btq.worker.steps.redaction import MASK, Redactor, install_log_redaction

KEY = 'sk-test-"quoted"-key'


def test_secret_settings_values_and_url_passwords_are_collected() -> None:
    settings = WorkerSettings(
        lm_api_keys={"openai": SecretStr(KEY)}, redis_url="redis://:hunter2-pass@127.0.0.1:6379/0"
    )
    redact = Redactor.from_settings(settings)
    assert redact(f"key {KEY} and pass hunter2-pass") == f"key {MASK} and pass {MASK}"
    assert KEY not in redact(json.dumps({"message": f"bad key {KEY}"}))
    assert json.dumps(KEY)[1:-1] not in redact(json.dumps({"message": f"bad key {KEY}"}))


def test_log_records_are_masked_in_message_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction(Redactor([KEY]))
    try:
        logger = logging.getLogger("btq.test.redaction")
        try:
            raise RuntimeError(f"Incorrect API key provided: {KEY}")
        except RuntimeError:
            with caplog.at_level(logging.ERROR):
                logger.exception("call failed with %s", KEY)
        text = caplog.text
        assert KEY not in text
        assert text.count(MASK) >= 2
        assert "RuntimeError: Incorrect API key provided: [redacted]" in text
    finally:
        install_log_redaction(Redactor([]))


def test_short_values_are_not_masked() -> None:
    assert Redactor(["ab"])("ab cd") == "ab cd"
