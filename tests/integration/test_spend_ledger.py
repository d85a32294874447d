"""The budget's and the rate limit's Redis side: atomic across threads and processes' worth of callers."""

import threading
import time

import pytest
import redis

from btq.schemas.usage import Budget
from btq.worker.core.metering import BudgetExceededError
from btq.worker.settings import LMRateLimit, WorkerSettings
from btq.worker.state.fleet_gate import FleetMetering
from btq.worker.state.rate_limit import RateLimiter
from btq.worker.state.spend import SpendLedger, job_spend
from tests.conftest import redis_url

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> redis.Redis:
    r = redis.Redis.from_url(redis_url(13))
    r.flushdb()
    return r


def test_reservations_never_exceed_max_lm_calls_across_many_callers(client: redis.Redis) -> None:
    settings = WorkerSettings(lm_budget_reserve_calls=8)
    metering = FleetMetering(client, settings)
    made: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        # Each caller is one worker process's gate: reserves in batches, gives back what it does not use.
        with metering.metered("job-b", 1, Budget(max_lm_calls=101)) as meter:
            assert meter.gate is not None
            count = 0
            try:
                while True:
                    meter.gate.before_request("sim/x")
                    meter.add(calls=1, prompt_tokens=3)
                    count += 1
            except BudgetExceededError:
                pass
            with lock:
                made.append(count)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sum(made) == 101, "every call the budget allowed was made, and not one more"
    spent, reserved, exhausted = job_spend(client, "job-b")
    assert (spent.calls, spent.prompt_tokens, reserved, exhausted) == (101, 303, 101, "max_lm_calls")


def test_tokens_and_dollars_stop_the_next_reservation_once_reached(client: redis.Redis) -> None:
    ledger = SpendLedger(client, "job-t", 0, Budget(max_tokens=100, max_cost_usd=1.0), ttl_s=60)
    assert ledger.reserve({"prompt_tokens": 60}, 1) == (1, None)
    assert ledger.reserve({"prompt_tokens": 50}, 1) == (0, "max_tokens")
    other = SpendLedger(client, "job-c", 0, Budget(max_cost_usd=1.0), ttl_s=60)
    assert other.reserve({"cost_usd": 999_999_999}, 1) == (1, None)
    assert other.reserve({"cost_usd": 1}, 1) == (0, "max_cost_usd")


def test_the_bucket_spaces_requests_of_every_caller_and_a_429_holds_everyone_back(client: redis.Redis) -> None:
    limiter = RateLimiter(client, {"openai": LMRateLimit(rpm=1200)}, max_wait_s=10)  # one per 50 ms
    other = RateLimiter(client, {"openai": LMRateLimit(rpm=1200)}, max_wait_s=10)
    assert limiter.limit_for("openai/gpt-4o-mini") is not None and limiter.limit_for("anthropic/x") is None
    started = time.monotonic()
    for i in range(10):
        (limiter if i % 2 else other).acquire("openai/gpt-4o-mini")
    spaced = time.monotonic() - started
    limiter.hold("openai/gpt-4o-mini", 0.3)
    held = time.monotonic()
    limiter.acquire("openai/gpt-4o-mini")  # the refused process drops the slots it had taken
    waited = time.monotonic() - held
    fresh = RateLimiter(client, {"openai": LMRateLimit(rpm=1200)}, max_wait_s=10)
    fresh.acquire("openai/gpt-4o-mini")
    waited_elsewhere = time.monotonic() - held
    assert spaced >= 9 * 0.05 * 0.9, "ten requests at 1200/min take at least nine intervals"
    assert waited >= 0.25 and waited_elsewhere >= 0.25, "the Retry-After of a 429 holds back every worker"


def test_a_429_from_the_provider_holds_the_bucket_for_its_retry_after_and_the_call_still_succeeds(
    client: redis.Redis,
) -> None:
    import dspy

    from tests.stub_openai import StubOpenAI

    stub = StubOpenAI()
    stub.rpm_limit, stub.rpm_window_s = 60, 1.0  # one request a second: the second call in a row gets a 429
    try:
        settings = WorkerSettings(lm_rate_limits={"openai": LMRateLimit(rpm=60_000)})  # far above the stub's
        fleet = FleetMetering(client, settings)
        assert fleet.limiter is not None
        holds: list[float | None] = []
        hold = fleet.limiter.hold
        fleet.limiter.hold = lambda model, after: (holds.append(after), hold(model, after))[1]  # type: ignore[method-assign]
        lm = dspy.LM("openai/gpt-4o-mini", api_base=stub.url, api_key="sk-test", cache=False, num_retries=3)
        with fleet.metered("job-429", 1, None) as meter, dspy.context(lm=lm):
            answers = [dspy.Predict("question -> answer")(question=f"What is {i} + 1?").answer for i in range(2)]
    finally:
        stub.close()
    assert answers == ["1", "2"]
    assert stub.rejected_429 >= 1
    usage = meter.usage()
    assert usage.calls == 2 and usage.failed_calls == stub.rejected_429
    assert len(holds) == stub.rejected_429, "each 429 held the fleet's bucket back"
    assert all(after is not None and 0 < after <= 1.0 for after in holds), "for the provider's Retry-After"


def test_a_wait_for_capacity_is_bounded_and_a_cancel_ends_it(client: redis.Redis) -> None:
    from btq.worker.core.interrupt import StepCancelledError, interruptible
    from btq.worker.state.rate_limit import RateLimitWaitError

    slow = {"openai": LMRateLimit(rpm=1)}  # one request a minute
    bounded = RateLimiter(client, slow, max_wait_s=0.5)
    bounded.acquire("openai/gpt-4o-mini")
    with pytest.raises(RateLimitWaitError, match=r"within 0\.5 s"):
        bounded.acquire("openai/gpt-4o-mini")

    patient = RateLimiter(client, slow, max_wait_s=120)
    cancelled_at = time.monotonic() + 0.3
    started = time.monotonic()
    with interruptible(lambda: time.monotonic() > cancelled_at), pytest.raises(StepCancelledError):
        patient.acquire("openai/gpt-4o-mini")
    assert time.monotonic() - started < 30, "the cancel ended the minute-long wait"
