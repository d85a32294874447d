"""Step leases name their holder: a holder process gone from this host is taken over at once, others are not."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from btq.schemas import keys
from btq.worker.state.lease import Holder, StepLease
from tests.conftest import redis_url

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url(6))
    conn.flushdb()
    yield conn
    conn.close()


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def _hold(client: redis.Redis, holder: Holder) -> None:
    client.set(keys.lease_key("j", 1), holder.encode(), px=60_000)


def test_a_lease_whose_holder_process_is_gone_is_taken_over_at_once(client: redis.Redis) -> None:
    dead = Holder(host=StepLease(client, "j", 1, 60).holder.host, pid=_exited_pid(), worker="w@h:1", token="t")
    _hold(client, dead)

    lease = StepLease(client, "j", 1, 60, worker="other")
    try:
        assert lease.acquire(), "no wait for the dead holder's 60 s lease"
        assert lease.took_over_from == dead
        current = lease.current_holder()
        assert current is not None and current.worker == "other"
    finally:
        lease.release()


def test_a_live_or_remote_holder_keeps_its_lease(client: redis.Redis) -> None:
    here = StepLease(client, "j", 1, 60).holder.host
    for holder in (
        Holder(host=here, pid=os.getpid(), worker="alive", token="t"),
        Holder(host="another-machine", pid=_exited_pid(), worker="remote", token="t"),
    ):
        _hold(client, holder)
        assert not StepLease(client, "j", 1, 60).acquire()
        assert Holder.decode(client.get(keys.lease_key("j", 1)) or b"") == holder
