"""An LM-call cache in Redis shared by every worker, plugged in as `dspy.cache`.

dspy looks every cacheable LM call up in `dspy.cache` (an LM built with `cache=False` is never looked
up, as in dspy). Ours keeps entries in Redis as JSON, so an identical re-run of a job, a step redelivered
after its worker died, and shards of one evaluation on different workers replay finished calls instead
of paying for them again. Values are never pickled: dspy's native call records are plain data, LiteLLM
chat responses travel as their pydantic dump; anything else is simply not cached.

The cache only answers inside a job's context (`caching_for`), whose namespace is a hash of the job LM's
state (engine and kwargs) on top of dspy's own key (the full request, model name included, so a
fine-tuned model is a different entry). A job with `cache: false` neither reads nor writes it.

Single flight: on a miss, the caller claims the request (`SET NX` on a flight key with a TTL) and makes
the call; a caller anywhere in the fleet that misses the same request meanwhile waits for that value
instead of paying for the same call (identical jobs started together, a redelivered step racing its
first run). A claim lapses after `flight_ttl_s` (its holder died, or its call failed): a waiter then
claims it and makes the call itself, so a wait is bounded and a lost claimant costs one TTL.
"""

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dspy
import redis
from dspy.clients.cache import Cache

from btq.schemas import keys
from btq.schemas.metrics import WorkerCount
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.tally import TALLY

logger = logging.getLogger(__name__)

NAMESPACE_SETTING = "btq_lm_cache"
"""dspy setting (a context override, inherited by dspy's worker threads) holding the job's namespace."""

_LITELLM = "$litellm"


def _encode(value: Any) -> str | None:
    """JSON text of a cacheable value, or None when it cannot travel without pickle."""
    if isinstance(value, dict):
        try:
            return json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return None
    if type(value).__name__ == "ModelResponse" and type(value).__module__.startswith("litellm"):
        return json.dumps({_LITELLM: "ModelResponse", "data": value.model_dump(mode="json")})
    return None


def _decode(text: bytes | str) -> Any:
    value = json.loads(text)
    if isinstance(value, dict) and value.get(_LITELLM) == "ModelResponse":
        import litellm

        return litellm.ModelResponse(**value["data"])
    return value


