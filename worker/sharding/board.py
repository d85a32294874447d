"""The Redis side of a sharded evaluation: the request, a list of shards to claim, leases, results.

Whoever is free claims the next shard: the step's own process and shard tasks on other workers alike,
so a step waiting for its shards works on them itself and a fleet of one never deadlocks. A claimed
shard is held by a lease renewed while it runs; a shard whose holder died has no live lease and is taken
over by the step. Results are stored with HSETNX, so each shard (and each example) is counted once,
whatever the number of deliveries; a redelivered step finds the shards its dead holder finished.

An evaluation's keys live while its step is unfinished: the step's set of evaluation ids lets them be
dropped once the step's record is stored (`drop_step_evaluations`), and a shard finishing after that
stores nothing, so no key comes back.
"""

from collections.abc import Callable

import redis

from btq.schemas import keys
from btq.schemas.blocking import blpop
from btq.schemas.codec import decode
from btq.schemas.sharding import EvalRequest, ShardResult
from btq.worker.state.lease import Holder, StepLease

# Pop queued shard numbers until one has no result, then try its lease: one round trip per claim instead
# of a pop, a result check and a lease write each. Returns {shard, 1} when leased, {shard, 0} when
# another holder's lease is there (the caller then checks whether that holder is gone), {} when empty.
_CLAIM = """
while true do
  local shard = redis.call('lpop', KEYS[1])
  if not shard then return {} end
  if redis.call('hexists', KEYS[2], shard) == 0 then
    local leased = redis.call('set', ARGV[1] .. shard, ARGV[2], 'NX', 'PX', ARGV[3])
    return {shard, leased and 1 or 0}
  end
end
"""

# A shard's result counts only while its evaluation exists: once the step's record is stored the
# evaluation is dropped, and a late shard must not bring its keys back for the retention period.
_STORE = """
if redis.call('exists', KEYS[1]) == 0 then return -1 end
local stored = redis.call('hsetnx', KEYS[2], ARGV[1], ARGV[2])
redis.call('rpush', KEYS[3], ARGV[1])
redis.call('ltrim', KEYS[3], -1000, -1)
redis.call('expire', KEYS[3], ARGV[3])
redis.call('expire', KEYS[2], ARGV[3])
return stored
"""


class ShardBoard:
    """Claims, leases and results of one evaluation's shards."""

    def __init__(
        self,
        client: redis.Redis,
        job_id: str,
        eval_id: str,
        ttl_s: int,
        lease_ttl_s: float,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.redis = client
        self.redact = redact or (lambda text: text)  # a provider may echo a worker secret in an error
        self.job_id = job_id
        self.eval_id = eval_id
        self.ttl_s = ttl_s
        self.lease_ttl_s = lease_ttl_s
        self._claim = client.register_script(_CLAIM)

    def _key(self, part: str) -> str:
        return keys.eval_key(self.job_id, self.eval_id, part)

    def publish(self, request: EvalRequest) -> EvalRequest:
        """Store `request` unless a previous delivery did, queue every shard without a result, return the stored one.

        A stored request wins: its shard boundaries were cut for the fleet of its time, and its
        finished shards are reused as they are.
        """
        if not self.redis.set(self._key("request"), request.model_dump_json(), nx=True, ex=self.ttl_s):
            stored = self.request()
            if stored is not None:
                request = stored
        done = self.done()
        todo = [str(n) for n in range(len(request.shards)) if n not in done]
        pipe = self.redis.pipeline()
        evals = keys.step_evals_key(self.job_id, request.step_index)
        pipe.sadd(evals, request.eval_id)
        pipe.expire(evals, self.ttl_s)
        pipe.delete(self._key("todo"))
        if todo:
            pipe.rpush(self._key("todo"), *todo)
        for part in ("todo", "results", "notify"):
            pipe.expire(self._key(part), self.ttl_s)
        pipe.execute()
        return request

    def request(self) -> EvalRequest | None:
        """Return the stored request (None once it expired or for an unknown evaluation)."""
        raw = self.redis.get(self._key("request"))
        return decode(EvalRequest, raw) if raw is not None else None

    def lease(self, shard: int) -> StepLease:
        """Return the (not yet acquired) lease of `shard`."""
        return StepLease.on_key(self.redis, self._key(f"lease:{shard}"), self.lease_ttl_s)

    def claim_next(self) -> tuple[int, StepLease] | None:
        """Pop queued shards until one has no result and its lease is ours; None when the queue is empty."""
        while True:
            lease = StepLease.on_key(self.redis, "", self.lease_ttl_s)  # its key is known once a shard is popped
            popped = self._claim(
                keys=[self._key("todo"), self._key("results")],
                args=[self._key("lease:"), lease.value, lease.ttl_ms],
            )
            if not popped:
                return None
            shard = int(popped[0])
            lease.key = self._key(f"lease:{shard}")
            if int(popped[1]) == 1:
                lease.adopt()
                return shard, lease
            if lease.acquire():  # leased by another holder: taken over only if that holder is gone
                return shard, lease

    def take_over(self, shard: int) -> StepLease | None:
        """Lease `shard` if nobody holds it (its holder finished, gave up or died); None otherwise."""
        lease = self.lease(shard)
        return lease if lease.acquire() else None

    def unheld(self, shards: list[int]) -> list[int]:
        """Return those of `shards` whose lease is free or whose holder is gone (one round trip for all)."""
        if not shards:
            return []
        raws = self.redis.mget([self._key(f"lease:{shard}") for shard in shards])
        return [
            shard
            for shard, raw in zip(shards, raws, strict=True)
            if raw is None or ((holder := Holder.decode(raw)) is not None and holder.is_gone())
        ]

    def store(self, result: ShardResult) -> bool:
        """Store a shard's result once and wake the waiting step; return whether this one was stored."""
        text = self.redact(result.model_dump_json())
        parts = [self._key(part) for part in ("request", "results", "notify")]
        return int(self.redis.eval(_STORE, 3, *parts, str(result.shard), text, self.ttl_s)) == 1

    def done(self) -> set[int]:
        """Return the shards that have a stored result."""
        return {int(k) for k in self.redis.hkeys(self._key("results"))}

    def results(self) -> dict[int, ShardResult]:
        """Return every stored shard result by shard number."""
        raw = self.redis.hgetall(self._key("results"))
        return {int(k): decode(ShardResult, v) for k, v in raw.items()}

    def wait(self, timeout_s: float) -> None:
        """Block until some shard finishes or `timeout_s` passes (whichever comes first)."""
        # Its reply is awaited past the client's socket timeout: a late reply is no outage (btq.schemas.blocking).
        blpop(self.redis, self._key("notify"), timeout_s)

    def finish(self) -> None:
        """Drop the claim queue once the step combined the results (late shard tasks then find nothing)."""
        self.redis.delete(self._key("todo"))


def drop_step_evaluations(client: redis.Redis, job_id: str, index: int) -> int:
    """Delete every sharded evaluation step `index` published (call once its record is stored); return how many."""
    evals = keys.step_evals_key(job_id, index)
    ids = [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in client.smembers(evals)]  # type: ignore[union-attr]
    pipe = client.pipeline(transaction=False)
    for eval_id in ids:
        pipe.delete(*[keys.eval_key(job_id, eval_id, part) for part in keys.EVAL_PARTS])
    pipe.delete(evals)
    pipe.execute()
    return len(ids)
