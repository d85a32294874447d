"""Holder identity across hosts whose pids collide (each host has its own PID namespace).

A lease names its holder by host, pid and `node_id()` (boot and PID namespace). A taker judges a holder
dead at once only when it is a process of its own host *and* namespace; a holder elsewhere is waited out
until its lease lapses, even when the taker's host has a live process (or no process) with that pid, and
even when the two hosts share a hostname (containers with a fixed `hostname:` or host networking).
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.schemas import keys
from tests.hosts.conftest import require_namespaces
from tests.hosts.harness import Host, Network, wait_until, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.multihost]

TTL_S = 4.0


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    require_namespaces()
    net = Network(logs=tmp_path_factory.mktemp("holders"))
    try:
        net.start_infra(s3=False)
        yield net
    finally:
        net.close()


class Probe:
    """A lease_probe process on a host; its JSON lines are read from its log."""

    def __init__(self, host: Host, label: str, *args: str) -> None:
        self.log = host.network.logs / f"{host.name}-{label}.log"
        env = worker_env(host.network, "unused")
        argv = [sys.executable, "-m", "tests.hosts.lease_probe", *args]
        self.proc = host.popen(argv, env, self.log)
        self.pid = host.inner_pid(self.proc)

    def lines(self) -> list[dict[str, object]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def said(self, field: str, timeout_s: float = 90) -> dict[str, object]:
        def find() -> dict[str, object] | None:
            for line in self.lines():
                if field in line:
                    return line
            if self.proc.poll() is not None and self.proc.returncode != 0:
                raise AssertionError(f"probe failed:\n{self.log.read_text()[-3000:]}")
            return None

        found = wait_until(find, timeout_s, f"probe line with {field!r}")
        assert isinstance(found, dict)
        return found


def fresh_hosts(network: Network, label: str, hostname_b: str | None = None) -> tuple[Host, Host]:
    a = network.add_host(f"{label}a", hostname=f"btq-{label}")
    b = network.add_host(f"{label}b", hostname=hostname_b or f"btq-{label}")
    return a, b


@pytest.mark.parametrize("hostnames", ["same", "distinct"])
def test_dead_holder_on_another_host_is_waited_out_though_its_pid_is_alive_here(
    network: Network, hostnames: str
) -> None:
    label = f"d{hostnames[0]}"
    a, b = fresh_hosts(network, label, None if hostnames == "same" else f"btq-{label}-other")
    key = keys.eval_key("hostsjob", f"{label}00000000", "lease:0")  # a shard lease: same Holder rules
    holder = Probe(a, "hold", "hold", network.redis_url(), key, str(TTL_S))
    holder.said("held")
    twin = Probe(b, "sleep", "sleep")  # a live, unrelated process of host B with the holder's pid
    assert twin.pid == holder.pid, "fresh PID namespaces number alike; the test needs the collision"
    taker = Probe(b, "take", "take", network.redis_url(), key, str(TTL_S), "--for", "60")
    taker.said("trying")

    killed_at = time.time()
    a.kill()
    got = taker.said("acquired", timeout_s=90)

    assert got["acquired"] is True
    waited = float(got["t"]) - killed_at  # type: ignore[arg-type]
    assert got["took_over_from"] is None, "took the lease over as if its holder were local"
    # Renewed every TTL/3: the lease lapses between 2/3 TTL and one TTL after the kill, never at once.
    assert waited >= TTL_S / 2, f"acquired {waited:.2f}s after the holder's host died: before its lease lapsed"
    print(f"\nlease of a dead holder on another host ({hostnames} hostname, pid {holder.pid} alive on the taker's")
    print(f"host): taken {waited:.1f}s after the kill (lease TTL {TTL_S:.0f}s)")


def test_live_holder_on_another_host_with_the_same_hostname_is_not_taken_over(network: Network) -> None:
    a, b = fresh_hosts(network, "live")
    key = keys.lease_key("hostsjob", 3)
    holder = Probe(a, "hold", "hold", network.redis_url(), key, str(TTL_S))
    holder.said("held")
    # The taker's host has no process with the holder's pid: a pid-only check would call the holder dead.
    b.run(["true"])  # uses up B's pid that equals the holder's, so the taker's own pid differs
    taker = Probe(b, "take", "take", network.redis_url(), key, str(TTL_S), "--for", str(2 * TTL_S))
    assert taker.pid != holder.pid
    assert b.run(["sh", "-c", f"test -e /proc/{holder.pid} && echo alive || echo absent"]).strip() == "absent"

    got = taker.said("acquired", timeout_s=60)

    assert got["acquired"] is False, f"took over a live holder on another host: {got}"
    a.kill()


def test_dead_holder_on_the_same_host_is_still_taken_over_at_once(network: Network) -> None:
    a = network.add_host("same", hostname="btq-same")
    key = keys.lease_key("hostsjob", 4)
    holder = Probe(a, "hold", "hold", network.redis_url(), key, "60")  # a long TTL: only the pid check helps
    holder.said("held")
    taker = Probe(a, "take", "take", network.redis_url(), key, "60", "--for", "60")
    taker.said("trying")
    os.kill(int(Path(f"/proc/{holder.proc.pid}/task/{holder.proc.pid}/children").read_text().split()[0]), 9)
    killed_at = time.time()

    got = taker.said("acquired", timeout_s=60)

    assert got["took_over_from"] == "probe-hold"
    assert float(got["t"]) - killed_at < 30  # type: ignore[arg-type]
    a.kill()


def test_lm_single_flight_claim_of_a_dead_host_lapses_and_is_claimed_elsewhere(network: Network) -> None:
    a, b = fresh_hosts(network, "lm", "btq-lm-other")
    flight_ttl = 5.0
    claimant = Probe(a, "claim", "claim", network.redis_url(), "-", str(flight_ttl))
    assert claimant.said("claimed")["claimed"] is True
    waiter = Probe(b, "await", "await", network.redis_url(), "-", str(flight_ttl))
    started = float(waiter.said("trying")["t"])  # type: ignore[arg-type]
    a.kill()

    got = waiter.said("claimed", timeout_s=90)

    assert got["claimed"] is True, "the waiter got a value nobody made"
    waited = float(got["t"]) - started  # type: ignore[arg-type]
    assert waited <= flight_ttl + 5  # bounded by the claim's TTL
    print(f"\nLM call claim of a dead host: claimed elsewhere after {waited:.1f}s (flight TTL {flight_ttl:.0f}s)")


def test_harness_leaves_nothing_behind(tmp_path: Path) -> None:
    require_namespaces()
    net = Network(logs=tmp_path)
    net.add_host("x")
    names = (net.bridge, net.hosts["x"].netns, net.hosts["x"].veth)
    net.close()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert names[0] not in links and names[2] not in links and names[1] not in netns