class RedisLMCache(Cache):  # type: ignore[misc,str-unpack]
    """dspy's cache interface over Redis: JSON values, a TTL and a cap on the number of entries."""

    def __init__(
        self, client: redis.Redis, ttl_s: int, max_entries: int, max_value_bytes: int, flight_ttl_s: float = 30.0
    ) -> None:
        super().__init__(enable_disk_cache=False, enable_memory_cache=False, disk_cache_dir=None)
        self.redis = client
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_value_bytes = max_value_bytes
        self.flight_ttl_s = flight_ttl_s
        self._puts = 0
        self._warned_at = 0.0
        self._count_lock = threading.Lock()

    def _key(self, request: dict[str, Any], ignored: list[str] | None) -> str | None:
        namespace = dspy.settings.get(NAMESPACE_SETTING)
        if not namespace:
            return None
        try:
            inner = self.cache_key(request, ignored)
        except Exception:  # dspy skips caching requests it cannot key; so do we
            return None
        return f"{keys.LM_CACHE}:{hashlib.sha256(f'{namespace}:{inner}'.encode()).hexdigest()}"

    def __contains__(self, key: str) -> bool:
        return False

    def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> Any:
        """Return the cached value of `request`, or None (a miss, or Redis unreachable)."""
        key = self._key(request, ignored_args_for_cache_key)
        if key is None:
            return None
        try:
            raw = self.redis.get(key)
            if raw is None and self.flight_ttl_s > 0:
                raw = self._claim_or_await(key)
        except redis.RedisError as exc:
            self._warn(exc)
            return None
        TALLY.add(WorkerCount.LM_CACHE_HITS if raw is not None else WorkerCount.LM_CACHE_MISSES)
        return self._prepare_cached_response(_decode(raw)) if raw is not None else None

    def _claim_or_await(self, key: str) -> bytes | str | None:
        """On a miss: claim the call (None: the caller makes it), or wait for the claimant's value."""
        flight = _flight_key(key)
        deadline = time.monotonic() + self.flight_ttl_s
        pause = 0.005
        while True:
            if self.redis.set(flight, "1", nx=True, ex=max(1, math.ceil(self.flight_ttl_s))):
                # The claimant before us may have stored the value and left between our read and our claim.
                raw: bytes | str | None = self.redis.get(key)
                if raw is not None:
                    self.redis.delete(flight)
                return raw
            # Bounded: by the claim's TTL (a claimant that died or failed lets the next caller claim).
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
            raw = self.redis.get(key)
            if raw is not None:
                return raw
            if time.monotonic() >= deadline:
                return None

    def put(
        self,
        request: dict[str, Any],
        value: Any,
        ignored_args_for_cache_key: list[str] | None = None,
        enable_memory_cache: bool = True,
    ) -> None:
        """Store `value` for `request` (skipped when it cannot travel as JSON or is too large)."""
        key = self._key(request, ignored_args_for_cache_key)
        if key is None:
            return
        text = _encode(value)
        try:
            pipe = self.redis.pipeline(transaction=False)
            if text is not None and len(text) <= self.max_value_bytes:
                pipe.set(key, text, ex=self.ttl_s)
                pipe.zadd(keys.LM_CACHE_INDEX, {key: time.time()})
            # The call is made: waiters find the value, or (not cacheable) claim and make their own.
            pipe.delete(_flight_key(key))
            pipe.execute()
            if text is not None:
                self._bound()
        except redis.RedisError as exc:
            self._warn(exc)

    def _bound(self) -> None:
        """Every 100 puts, drop index entries past the TTL and the oldest entries above the cap."""
        with self._count_lock:
            self._puts += 1
            if self._puts % 100:
                return
        self.redis.zremrangebyscore(keys.LM_CACHE_INDEX, "-inf", time.time() - self.ttl_s)
        excess = int(self.redis.zcard(keys.LM_CACHE_INDEX)) - self.max_entries
        if excess > 0:
            oldest: list[bytes] = [member for member, _score in self.redis.zpopmin(keys.LM_CACHE_INDEX, excess)]  # type: ignore[misc,str-unpack]
            if oldest:
                self.redis.delete(*oldest)

    def _warn(self, exc: Exception) -> None:
        # A cache that cannot be reached is a miss: the call is made, the result is the same.
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            logger.warning("LM cache unavailable, calling the LM directly: %r", exc)

    def reset_memory_cache(self) -> None:
        """Nothing is kept in memory."""


def _flight_key(key: str) -> str:
    """The claim on making the call cached under `key` (outside the cache's own key space)."""
    return f"{keys.LM_CACHE_FLIGHT}:{key.rsplit(':', 1)[1]}"


def namespace_for(job: ResolvedJob) -> str:
    """The cache namespace of a job: its LM's state (engine, kwargs) without secrets."""
    state = job.lm.dump_state()
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:24]


@contextmanager
def caching_for(job: ResolvedJob, enabled: bool) -> Iterator[None]:
    """Let LM calls made in this context (and dspy's worker threads) use the shared cache."""
    with dspy.context(**{NAMESPACE_SETTING: namespace_for(job) if enabled else None}):
        yield


def install_cache(
    client: redis.Redis | None, ttl_s: int, max_entries: int, max_value_bytes: int, flight_ttl_s: float = 30.0
) -> None:
    """Make the shared cache `dspy.cache` in this process (None: no LM-call caching at all)."""
    if client is None:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        return
    cache = RedisLMCache(client, ttl_s, max_entries, max_value_bytes, flight_ttl_s)
    with dspy._cache_lock:
        dspy.cache = cache
