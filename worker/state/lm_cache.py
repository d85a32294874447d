"""An LM-call cache in Redis shared by every worker, plugged in as `dspy.cache`.

dspy looks every cacheable LM call up in `dspy.cache` (an LM built with `cache=False` is never looked
up, as in dspy). Ours keeps entries in Redis as JSON, so an identical re-run of a job, a step redelivered
after its worker died, and shards of one evaluation on different workers replay finished calls instead
of paying for them again. Values are never pickled: dspy's native call records are plain data, LiteLLM
chat responses travel as their pydantic dump; anything else is simply not cached.

The cache only answers inside a job's context (`caching_for`), whose namespace is a hash of the job LM's
state (engine and kwargs) on top of dspy's own key (the full request, model name included, so a
fine-tuned model is a different entry). A job with `cache: false` neither reads nor writes it.

Single flight (`lm_flight.py`): on a miss the caller claims the request, naming itself, and makes the
call; a caller anywhere in the fleet that misses the same request meanwhile waits for that value, and takes
the claim over at once when its holder is gone. The read, the claim and each poll of a wait are one Lua
call, so a miss costs one round trip; the write, the index entry and the claim's release are sent behind
the call by this process's writer thread (`lm_writes.py`), a whole batch of calls' in one Lua call, and a
caching context waits for them when it ends: if they cannot all land, the context ends with
`RetryableStepError` (its step or shard runs again) rather than finish on values a re-run could not replay.

In front of Redis, each caching context (a step, a shard task, a held-out scoring) keeps an in-process
tier of the values it read from Redis or wrote there, as their JSON text: a request repeated inside the
context (optimizers repeat many) is answered without a round trip. It holds only values that are in the
shared cache (a value too large for it, or that cannot travel as JSON, is not kept either) and lives no
longer than the context (nor than the cache's TTL), so a worker sees what every other worker sees: a
cleared cache is cold for the next step or shard. Every hit decodes its own copy of the value, so no
caller can change what another one reads.

The cache never changes a result: a lookup that fails (Redis away, or anything unexpected in this module)
is a miss, and the call is made.
"""

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dspy
import redis
from dspy.clients.cache import Cache

from btq.schemas import keys
from btq.schemas.exceptions import RetryableStepError
from btq.schemas.metrics import WorkerCount
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.tally import TALLY
from btq.worker.state.lm_flight import Flight, flight_key
from btq.worker.state.lm_writes import Write, WriteBehind

logger = logging.getLogger(__name__)

NAMESPACE_SETTING = "btq_lm_cache"
"""dspy setting (a context override, inherited by dspy's worker threads) holding the job's namespace."""

TIER_SETTING = "btq_lm_cache_tier"
"""dspy setting holding the caching context's in-process tier (shared by dspy's worker threads)."""

TIER_MAX_ENTRIES = 4096
"""Bound on the values one caching context keeps in process (least recently used dropped first)."""

FLUSH_TIMEOUT_S = 30.0
"""How long a caching context waits, when it ends, for its writes to land before it fails (retryable)."""

STORE_BATCH = 128
"""Writes per Lua call of the writer (a larger batch is split, so no call holds Redis long)."""

_LITELLM = "$litellm"

# Store a batch of calls' values and release their claims, in one call. KEYS: the index, then each
# write's value key and flight key. ARGV: TTL (s), now, this process's claim value ('' when single
# flight is off: the flight key is simply dropped), then each write's JSON ('' when not cacheable).
_STORE = """
for j = 1, (#KEYS - 1) / 2 do
  local key, flight, text = KEYS[2 * j], KEYS[2 * j + 1], ARGV[3 + j]
  if text ~= '' then
    redis.call('set', key, text, 'EX', ARGV[1])
    redis.call('zadd', KEYS[1], ARGV[2], key)
  end
  if ARGV[3] == '' or redis.call('get', flight) == ARGV[3] then redis.call('del', flight) end
end
return 1
"""


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


def _as_hit(value: Any) -> Any:
    """Mark a value decoded for this caller alone as a cache hit, as dspy marks its cached responses.

    dspy's own cache deep-copies what it keeps before handing it out; ours decodes a fresh value for
    every hit, so there is nothing shared to copy.
    """
    if hasattr(value, "usage"):
        value.usage = {}  # no LM call was made
        object.__setattr__(value, "cache_hit", True)
    return value


