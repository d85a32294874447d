"""The fleet heartbeat: one record per worker (manifest, pool size, expiry), written and read here.

A worker's main process publishes its `RegistryManifest`, carrying its pool size and expiry, under
`keys.worker_key(name, "manifest")` with a Redis expiry, lists itself in `keys.WORKERS`, and renews both
every heartbeat. Producers route and validate jobs with the same records (`btq.producer.fleet`), shard
sizing sums their pool sizes, `btq workers` and the dashboard show them. A worker that dies stops
renewing: its record lapses and readers prune its name.
"""

import json
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


def _live_raw(client: redis.Redis) -> list[tuple[str, bytes]]:
    """Return (name, raw record) of every listed worker whose record key exists; prune the others' names."""
    names = [_text(n) for n in cast(list[bytes], client.zrange(keys.WORKERS, 0, -1))]
    if not names:
        return []
    raws = cast(list[bytes | None], client.mget([keys.worker_key(n, "manifest") for n in names]))
    gone = [n for n, raw in zip(names, raws, strict=True) if raw is None]
    if gone:
        client.zrem(keys.WORKERS, *gone)
    return [(name, raw) for name, raw in zip(names, raws, strict=True) if raw is not None]


def live_records(client: redis.Redis) -> list[RegistryManifest]:
    """Return the records of live workers; names whose record lapsed are pruned, unreadable ones skipped."""
    now = time.time()
    records = []
    for name, raw in _live_raw(client):
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
    """Return the number of worker processes in live workers (0 when none said it is alive).

    Asked before every sharded evaluation: reads only the two fields it needs from each record (a
    manifest lists every registered program, optimizer and dataset, and a full parse of each costs more
    than the answer is worth). A record that is not a JSON object with a whole pool size does not count.
    """
    now = time.time()
    total = 0
    for name, raw in _live_raw(client):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        pool = record.get("pool_size") if isinstance(record, dict) else None
        if not isinstance(pool, int) or isinstance(pool, bool) or pool < 0:
            logger.warning("unreadable heartbeat record of worker %s: no whole pool_size", name)
            continue
        expires = record.get("expires_at") if isinstance(record, dict) else None
        if isinstance(expires, int | float) and expires and expires < now:
            continue  # lapsed while Redis had not yet expired the key
        total += pool
    return total


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
