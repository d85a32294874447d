"""Blocking pops wait out their block however short the client's socket timeout (a real redis-server).

The clients here read replies under a 0.2 s socket timeout (`?socket_timeout=0.2` in the URL) and block
for a second: a plain BLPOP raises redis.TimeoutError after 0.2 s although Redis is fine.
"""

import threading
from collections.abc import Iterator

import pytest
import redis

from btq.producer.client import JobClient
from btq.schemas.blocking import blpop
from btq.worker.sharding.board import ShardBoard
from tests.conftest import redis_url, wait_until
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

SHORT_TIMEOUT = "socket_timeout=0.2"
KEY = "btq-test:pop"
NAME = "btq-test-impatient"


@pytest.fixture
def impatient(scratch_db: redis.Redis) -> Iterator[redis.Redis]:
    """A client of the (emptied) scratch database whose socket timeout is 0.2 s."""
    client = redis.Redis.from_url(f"{redis_url(6)}?{SHORT_TIMEOUT}", client_name=NAME)
    yield client
    client.close()


def test_a_pop_blocking_past_the_socket_timeout_returns_nothing(impatient: redis.Redis) -> None:
    assert blpop(impatient, KEY, 1.0) is None
    assert impatient.ping()  # the connection went back to the pool in a usable state


def test_a_waiting_value_is_popped_at_once(impatient: redis.Redis, scratch_db: redis.Redis) -> None:
    scratch_db.rpush(KEY, b"first", b"second")
    assert blpop(impatient, KEY, 1.0) == b"first"
    assert scratch_db.lrange(KEY, 0, -1) == [b"second"]


def test_a_value_pushed_while_the_pop_blocks_wakes_it(impatient: redis.Redis, scratch_db: redis.Redis) -> None:
    def push_once_blocked() -> None:
        def blocked() -> bool:
            return any(c["name"] == NAME and "b" in c["flags"] for c in scratch_db.client_list())

        wait_until(blocked, 10, "the pop to block")
        scratch_db.rpush(KEY, b"late")

    pusher = threading.Thread(target=push_once_blocked)
    pusher.start()
    try:
        assert blpop(impatient, KEY, 10.0) == b"late"
    finally:
        pusher.join(timeout=15)


def test_the_shard_board_waits_out_its_block(impatient: redis.Redis) -> None:
    board = ShardBoard(impatient, "j", "ab12cd34", ttl_s=60, lease_ttl_s=5)
    board.wait(timeout_s=1.0)  # nothing finishes: returns after the block instead of raising TimeoutError
    board.redis.rpush(board._key("notify"), b"1")
    board.wait(timeout_s=1.0)
    assert impatient.llen(board._key("notify")) == 0


def test_evaluate_waits_for_the_worker_past_a_short_socket_timeout(client: JobClient) -> None:
    # LM calls of 120 ms: the worker's report comes well after the socket timeout.
    job_id = client.submit(spec("p", "given", True, 13, lm="t.sim_slower"))
    client.wait(job_id, timeout_s=120)
    impatient = JobClient(client.settings, redis.Redis.from_url(f"{client.settings.redis_url}?{SHORT_TIMEOUT}"))
    report = impatient.evaluate(job_id, "t.arith", "test", timeout_s=120)
    assert report.error is None
    assert set(report.scores) == {"0", "1"}
    impatient.redis.close()
