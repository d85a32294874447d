"""One heartbeat per worker: its record carries manifest, pool size and expiry; every reader uses it."""

import time

import pytest
import redis

from btq.producer.fleet.view import FleetView
from btq.schemas import keys
from btq.schemas.manifest import RegistryManifest
from btq.worker.state import fleet as heartbeat
from tests.conftest import Fleet, redis_url, wait_until

DB = 10


@pytest.fixture
def store() -> redis.Redis:
    client = redis.Redis.from_url(redis_url(DB))
    client.flushdb()
    return client


def record(name: str, pool_size: int) -> RegistryManifest:
    return RegistryManifest(
        programs={"p": ["self"]},
        metrics=[],
        lms=[],
        datasets={},
        optimizers={},
        worker=name,
        published_at=0.0,
        pool_size=pool_size,
    )


def test_shard_sizing_and_producers_read_the_same_records(store: redis.Redis) -> None:
    heartbeat.publish(store, record("a@h", 3), ttl_s=30)
    heartbeat.publish(store, record("b@h", 2), ttl_s=30)
    assert heartbeat.live_slots(store) == 5
    seen = {w.name: w.pool_size for w in FleetView(store, "q").workers()}
    assert seen == {"a@h": 3, "b@h": 2}
    ttl = store.pttl(keys.worker_key("a@h", "manifest"))
    assert 0 < ttl <= 30_000
    heartbeat.withdraw(store, "a@h")
    assert heartbeat.live_slots(store) == 2
    assert [w.name for w in FleetView(store, "q").workers()] == ["b@h"]


def test_a_lapsed_record_stops_counting_and_its_name_is_pruned(store: redis.Redis) -> None:
    heartbeat.publish(store, record("fast@h", 4), ttl_s=0.2)
    assert heartbeat.live_slots(store) == 4
    wait_until(lambda: not store.exists(keys.worker_key("fast@h", "manifest")), 5, "Redis expiring the record")
    assert heartbeat.live_slots(store) == 0
    assert store.zcard(keys.WORKERS) == 0


def test_a_record_past_its_own_expiry_does_not_count_even_while_the_key_lives(store: redis.Redis) -> None:
    stale = record("stale@h", 4).model_copy(update={"expires_at": time.time() - 1})
    store.set(keys.worker_key("stale@h", "manifest"), stale.model_dump_json(), ex=60)
    store.zadd(keys.WORKERS, {"stale@h": time.time()})
    assert heartbeat.live_slots(store) == 0
    assert FleetView(store, "q").workers() == []


def test_an_unreadable_record_is_skipped_with_a_warning(store: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    heartbeat.publish(store, record("ok@h", 2), ttl_s=30)
    store.set(keys.worker_key("junk@h", "manifest"), b"\xff not json", ex=60)
    store.zadd(keys.WORKERS, {"junk@h": time.time()})
    assert heartbeat.live_slots(store) == 2
    assert "junk@h" in caplog.text


def test_running_workers_publish_their_pool_size(fleet: Fleet) -> None:
    client = redis.Redis.from_url(fleet.url)
    workers = FleetView(client, fleet.queue).workers()
    assert len(workers) == 2 and all(w.pool_size >= 1 for w in workers)
    assert all(w.manifest.expires_at > time.time() for w in workers)
    assert heartbeat.live_slots(client) == sum(w.pool_size for w in workers)
    assert not client.exists("btq:fleet:slots")  # the one heartbeat: no second key describes the workers
