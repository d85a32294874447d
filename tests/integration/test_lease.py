"""Step leases name their holder: a holder process gone from this host is taken over at once, others are not."""

import os
import subprocess
import sys

import pytest
import redis

from btq.schemas import keys
from btq.worker.state.lease import Holder, StepLease, live_holder

pytestmark = pytest.mark.integration


@pytest.fixture
def client(scratch_db: redis.Redis) -> redis.Redis:
    return scratch_db


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


def test_a_holder_learns_it_lost_its_lease_from_a_renewal_or_a_confirm(client: redis.Redis) -> None:
    lease = StepLease(client, "j", 2, 0.6, worker="first")
    assert lease.acquire()
    try:
        assert lease.confirm() and not lease.is_lost()
        # Another delivery took the step over (the lease lapsed while this holder was paused)
        client.set(keys.lease_key("j", 2), Holder(host="h", pid=1, worker="second", token="t").encode())
        assert not lease.confirm()
        assert lease.is_lost()
    finally:
        lease.release()
    assert client.get(keys.lease_key("j", 2)) is not None, "a lost lease is not released over its new holder"


def test_live_holder_ignores_dead_local_holders_and_sees_live_ones(client: redis.Redis) -> None:
    host = StepLease(client, "j", 0, 60).holder.host
    client.set(keys.lease_key("j", 0), Holder(host=host, pid=_exited_pid(), worker="dead", token="t").encode())
    assert live_holder(client, "j", 2) is None
    client.set(keys.lease_key("j", 2), Holder(host=host, pid=os.getpid(), worker="alive", token="t").encode())
    found = live_holder(client, "j", 2)
    assert found is not None and found.worker == "alive"
