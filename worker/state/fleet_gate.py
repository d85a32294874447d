"""The gate every LM request of a step or shard passes: the job's budget, then the fleet's rate limit.

`FleetMetering` is built once per worker process; `metered(...)` wraps one step or one shard: it installs
a meter whose gate reserves budget calls in small batches (see `spend`), waits for rate-limit capacity
(see `rate_limit`), and at the end adds what was spent to the step's and the job's counters in Redis.
Without a budget or a rate limit, a call costs no Redis round trip: usage is added once, at the end.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from btq.schemas.usage import Budget
from btq.worker.core.metering import BudgetExceededError, Meter, metering
from btq.worker.settings import WorkerSettings
from btq.worker.state.rate_limit import RateLimiter
from btq.worker.state.spend import SpendLedger

BUDGET_EXCEEDED = "budget exceeded"
"""The reason a step stopped by the budget is recorded with (its error message starts with it)."""


class FleetGate:
    """Budget reservation and rate limiting for one meter (thread-safe)."""

    def __init__(self, ledger: SpendLedger, limiter: RateLimiter | None, reserve_calls: int) -> None:
        self.ledger = ledger
        self.limiter = limiter
        self.reserve_calls = reserve_calls
        self.meter: Meter | None = None
        self.paces_tokens = limiter is not None and any(limit.tpm for limit in limiter.limits.values())
        self._reserved = 0
        self._lock = threading.Lock()

    def before_request(self, model: str) -> None:
        """Take one budget call (reserving a few more when none is left here), then wait for capacity."""
        meter = self.meter
        assert meter is not None
        if self.ledger.budget is not None:
            with self._lock:
                if meter.stop_reason is not None:
                    raise BudgetExceededError(meter.stop_reason)
                if self._reserved == 0:
                    granted, reached = self.ledger.reserve(meter.take_unflushed(), self.reserve_calls)
                    if reached is not None:
                        meter.stop(f"{BUDGET_EXCEEDED}: {reached}")
                        raise BudgetExceededError(meter.stop_reason)
                    self._reserved = granted
                self._reserved -= 1
        if self.limiter is not None:
            self.limiter.acquire(model)

    def rate_limited(self, model: str, retry_after_s: float | None) -> None:
        """Hold the whole fleet back from `model` for the provider's Retry-After."""
        if self.limiter is not None:
            self.limiter.hold(model, retry_after_s)

    def spent(self, model: str, tokens: int) -> None:
        """Count tokens against the tokens-per-minute limit."""
        if self.limiter is not None:
            self.limiter.spent(model, tokens)

    def close(self) -> None:
        """Add what is left to the shared counters and give back unused budget calls."""
        assert self.meter is not None
        with self._lock:
            unused, self._reserved = self._reserved, 0
        self.ledger.flush(self.meter.take_unflushed(), release=unused)
        if self.limiter is not None:
            self.limiter.flush()


class FleetMetering:
    """Builds the meter of each step or shard a worker process runs."""

    def __init__(self, client: redis.Redis, settings: WorkerSettings) -> None:
        self.redis = client
        self.settings = settings
        self.limiter = (
            RateLimiter(client, settings.lm_rate_limits, settings.lm_rate_limit_max_wait_s)
            if settings.lm_rate_limits
            else None
        )

    @contextmanager
    def metered(self, job_id: str, index: int, budget: Budget | None) -> Iterator[Meter]:
        """Meter every LM call made while the block runs; the counters reach Redis when it ends."""
        ledger = SpendLedger(self.redis, job_id, index, budget, self.settings.job_ttl_s)
        gate = FleetGate(ledger, self.limiter, self.settings.lm_budget_reserve_calls)
        meter = Meter(gate)
        gate.meter = meter
        try:
            with metering(meter):
                yield meter
        finally:
            gate.close()
