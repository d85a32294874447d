"""Partitions: a host cut from Redis mid-step, and a brief cut of an idle host (the broker is the same Redis).

The cut host's step is taken over by another host (its lease lapses, its message is restored); when the
link heals, the cut host stores nothing that contradicts the write-once records, emits nothing after the
job ended, and serves again. Recovery times are printed (`-s`) and written to the log directory.

`BTQ_HOSTS_PARTITION_S` sets the mid-step cut (default 20 s; the `slow` variant cuts for 60 s).
"""

import os
import time
from collections.abc import Callable

import pytest

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.events import EventType
from tests.hosts.conftest import HostFleet
from tests.hosts.harness import Host, Network, wait_until
from tests.hosts.table import host_table, summary
from tests.integration.test_crash import slow_job
from tests.integration.test_parity import assert_same, spec

pytestmark = [pytest.mark.integration, pytest.mark.multihost]

# As the single-host crash tests: a short lease, so a silent holder's step is re-driven within seconds.
ENV = {
    "BTQ_VISIBILITY_TIMEOUT_S": "8",
    "BTQ_UNACKED_RESTORE_INTERVAL_S": "1",
    "BTQ_STEP_LEASE_TTL_S": "3",
    "BTQ_SHARD_LEASE_TTL_S": "3",
    "BTQ_SWEEP_INTERVAL_S": "2",
}
DEFAULT_CUT_S = float(os.environ.get("BTQ_HOSTS_PARTITION_S", "20"))
MODES = ["silent", "link"]


def host_of(network: Network, worker: str | None) -> Host:
    """The host whose hostname appears in an event's or record's worker name."""
    assert worker
    for host in network.hosts.values():
        if host.hostname in worker.replace("@", " ").replace(":", " ").split():
            return host
    raise AssertionError(f"no host named in {worker!r}")


def started_on_other_host(client: JobClient, job_id: str, index: int, cut: Host, network: Network) -> bool:
    return any(
        e.type is EventType.STEP_STARTED and e.step_index == index and host_of(network, e.worker) is not cut
        for _, e in client.events(job_id)
    )


def serving_again(fleet: HostFleet, host: Host, after: float) -> bool:
    """True once the host's worker renewed its heartbeat after `after` (it reached Redis again)."""
    scores = fleet.redis().zrange(keys.WORKERS, 0, -1, withscores=True)
    return any(host.hostname in name.decode() and score > after for name, score in scores)


def last_beat(fleet: HostFleet, host: Host) -> float:
    """Unix time of the host's worker's last heartbeat (0 when it has none)."""
    scores = fleet.redis().zrange(keys.WORKERS, 0, -1, withscores=True)
    return max([score for name, score in scores if host.hostname in name.decode()], default=0.0)


def run_cut_mid_step(make_network: Callable[[], Network], cut_s: float, mode: str) -> None:
    network = make_network()
    fleet = HostFleet(network, "btq-part", ENV)
    fleet.start(["a", "b"])
    client = fleet.client()
    job = slow_job("p -> p -> p")
    job_id = client.submit(job)
    started = next(
        e for e in client.follow(job_id, timeout_s=240) if e.type is EventType.STEP_STARTED and e.step_index == 2
    )
    cut = host_of(network, started.worker)
    cut_at = time.time()
    cut.partition(mode)
    try:
        wait_until(lambda: started_on_other_host(client, job_id, 2, cut, network), cut_s + 120, "takeover", 0.2)
        takeover_s = time.time() - cut_at
        result = client.wait(job_id, timeout_s=240)
        wait_until(lambda: time.time() >= cut_at + cut_s, cut_s + 5, "the end of the cut", 0.2)
        records_before = [fleet.redis().get(keys.step_key(job_id, i)) for i in range(5)]
        events_before = client.events(job_id)
    finally:
        cut.heal()
    healed_at = time.time()
    wait_until(lambda: serving_again(fleet, cut, healed_at), 120, "the healed host's heartbeat", 0.2)
    serving_s = time.time() - healed_at

    # The healed host consumes again: with the other host gone, only it can run a new job.
    network.hosts["b" if cut.name == "a" else "a"].kill()
    small = spec("p", "given", True, 5)
    small_result = client.wait(client.submit(small), timeout_s=240)
    back_s = time.time() - healed_at

    assert_same(result, job)
    assert_same(small_result, small)
    assert [fleet.redis().get(keys.step_key(job_id, i)) for i in range(5)] == records_before, "a record changed"
    assert client.events(job_id) == events_before, "events were emitted after the job ended"
    assert client.wait(job_id, timeout_s=30) == result
    report = (
        f"{mode} partition of {cut.hostname} for {cut_s:.0f}s mid-step 2: takeover after {takeover_s:.1f}s; "
        f"heartbeat {serving_s:.1f}s after heal; a new job served by it done {back_s:.1f}s after heal"
    )
    print(f"\n{report}\n{summary(host_table(fleet.redis(), job_id))}")
    (network.logs.parent / "recovery.txt").open("a").write(report + "\n")


def test_host_cut_mid_step_is_taken_over_and_heals_without_contradiction(
    make_network: Callable[[], Network],
) -> None:
    run_cut_mid_step(make_network, DEFAULT_CUT_S, "silent")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_host_cut_for_a_minute_mid_step(make_network: Callable[[], Network], mode: str) -> None:
    run_cut_mid_step(make_network, 60.0, mode)


def test_idle_host_cut_briefly_from_the_broker_reconnects_and_consumes(
    make_network: Callable[[], Network],
) -> None:
    network = make_network()
    fleet = HostFleet(network, "btq-brief", ENV)
    fleet.start(["a", "b"])
    cut = network.hosts["a"]
    cut.partition()
    try:
        # The outage lasts until the fleet has missed the host's heartbeats for 5 s.
        wait_until(lambda: time.time() - last_beat(fleet, cut) > 5, 60, "a silent heartbeat", 0.2)
    finally:
        cut.heal()
    healed_at = time.time()
    network.hosts["b"].kill()
    client = fleet.client()
    job = spec("p", "given", True, 6)

    result = client.wait(client.submit(job), timeout_s=240)

    assert_same(result, job)
    workers = {r.host for r in host_table(fleet.redis(), result.job_id)}
    assert workers == {cut.hostname}
    print(f"\nbrief cut of idle {cut.hostname}: job served by it {time.time() - healed_at:.1f}s after heal")
