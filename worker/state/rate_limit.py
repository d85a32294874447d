"""Fleet-wide LM rate limits: one token bucket per model in Redis, shared by every worker (GCRA in Lua).

A bucket is a theoretical arrival time (TAT, in ms of Redis' clock, so every worker agrees on time): a
request is admitted when the TAT is not further ahead than the burst tolerance, and pushes the TAT one
interval (60 s / rpm) ahead. Tokens are paced the same way on a second TAT, debited once the response
reports them (the next request carries them, so it costs no extra round trip). A call that finds no
capacity sleeps until there is (cancellable, bounded by `max_wait_s`); a provider's 429 pushes the TAT
past its `Retry-After`, so the whole fleet holds back, not just the worker that was refused.
"""

import threading
import time
from collections import defaultdict

import redis

from btq.schemas import keys
from btq.schemas.exceptions import BtqError
from btq.worker.core import interrupt
from btq.worker.settings import LMRateLimit

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local per_request, request_tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local per_token, token_tolerance, debit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wait = 0
if per_token > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
  if debit > 0 then
    tat = tat + per_token * debit
    redis.call('SET', KEYS[2], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
  end
  wait = math.max(wait, tat - token_tolerance - now)
end
if ARGV[6] == 'debit' then return {'0', 0, '0'} end
local request_tat = now
if per_request > 0 then
  request_tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  wait = math.max(wait, request_tat - request_tolerance - now)
end
if wait > 0 then return {string.format('%.3f', wait), 0, '0'} end
local n = tonumber(ARGV[7])
if per_request > 0 then
  -- The slots due within the horizon (at least one): each conforming at its own time, none shared.
  local due = 1 + math.floor((now + tonumber(ARGV[8]) + request_tolerance - request_tat) / per_request)
  n = math.max(1, math.min(n, due))
  local tat = request_tat + n * per_request
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
end
return {'0', n, string.format('%.3f', request_tat - request_tolerance - now)}
"""

_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), until_ms)
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 60000)
return 1
"""

SLOT_HORIZON_S = 0.05
"""A process takes, in one round trip, the request slots that fall due within this horizon (up to
`MAX_SLOTS`) and uses each at its own time: the fleet's spacing is unchanged, Redis is asked less often
under high limits, and at most this much capacity is left unused when a step ends."""

MAX_SLOTS = 16

DEFAULT_RETRY_AFTER_S = 1.0
"""How long the fleet holds back after a 429 that names no Retry-After."""


class RateLimitWaitError(BtqError):
    """Raised when an LM call waited `max_wait_s` for rate-limit capacity without getting any."""


class RateLimiter:
    """Admits LM requests against the fleet's per-model limits (see module docstring)."""

    def __init__(self, client: redis.Redis, limits: dict[str, LMRateLimit], max_wait_s: float) -> None:
        self.redis = client
        self.limits = limits
        self.max_wait_s = max_wait_s
        self._acquire = client.register_script(_ACQUIRE)
        self._hold = client.register_script(_HOLD)
        self._pending: defaultdict[str, int] = defaultdict(int)
        self._slots: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def limit_for(self, model: str) -> tuple[str, LMRateLimit] | None:
        """The limit governing `model`: its own, else its provider prefix's (`openai/...` -> `openai`)."""
        if model in self.limits:
            return model, self.limits[model]
        prefix = model.split("/", 1)[0]
        if prefix in self.limits:
            return prefix, self.limits[prefix]
        return None

    def acquire(self, model: str) -> None:
        """Wait until the fleet may send one more request to `model` (no-op without a limit).

        Raises:
            RateLimitWaitError: No capacity within `max_wait_s`.
            StepCancelledError: The job was cancelled while waiting.
        """
        found = self.limit_for(model)
        if found is None:
            return
        name, limit = found
        deadline = time.monotonic() + self.max_wait_s
        while True:
            slot = self._take_slot(name)
            if slot is not None:
                delay = slot - time.monotonic()
                if delay > 0:  # a slot of ours, due within the horizon: spacing holds across the fleet
                    interrupt.sleep(delay)
                return
            wait_s = self._reserve(name, limit)
            if wait_s <= 0:
                continue
            if time.monotonic() + wait_s > deadline:
                raise RateLimitWaitError(f"no rate-limit capacity for {name} within {self.max_wait_s} s")
            self.waited_s += wait_s
            interrupt.sleep(wait_s)

    def _take_slot(self, name: str) -> float | None:
        with self._lock:
            slots = self._slots.get(name)
            return slots.pop(0) if slots else None

    def _reserve(self, name: str, limit: LMRateLimit) -> float:
        """Take the slots due soon into this process; return how long to wait when there are none."""
        wait_ms, granted, first_ms = self._run(name, limit, self._take_pending(name), "acquire")
        if float(wait_ms) > 0:
            return float(wait_ms) / 1000
        per_request_s = 60 / limit.rpm if limit.rpm else 0.0
        now = time.monotonic()
        first_s = float(first_ms) / 1000
        slots = [now + max(0.0, first_s + i * per_request_s) for i in range(int(granted))]
        with self._lock:
            self._slots.setdefault(name, []).extend(slots)
            self._slots[name].sort()
        return 0.0

    def spent(self, model: str, tokens: int) -> None:
        """Note tokens a finished request used; debited with the next request (tokens-per-minute limits)."""
        found = self.limit_for(model)
        if found is not None and found[1].tpm and tokens > 0:
            with self._lock:
                self._pending[found[0]] += tokens

    def hold(self, model: str, retry_after_s: float | None) -> None:
        """The provider refused a request (429): no worker sends to this model before `retry_after_s`."""
        found = self.limit_for(model)
        if found is None:
            return
        after = retry_after_s if retry_after_s is not None and retry_after_s > 0 else DEFAULT_RETRY_AFTER_S
        with self._lock:
            self._slots.pop(found[0], None)  # slots taken before the refusal would not honour it
        self._hold(keys=[_bucket(found[0], "requests")], args=[after * 1000])

    def flush(self) -> None:
        """Debit tokens still pending (at the end of a step or shard)."""
        with self._lock:
            pending = dict(self._pending)
            self._pending.clear()
        for name, tokens in pending.items():
            if tokens:
                self._run(name, self.limits[name], tokens, "debit")

    def _take_pending(self, name: str) -> int:
        with self._lock:
            return self._pending.pop(name, 0)

    def _run(self, name: str, limit: LMRateLimit, debit: int, mode: str) -> tuple[bytes, int, bytes]:
        per_request = 60_000 / limit.rpm if limit.rpm else 0.0
        per_token = 60_000 / limit.tpm if limit.tpm else 0.0
        wait_ms, granted, first_ms = self._acquire(
            keys=[_bucket(name, "requests"), _bucket(name, "tokens")],
            args=[
                per_request,
                (limit.burst_requests - 1) * per_request,
                per_token,
                limit.burst_tokens * per_token,
                debit,
                mode,
                MAX_SLOTS,
                SLOT_HORIZON_S * 1000,
            ],
        )
        return wait_ms, int(granted), first_ms


def _bucket(name: str, part: str) -> str:
    return f"{keys.RATE_LIMIT}:{name}:{part}"
