"""The fleet heartbeat: one record per worker (manifest, pool size, expiry), written and read here.

A worker's main process publishes its `RegistryManifest`, carrying its pool size and expiry, under
`keys.worker_key(name, "manifest")` with a Redis expiry, lists itself in `keys.WORKERS`, and renews both
every heartbeat. Producers route and validate jobs with the same records (`btq.producer.fleet`), shard
sizing sums their pool sizes, `btq workers` and the dashboard show them. A worker that dies stops
renewing: its record lapses and readers prune its name.
"""

import logging
import time
from typing import cast

import pydantic
import redis

from btq.schemas import keys
from btq.schemas.manifest import RegistryManifest

logger = logging.getLogger(__name__)


def publish(client: redis.Redis, record: RegistryManifest, ttl_s: float) -> None:
    """Write (or renew) one worker's record, with its `running` hash, to expire `ttl_s` from now."""
    now = time.time()
    ttl_ms = max(1, int(ttl_s * 1000))
    record = record.model_copy(update={"published_at": now, "expires_at": now + ttl_s})
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.worker_key(record.worker, "manifest"), record.model_dump_json(), px=ttl_ms)
    pipe.pexpire(keys.worker_key(record.worker, "running"), ttl_ms)
    pipe.zadd(keys.WORKERS, {record.worker: now})
    pipe.execute()


def withdraw(client: redis.Redis, name: str) -> None:
    """Remove a stopping worker's record: it takes no more jobs and no longer counts for sharding."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.worker_key(name, "manifest"), keys.worker_key(name, "running"))
    pipe.zrem(keys.WORKERS, name)
    pipe.execute()


def live_records(client: redis.Redis) -> list[RegistryManifest]:
    """Return the records of live workers; names whose record lapsed are pruned, unreadable ones skipped."""
    names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in cast(list[bytes], client.zrange(keys.WORKERS, 0, -1))
    ]
    if not names:
        return []
    raws = cast(list[bytes | None], client.mget([keys.worker_key(n, "manifest") for n in names]))
    gone = [n for n, raw in zip(names, raws, strict=True) if raw is None]
    if gone:
        client.zrem(keys.WORKERS, *gone)
    now = time.time()
    records = []
    for name, raw in zip(names, raws, strict=True):
        if raw is None:
            continue
        try:
            record = RegistryManifest.model_validate_json(raw)
        except pydantic.ValidationError as exc:  # not ours, or another version's: it does not count
            logger.warning("unreadable heartbeat record of worker %s: %s", name, exc.errors()[0].get("msg"))
            continue
        if record.expires_at and record.expires_at < now:
            continue  # lapsed while Redis had not yet expired the key
        records.append(record)
    return records


def live_slots(client: redis.Redis) -> int:
    """Return the number of worker processes in live workers (0 when none said it is alive)."""
    return sum(record.pool_size for record in live_records(client))
