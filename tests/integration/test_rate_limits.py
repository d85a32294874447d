"""Fleet-wide rate limits: four worker processes share one bucket, so the provider never answers 429,
and the job's result is the one an unlimited run gets."""

import json
import time
from collections.abc import Iterator

import pytest

from tests.conftest import STUB_API_KEY, running_fleet
from tests.integration.test_lm_usage import job, run
from tests.reference import canonical
from tests.stub_openai import StubOpenAI

pytestmark = pytest.mark.integration

STUB_RPM = 600
"""What the stub provider allows (checked over 2-second windows, as providers do over short windows)."""
FLEET_RPM = 540
"""What the workers are told to stay under: 90 % of the provider's limit."""


@pytest.fixture(scope="module")
def limited_stub() -> Iterator[StubOpenAI]:
    stub = StubOpenAI()
    yield stub
    stub.close()


def fleet_env(stub: StubOpenAI, limits: dict[str, object] | None) -> dict[str, str]:
    env = {
        "BTQ_LM_API_BASES": json.dumps({"openai": stub.url}),
        "BTQ_LM_API_KEYS": json.dumps({"openai": STUB_API_KEY}),
    }
    if limits is not None:
        env["BTQ_LM_RATE_LIMITS"] = json.dumps(limits)
    return env


def test_four_workers_under_a_fleet_limit_never_see_a_429_and_get_the_unlimited_result(
    limited_stub: StubOpenAI,
) -> None:
    with running_fleet(12, "btq-rl-free", ["fa"], fleet_env(limited_stub, None)) as free:
        unlimited, _ = run(free, limited_stub, job(21))

    limited_stub.rpm_limit = STUB_RPM
    names = ["la", "lb", "lc", "ld"]
    limits = {"openai": {"rpm": FLEET_RPM}}
    with running_fleet(12, "btq-rl", names, fleet_env(limited_stub, limits)) as fleet:
        started = time.monotonic()
        limited, (requests, _, _, rejected) = run(fleet, limited_stub, job(21))
        elapsed = time.monotonic() - started
        events = [e for _, e in fleet.client().events(limited.job_id)]
    limited_stub.rpm_limit = None

    assert rejected == 0, "the provider answered 429"
    assert requests > 0 and limited.usage is not None and limited.usage.calls == requests
    assert [(c.strategy, c.score, canonical(c.program_state)) for c in limited.candidates] == [
        (c.strategy, c.score, canonical(c.program_state)) for c in unlimited.candidates
    ]
    workers = {w for e in events for w in e.detail.get("shard_workers", []) or []}  # type: ignore[union-attr]
    assert len(workers) > 1, "several workers called the provider"
    print(
        f"rate-limited: {requests} requests in {elapsed:.1f} s = {60 * requests / elapsed:.0f}/min (limit {FLEET_RPM})"
    )
