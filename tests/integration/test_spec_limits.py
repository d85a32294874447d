"""Specs that could hang or leak: NaN, huge strategies, smuggled credentials; refused early, naming the field.

No wall-clock limits: "early" is checked as no round trip to Redis, and "linear" as a count of Python calls
(the same on a loaded machine). Submission time against strategy length is `python -m bench.submit_scaling`.
"""

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.exceptions import JobValidationError
from tests.integration.test_parity import P, spec
from tests.integration.test_validation import snapshot

pytestmark = pytest.mark.integration

LITELLM = {"model": "openai/stub-model", "kwargs": {"temperature": 0.0}}


def with_lm_kwargs(**kwargs: Any) -> Callable[[dict[str, Any]], None]:
    return lambda job: job.update(lm={**LITELLM, "kwargs": {**LITELLM["kwargs"], **kwargs}})


def with_p_kwargs(**kwargs: Any) -> Callable[[dict[str, Any]], None]:
    return lambda job: job.update(optimizers={"p": {**P, "kwargs": {**P["kwargs"], **kwargs}}}, strategy="p")


SMUGGLED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("upper-case API_KEY", with_lm_kwargs(API_KEY="sk-smuggled"), "lm.kwargs.API_KEY"),
    ("camel-case apiKey", with_lm_kwargs(apiKey="sk-smuggled"), "lm.kwargs.apiKey"),
    ("Api-Base", with_lm_kwargs(**{"Api-Base": "http://evil"}), "lm.kwargs.Api-Base"),
    (
        "Authorization header",
        with_lm_kwargs(extra_headers={"Authorization": "Bearer sk-smuggled"}),
        "lm.kwargs.extra_headers.Authorization",
    ),
    ("api-key header", with_lm_kwargs(extra_headers={"api-key": "sk-smuggled"}), "lm.kwargs.extra_headers.api-key"),
    (
        "credential under a custom header",
        with_lm_kwargs(extra_headers={"X-Custom": "Bearer sk-smuggled"}),
        "lm.kwargs.extra_headers.X-Custom",
    ),
    ("extra_body", with_lm_kwargs(extra_body={"api_key": "sk-smuggled"}), "lm.kwargs.extra_body"),
    ("EXTRA-BODY", with_lm_kwargs(**{"EXTRA-BODY": {}}), "lm.kwargs.EXTRA-BODY"),
    (
        "nested in a list",
        with_lm_kwargs(metadata={"tags": [{"auth_token": "t"}]}),
        "lm.kwargs.metadata.tags.0.auth_token",
    ),
    ("optimizer kwarg", with_p_kwargs(Secret_Key="s"), "optimizers.p.kwargs.Secret_Key"),
    (
        "compile arg",
        lambda job: job.update(optimizer_compile_args={"p": {"config": {"password": "x"}}}),
        "optimizer_compile_args.p.config.password",
    ),
    (
        "saved LM state of the program",
        lambda job: job.update(program={"name": "t.qa", "state": {"demos": [], "lm": {"api_key": "sk-smuggled"}}}),
        "program.state.lm.api_key",
    ),
    (
        "saved LM state of a teacher predictor",
        lambda job: job.update(teacher=[{"name": "t.two", "state": {"draft": {"lm": {"Extra_Body": {}}}}}]),
        "teacher.0.state.draft.lm.Extra_Body",
    ),
]


@pytest.mark.parametrize(("case", "change", "field"), SMUGGLED, ids=[c[0] for c in SMUGGLED])
def test_smuggled_credential_is_refused_naming_the_field(
    client: JobClient, case: str, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    job = spec("p -> w -> p", "given", True, 1)
    change(job)
    before = snapshot(client)
    with pytest.raises(JobValidationError) as err:
        client.submit(job)
    assert err.value.field == field, str(err.value)
    assert "may not be sent in a job" in str(err.value)
    assert snapshot(client) == before


NON_FINITE: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("NaN ratio", lambda job: job.update(valset_ratio=math.nan), "valset_ratio"),
    ("infinite kwarg", with_p_kwargs(metric_threshold=math.inf), "optimizers.p.kwargs.metric_threshold"),
    (
        "NaN in an inline example",
        lambda job: job.update(trainset=[{"question": "q", "answer": -math.inf}], input_keys=["question"]),
        "trainset.0.answer",
    ),
]


@pytest.mark.parametrize(("case", "change", "field"), NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_non_finite_number_is_refused_naming_the_field(
    client: JobClient, case: str, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    job = spec("p", "given", True, 1)
    change(job)
    before = snapshot(client)
    with pytest.raises(JobValidationError) as err:
        client.submit(job)
    assert err.value.field == field, str(err.value)
    assert "NaN and Infinity are not allowed" in str(err.value)
    assert snapshot(client) == before


def test_nan_in_json_text_is_refused(client: JobClient) -> None:
    text = json.dumps(spec("p", "given", True, 1)).replace('"seed": 1', '"seed": 1, "valset_ratio": NaN')
    with pytest.raises(JobValidationError) as err:
        client.submit(text)
    assert err.value.field == "valset_ratio"


def test_strategy_longer_than_the_cap_is_refused_before_anything_is_sent(client: JobClient) -> None:
    before = snapshot(client)
    assert client.validate(spec(" -> ".join(["p"] * 64), "given", True, 1)).seed == 1
    # A client of its own whose connection has a name: had the refusal read the fleet, written a key or
    # sent a message, its connection would stand in Redis's client list. Refused before any round trip, a
    # strategy of any length costs only its parsing.
    probe = "btq-test-refusal-probe"
    own = redis.Redis.from_url(client.settings.redis_url, client_name=probe)
    refusing = JobClient(client.settings, own)
    for steps in (65, 10_000):
        with pytest.raises(JobValidationError) as err:
            refusing.submit(spec(" -> ".join(["p"] * steps), "given", True, 1))
        assert err.value.field == "strategy"
        assert f"{steps} steps exceed the limit of 64" in str(err.value)
    assert probe not in {c.get("name") for c in client.redis.client_list()}
    assert snapshot(client) == before
    own.close()


@contextmanager
def counting_calls() -> Iterator[list[int]]:
    """Count the Python function calls this thread makes inside the block (in the list's one item)."""
    count = [0]

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            count[0] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(previous)


def test_submit_work_grows_linearly_with_the_strategy(client: JobClient) -> None:
    # A queue no worker reads: the jobs are only enqueued, then removed.
    settings = ProducerSettings(redis_url=client.settings.redis_url, queue="btq-unread", max_strategy_steps=600)
    long_client = JobClient(settings)

    def calls_to_submit(steps: int) -> int:
        with counting_calls() as count:
            job_id = long_client.submit(spec(" -> ".join(["p"] * steps), "given", True, 1))
        long_client._forget(job_id, steps)
        return count[0]

    calls_to_submit(1)  # the first submission connects and builds the Celery app: not per-step work
    base = calls_to_submit(1)
    work = {steps: calls_to_submit(steps) - base for steps in (200, 600)}
    client.redis.delete("btq-unread")
    # Three times the steps must cost about three times the calls (15,721 and 47,321 here). Building the
    # task chain by folding it with `|` cloned the growing chain at every step: 550,036 and 4,770,436
    # calls (quadratic; 5 s and 49 s for 1,000 and 3,000 steps).
    assert 2.5 < work[600] / work[200] < 4.0, work
