"""LiteLLM model strings as the job LM: the endpoint and key come from worker settings, never the job."""

import pytest

from btq.producer.client import JobClient
from tests.conftest import STUB_API_KEY
from tests.stub_openai import StubOpenAI

pytestmark = pytest.mark.integration


def test_litellm_model_runs_with_credentials_from_worker_settings(client: JobClient, stub_openai: StubOpenAI) -> None:
    seen_before = len(stub_openai.auth_headers)
    job = {
        "program": {"name": "t.qa"},
        "lm": {"model": "openai/stub-model", "kwargs": {"cache": False, "temperature": 0.0}},
        "metric": "t.exact",
        "optimizers": {"p": {"optimizer": "LabeledFewShot", "kwargs": {"k": 2}}},
        "strategy": "p",
        "trainset": {"dataset": "t.arith", "split": "train"},
        "valset": {"dataset": "t.arith", "split": "val"},
        "seed": 1,
    }
    result = client.wait(client.submit(job), timeout_s=120)

    assert result.state.value == "succeeded"
    assert [c.score for c in result.candidates] == [100.0, 100.0]
    calls = stub_openai.auth_headers[seen_before:]
    assert len(calls) == 20, "baseline and step 1 each evaluated the 10 validation examples"
    assert set(calls) == {f"Bearer {STUB_API_KEY}"}
    lm_state = result.candidates[0].program_state["lm"]
    assert lm_state["model"] == "openai/stub-model"
    assert "api_key" not in lm_state and STUB_API_KEY not in str(result.model_dump())
