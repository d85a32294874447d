"""Single flight for LM calls: a claim on making an uncached call, naming its holder like a step lease.

On a miss, the caller claims the request (the flight key, with a TTL) and makes the call; a caller
anywhere in the fleet that misses the same request meanwhile waits for the value instead of paying for
the same call. The claim's value is the claimant's `Holder` (host, pid, worker, node): a waiter takes the
claim over at once when the holder is gone, a process of this node that no longer runs (a SIGKILLed pool
child) or, on another node, a worker whose presence lapsed, instead of waiting out the TTL. A claim whose
holder lives lapses after `ttl_s` (its call failed, or it hangs): a waiter then claims the call, so every
wait is bounded.

The lookup is one Lua call: the cached value, or the claim made, or the current holder.
"""

import math
import os
import socket
import time
import uuid

import redis

from btq.schemas import keys
from btq.worker.state.lease import Holder, node_id

# The value, else the claim (a free one, or the one of a holder the caller found gone), else its holder.
_LOOKUP = """
local value = redis.call('get', KEYS[1])
if value then return {1, value} end
local current = redis.call('get', KEYS[2])
if not current or current == ARGV[3] then
  redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {2, ''}
end
return {3, current}
"""
_HIT, _CLAIMED, _HELD = 1, 2, 3

_PRESENCE_CHECK_S = 1.0
"""How often a waiter asks Redis whether another node's holder is still present."""


def flight_key(key: str) -> str:
    """The claim on making the call cached under `key` (outside the cache's own key space)."""
    return f"{keys.LM_CACHE_FLIGHT}:{key.rsplit(':', 1)[1]}"


class Flight:
    """Claims, waits for and releases calls in flight for one process."""

    def __init__(self, client: redis.Redis, ttl_s: float, worker: str = "") -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.worker = worker
        self._lookup = client.register_script(_LOOKUP)
        self._values: dict[int, str] = {}
        """Claim value by pid: a forked child's own is made on its first claim."""

    @property
    def value(self) -> str:
        """This process's claim value (a new one after a fork: a pool child is a holder of its own).

        Built once per process, by whichever of its threads asks first; every thread gets that one. A
        pool process starts its first evaluation with several dspy threads missing the cache at once,
        so the value is kept by pid in one atomic step (`setdefault`), never as a pid set before its value.
        """
        pid = os.getpid()
        value = self._values.get(pid)
        if value is None:
            holder = Holder(host=socket.gethostname(), pid=pid, worker=self.worker, token=uuid.uuid4().hex)
            value = self._values.setdefault(pid, holder.encode())  # of racing threads, the first one's
        return value

    def lookup(self, key: str) -> bytes | None:
        """Return the cached value of `key`, or None once this process holds the claim on the call.

        Waits (bounded by the TTL) while a live holder makes the call; takes a gone holder's claim at once.
        """
        flight = flight_key(key)
        ttl_ms = max(1, math.ceil(self.ttl_s * 1000))
        deadline = time.monotonic() + self.ttl_s
        pause, dead, presence_at = 0.005, "", 0.0
        while True:
            status, found = self._lookup(keys=[key, flight], args=[self.value, ttl_ms, dead])
            if int(status) == _HIT:
                return bytes(found)
            if int(status) == _CLAIMED:
                return None
            holder = Holder.decode(found)
            if holder is not None and holder.is_gone():
                dead = found.decode() if isinstance(found, bytes) else str(found)
                continue  # compare-and-set: of several waiters, one takes the claim over
            now = time.monotonic()
            remote = holder is not None and holder.worker and not _on_this_node(holder)
            if holder is not None and remote and now - presence_at >= _PRESENCE_CHECK_S:
                presence_at = now
                if self._absent(holder):
                    dead = found.decode() if isinstance(found, bytes) else str(found)
                    continue
            if now >= deadline:
                return None  # the holder is stuck or its call failed: make the call without a claim
            time.sleep(pause)  # bounded by the deadline above
            pause = min(pause * 2, 0.1)

    def _absent(self, holder: Holder) -> bool:
        """True when the holder's worker (another node's) no longer publishes its presence."""
        node = holder.worker.rpartition(":")[0] or holder.worker
        if "@" not in node:  # not a Celery node name (`name@host`): it publishes no presence to look at
            return False
        return not self.redis.exists(keys.worker_key(node, "manifest"))


def _on_this_node(holder: Holder) -> bool:
    # On this node the pid answers for the holder (Holder.is_gone); presence is for other nodes.
    return holder.host == socket.gethostname() and bool(holder.node) and holder.node == node_id()