class LocalTier:
    """JSON texts of one caching context's values that are in the shared cache, by key, each until its TTL."""

    def __init__(self, max_entries: int = TIER_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes | str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | str | None:
        """Return the text kept for `key`, or None (never kept, dropped, or past its TTL)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def keep(self, key: str, text: bytes | str, ttl_s: float) -> None:
        """Keep `text`, which the shared cache holds under `key`, for at most `ttl_s`."""
        with self._lock:
            self._entries[key] = (text, time.monotonic() + ttl_s)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class RedisLMCache(Cache):  # type: ignore[misc,str-unpack]
    """dspy's cache interface over Redis: JSON values, a TTL and a cap on the number of entries."""

    def __init__(
        self,
        client: redis.Redis,
        ttl_s: int,
        max_entries: int,
        max_value_bytes: int,
        flight_ttl_s: float = 30.0,
        worker: str = "",
    ) -> None:
        super().__init__(enable_disk_cache=False, enable_memory_cache=False, disk_cache_dir=None)
        self.redis = client
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_value_bytes = max_value_bytes
        self.flight_ttl_s = flight_ttl_s
        self.flight = Flight(client, flight_ttl_s, worker)
        self.writes = WriteBehind(self._send, self._bound)
        self._store = client.register_script(_STORE)
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
        """Return the cached value of `request`, or None (a miss, or the cache could not answer)."""
        key = self._key(request, ignored_args_for_cache_key)
        if key is None:
            return None
        try:
            tier: LocalTier | None = dspy.settings.get(TIER_SETTING)
            raw = tier.get(key) if tier is not None else None
            if raw is None:
                raw = self.flight.lookup(key) if self.flight_ttl_s > 0 else self.redis.get(key)
                if raw is not None and tier is not None:
                    tier.keep(key, raw, self.ttl_s)
            value = _decode(raw) if raw is not None else None
        except Exception as exc:  # never an example's failure: a cache that cannot answer is a miss
            self._warn(exc)
            value = None
        TALLY.add(WorkerCount.LM_CACHE_HITS if value is not None else WorkerCount.LM_CACHE_MISSES)
        return _as_hit(value) if value is not None else None

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
        try:
            text = _encode(value)
        except Exception as exc:  # not cacheable after all: the claim is still released below
            self._warn(exc)
            text = None
        kept = text if text is not None and len(text) <= self.max_value_bytes else None
        tier: LocalTier | None = dspy.settings.get(TIER_SETTING) if kept is not None else None
        on_stored = None
        if tier is not None and kept is not None:  # what other workers read from Redis, this context reads here

            def on_stored() -> None:
                tier.keep(key, kept, self.ttl_s)

        self.writes.put(Write(key, kept, on_stored))

    def flush(self) -> None:
        """Wait until every value this process computed so far is in the shared cache.

        Raises:
            RetryableStepError: Some writes did not land (Redis away or too slow): whatever is about to
                be stored as done (a step's record, a shard's result) must not be, as an identical re-run
                could not replay the calls it rests on. The step or shard runs again.
        """
        missing = self.writes.flush(FLUSH_TIMEOUT_S)
        if missing:
            raise RetryableStepError(f"LM cache: {missing} writes did not reach Redis within {FLUSH_TIMEOUT_S:g} s")

    def _send(self, batch: list[Write]) -> None:
        """Store a batch of values and release their claims: one Lua call per `STORE_BATCH` writes."""
        claim = self.flight.value if self.flight_ttl_s > 0 else ""
        now = time.time()
        for start in range(0, len(batch), STORE_BATCH):
            part = batch[start : start + STORE_BATCH]
            names: list[str] = [keys.LM_CACHE_INDEX]
            args: list[str | float | int] = [self.ttl_s, now, claim]
            for write in part:
                names += (write.key, flight_key(write.key))
                args.append(write.text or "")
            self._store(keys=names, args=args)

    def _bound(self, stored: int) -> None:
        """Every 100 stored values, drop index entries past the TTL and the oldest entries above the cap."""
        with self._count_lock:
            before, self._puts = self._puts, self._puts + stored
            if before // 100 == self._puts // 100:
                return
        try:
            self.redis.zremrangebyscore(keys.LM_CACHE_INDEX, "-inf", time.time() - self.ttl_s)
            excess = int(self.redis.zcard(keys.LM_CACHE_INDEX)) - self.max_entries
            if excess > 0:
                oldest: list[bytes] = [member for member, _score in self.redis.zpopmin(keys.LM_CACHE_INDEX, excess)]  # type: ignore[misc,str-unpack]
                if oldest:
                    self.redis.delete(*oldest)
        except redis.RedisError as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        # A cache that cannot answer is a miss: the call is made, the result is the same.
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            unexpected = not isinstance(exc, redis.RedisError)
            logger.warning("LM cache unavailable, calling the LM directly: %r", exc, exc_info=unexpected)

    def reset_memory_cache(self) -> None:
        """Nothing is kept in memory beyond a caching context (`caching_for`)."""


def namespace_for(job: ResolvedJob) -> str:
    """The cache namespace of a job: its LM's state (engine, kwargs) without secrets."""
    state = job.lm.dump_state()
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:24]


@contextmanager
def caching_for(job: ResolvedJob, enabled: bool) -> Iterator[None]:
    """Let LM calls made in this context (and dspy's worker threads) use the shared cache."""
    settings: dict[str, Any] = {NAMESPACE_SETTING: None}
    if enabled:
        settings = {NAMESPACE_SETTING: namespace_for(job), TIER_SETTING: LocalTier()}
    try:
        with dspy.context(**settings):
            yield
    finally:
        if enabled:
            flush_writes()  # before the step's record or the shard's result says it is done


def flush_writes() -> None:
    """Wait until this process's LM-cache writes are in Redis (before storing anything that rests on them).

    Raises:
        RetryableStepError: They did not all land (see `RedisLMCache.flush`).
    """
    if isinstance(dspy.cache, RedisLMCache):
        dspy.cache.flush()


def install_cache(
    client: redis.Redis | None,
    ttl_s: int,
    max_entries: int,
    max_value_bytes: int,
    flight_ttl_s: float = 30.0,
    worker: str = "",
) -> None:
    """Make the shared cache `dspy.cache` in this process (None: no LM-call caching at all).

    `worker` names this process in its single-flight claims: with a Celery node name (`name@host`),
    waiters on other nodes take a claim over once that node's presence is gone.
    """
    if client is None:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        return
    cache = RedisLMCache(client, ttl_s, max_entries, max_value_bytes, flight_ttl_s, worker)
    with dspy._cache_lock:
        dspy.cache = cache
