"""A job's LM spending in Redis: usage counters per step and per job, and the budget's atomic gate.

Every worker process adds what its step or shard spent to two hashes (the step's and the job's) in one
Lua call. With a budget, the same call reserves the right to make a few more LM calls: it refuses once a
limit is reached (and marks the job's budget exhausted), so the check is atomic across the fleet. A
reservation is a few calls at most, fewer as the budget runs out (one at a time near the end), and what a
process does not use it gives back; so calls never exceed `max_lm_calls`, and tokens or dollars overshoot
a limit by at most what the calls already admitted spend (reported in the step's error).
"""

import redis

from btq.schemas import keys
from btq.schemas.usage import Budget, Usage
from btq.worker.core.metering import NANO, Counts, to_usage

_RESERVE = """
local ttl = tonumber(ARGV[1])
for i = 7, #ARGV, 2 do
  local delta = tonumber(ARGV[i + 1])
  if delta ~= 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], delta)
    redis.call('HINCRBY', KEYS[2], ARGV[i], delta)
  end
end
local release = tonumber(ARGV[6])
if release > 0 then redis.call('HINCRBY', KEYS[1], 'reserved', -release) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
local want = tonumber(ARGV[2])
if want <= 0 then return {0, ''} end
local v = redis.call('HMGET', KEYS[1], 'reserved', 'prompt_tokens', 'completion_tokens', 'cost_usd', 'exhausted')
if v[5] then return {0, v[5]} end
local reserved = tonumber(v[1] or '0')
local tokens = tonumber(v[2] or '0') + tonumber(v[3] or '0')
local reason = ''
local max_calls, max_tokens, max_cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local grant = want
if max_calls > 0 then
  local remaining = max_calls - reserved
  if remaining <= 0 then reason = 'max_lm_calls' end
  grant = math.min(want, math.max(1, math.floor(remaining / 16)))
end
if max_tokens > 0 and tokens >= max_tokens then reason = 'max_tokens' end
if max_cost > 0 and tonumber(v[4] or '0') >= max_cost then reason = 'max_cost_usd' end
if reason ~= '' then
  redis.call('HSET', KEYS[1], 'exhausted', reason)
  return {0, reason}
end
redis.call('HINCRBY', KEYS[1], 'reserved', grant)
return {grant, ''}
"""


class SpendLedger:
    """The shared usage counters of one job step (and its job), with the job's budget."""

    def __init__(self, client: redis.Redis, job_id: str, index: int, budget: Budget | None, ttl_s: int) -> None:
        self.redis = client
        self.job_id = job_id
        self.index = index
        self.budget = budget
        self.ttl_s = ttl_s
        self._script = client.register_script(_RESERVE)

    def reserve(self, counts: Counts, want: int, release: int = 0) -> tuple[int, str | None]:
        """Add `counts`, give back `release` unused calls, reserve up to `want` calls.

        Returns the calls granted and, when none could be, the budget limit that was reached.
        """
        budget = self.budget
        limits = (
            budget.max_lm_calls or 0 if budget else 0,
            budget.max_tokens or 0 if budget else 0,
            round(budget.max_cost_usd * NANO) if budget and budget.max_cost_usd else 0,
        )
        pairs: list[str | int] = []
        for name, amount in counts.items():
            if amount:
                pairs += [name, amount]
        granted, reason = self._script(
            keys=[keys.spend_key(self.job_id), keys.usage_key(self.job_id, self.index)],
            args=[self.ttl_s, want, *limits, release, *pairs],
        )
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return int(granted), text or None

    def flush(self, counts: Counts, release: int = 0) -> None:
        """Add `counts` and give back `release` unused calls (no reservation)."""
        if release or any(counts.values()):
            self.reserve(counts, 0, release)


def _usage_from_hash(raw: dict[bytes, bytes]) -> Usage:
    counts = {k.decode(): int(v) for k, v in raw.items() if k.decode() in Usage.model_fields}
    return to_usage(counts)


def step_usage(client: redis.Redis, job_id: str, index: int) -> Usage:
    """What step `index` spent so far, on every worker."""
    return _usage_from_hash(client.hgetall(keys.usage_key(job_id, index)))  # type: ignore[arg-type]


def job_spend(client: redis.Redis, job_id: str) -> tuple[Usage, int, str | None]:
    """What the job spent so far, the budget calls reserved, and the budget limit reached (if one was)."""
    raw: dict[bytes, bytes] = client.hgetall(keys.spend_key(job_id))  # type: ignore[assignment]
    exhausted = raw.get(b"exhausted")
    return _usage_from_hash(raw), int(raw.get(b"reserved", 0)), exhausted.decode() if exhausted else None


def budget_exhausted(client: redis.Redis, job_id: str) -> str | None:
    """The budget limit the job reached, or None."""
    reason = client.hget(keys.spend_key(job_id), "exhausted")
    return reason.decode() if isinstance(reason, bytes) else None
