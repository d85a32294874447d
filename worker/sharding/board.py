"""The Redis side of a sharded evaluation: the request, a list of shards to claim, leases, results.

Whoever is free claims the next shard: the step's own process and shard tasks on other workers alike,
so a step waiting for its shards works on them itself and a fleet of one never deadlocks. A claimed
shard is held by a lease renewed while it runs; a shard whose holder died has no live lease and is taken
over by the step. Results are stored with HSETNX, so each shard (and each example) is counted once,
whatever the number of deliveries; a redelivered step finds the shards its dead holder finished.
"""

from collections.abc import Callable

import redis

from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.sharding import EvalRequest, ShardResult
from btq.worker.state.lease import StepLease


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
            raw = self.redis.lpop(self._key("todo"))
            if raw is None:
                return None
            shard = int(str(raw, "ascii") if isinstance(raw, bytes) else str(raw))
            if self.redis.hexists(self._key("results"), str(shard)):
                continue
            lease = self.lease(shard)
            if lease.acquire():
                return shard, lease

    def take_over(self, shard: int) -> StepLease | None:
        """Lease `shard` if nobody holds it (its holder finished, gave up or died); None otherwise."""
        lease = self.lease(shard)
        return lease if lease.acquire() else None

    def store(self, result: ShardResult) -> bool:
        """Store a shard's result once and wake the waiting step; return whether this one was stored."""
        text = self.redact(result.model_dump_json())
        stored = bool(self.redis.hsetnx(self._key("results"), str(result.shard), text))
        pipe = self.redis.pipeline()
        pipe.rpush(self._key("notify"), str(result.shard))
        pipe.ltrim(self._key("notify"), -1000, -1)
        pipe.expire(self._key("notify"), self.ttl_s)
        pipe.expire(self._key("results"), self.ttl_s)
        pipe.execute()
        return stored

    def done(self) -> set[int]:
        """Return the shards that have a stored result."""
        return {int(k) for k in self.redis.hkeys(self._key("results"))}

    def results(self) -> dict[int, ShardResult]:
        """Return every stored shard result by shard number."""
        raw = self.redis.hgetall(self._key("results"))
        return {int(k): decode(ShardResult, v) for k, v in raw.items()}

    def wait(self, timeout_s: float) -> None:
        """Block until some shard finishes or `timeout_s` passes (whichever comes first)."""
        self.redis.blpop([self._key("notify")], timeout=timeout_s)

    def finish(self) -> None:
        """Drop the claim queue once the step combined the results (late shard tasks then find nothing)."""
        self.redis.delete(self._key("todo"))
