"""A provider that echoes the worker's API key: the key never reaches logs, records, results or events."""

from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.worker.steps.redaction import MASK
from tests.conftest import STUB_API_KEY, Fleet
from tests.stub_openai import StubOpenAI

pytestmark = pytest.mark.integration


def echo_job() -> dict[str, Any]:
    return {
        "program": {"name": "t.qa"},
        "lm": {"model": "openai/echo-key", "kwargs": {"cache": False, "num_retries": 0}},
        "metric": "t.exact",
        # Bootstrapping re-raises its first failed call: the provider's message lands in a stored error record.
        "optimizers": {"p": {"optimizer": "BootstrapFewShot", "kwargs": {"max_errors": 1}}},
        "strategy": "p",
        "trainset": {"dataset": "t.arith", "split": "train"},
        "valset": {"dataset": "t.arith", "split": "val"},
        "seed": 1,
    }


def everything_stored(client: JobClient, job_id: str) -> str:
    """Every value the job left in Redis, as text: spec, status, step records, result, both event streams."""
    texts = []
    for key in client.redis.scan_iter(match=keys.job_key(job_id, "*")):
        kind = client.redis.type(key)
        if kind == b"string":
            texts.append(repr(client.redis.get(key)))
        elif kind == b"hash":
            texts.append(repr(client.redis.hgetall(key)))
        elif kind == b"stream":
            texts.append(repr(client.redis.xrange(key)))
    texts.append(repr(client.redis.xrange(keys.GLOBAL_EVENTS)))
    return "\n".join(texts)


def test_echoed_key_is_absent_from_logs_records_results_and_events(
    fleet: Fleet, client: JobClient, stub_openai: StubOpenAI
) -> None:
    echoed_before = stub_openai.echoed
    job_id = client.submit(echo_job())
    result = client.wait(job_id, timeout_s=120)

    assert stub_openai.echoed > echoed_before, "the provider saw the worker's key and quoted it back"
    assert stub_openai.auth_headers[-1] == f"Bearer {STUB_API_KEY}"
    stored = everything_stored(client, job_id)
    assert STUB_API_KEY not in stored
    assert STUB_API_KEY not in result.model_dump_json()
    assert MASK in stored, "the echoed error was recorded, masked"
    logs = "\n".join(log.read_text(errors="replace") for log in fleet.logs.values())
    assert "Incorrect API key provided" in logs, "the provider's error was logged"
    assert STUB_API_KEY not in logs
    assert MASK in logs
