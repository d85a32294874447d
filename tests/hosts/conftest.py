"""Fixtures of the multi-host tests: a network of simulated hosts, removed even when a test fails.

Namespaces need root: without it (or without iproute2/unshare) the tests are skipped locally and fail in
CI (`CI` set), as the Redis-backed tests do.
"""

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from tests.hosts.harness import Network, Unavailable, check_available, start_worker, wait_until, worker_ready


def require_namespaces() -> None:
    """Skip (locally) or fail (CI) when this machine cannot make namespaces."""
    try:
        check_available()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the multi-host tests need Linux namespaces in CI: {exc}")
        pytest.skip(f"Linux namespaces unavailable: {exc}")


class HostFleet:
    """Workers on simulated hosts, one worker per host, all on one queue."""

    def __init__(self, network: Network, queue: str, env: Mapping[str, str] | None = None) -> None:
        self.network = network
        self.queue = queue
        self.env = dict(env or {})

    def start(self, host_names: list[str]) -> None:
        """Add a host per name (if new) and start worker `w<name>` on it; wait until all are registered."""
        started = {}
        for name in host_names:
            host = self.network.hosts.get(name) or self.network.add_host(name)
            started[name] = start_worker(host, f"w{name}", self.queue, self.env)
        wait_until(
            lambda: all(worker_ready(self.network, f"w{n}", p) for n, p in started.items()), 120, "workers ready"
        )
        live = redis.Redis.from_url(self.network.redis_url())
        wait_until(lambda: live.zcard(keys.WORKERS) >= len(self.live_names()), 60, "every worker's manifest")

    def live_names(self) -> list[str]:
        return [n for n, h in self.network.hosts.items() if n != "infra" and h.procs]

    def client(self) -> JobClient:
        return JobClient(ProducerSettings(redis_url=self.network.redis_url(), queue=self.queue))

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.network.redis_url())


@pytest.fixture
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hosts")


@pytest.fixture
def make_network(logs_dir: Path) -> Iterator[Callable[..., Network]]:
    """Factory of networks (`tmp_size`: each host's /tmp bound); each is closed when the test ends (pass or fail)."""
    made: list[Network] = []

    def make(tmp_size: str = "256m") -> Network:
        require_namespaces()
        network = Network(logs=logs_dir, tmp_size=tmp_size)
        made.append(network)
        network.start_infra()
        return network

    yield make
    for network in made:
        network.close()
