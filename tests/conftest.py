"""Shared fixtures: a real Redis on dedicated databases and real Celery worker processes.

The tests start their own memory-only redis-server on a free loopback port (stopped at the end, so
no keys and no logs remain) unless BTQ_TEST_REDIS points at one. Without redis-server and without
BTQ_TEST_REDIS, the integration tests are skipped locally and fail in CI (CI=true).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.fleet.worker_command import worker_argv
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from tests.rabbitmq import throwaway_vhost
from tests.stub_openai import StubOpenAI

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST = os.environ.get("BTQ_TEST_REDIS", "redis://127.0.0.1:6379")
STUB_API_KEY = "sk-from-worker-settings"
TEST_BROKER = os.environ.get("BTQ_TEST_BROKER", "redis")
"""`amqp` runs every fleet's task messages through RabbitMQ (a throwaway vhost); the store stays on Redis."""
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


_THROWAWAY: list[subprocess.Popen[bytes]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's throwaway Redis before collection (bench modules read its URL at import)."""
    if "BTQ_TEST_REDIS" in os.environ or shutil.which("redis-server") is None:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*argv, "--logfile", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _THROWAWAY.append(proc)
    url = f"redis://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), 10, f"throwaway redis-server on port {port}")
    # redis_url() and the bench read these; both now point at the throwaway server.
    os.environ["BTQ_TEST_REDIS"] = url
    os.environ.setdefault("BTQ_BENCH_REDIS", url)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the throwaway Redis: its data lived only in its memory."""
    for proc in _THROWAWAY:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)  # poll interval of a bounded wait


def redis_url(db: int) -> str:
    """URL of test database `db`; skips (locally) or fails (CI) when Redis does not answer."""
    url = f"{os.environ.get('BTQ_TEST_REDIS', REDIS_HOST)}/{db}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI and does not answer at {url}: {exc}")
        pytest.skip(f"Redis does not answer at {url}")
    return url


@pytest.fixture
def scratch_db() -> Iterator[redis.Redis]:
    """A client of test database 6, emptied first: for tests of Redis-side building blocks (no workers)."""
    conn = redis.Redis.from_url(redis_url(6))
    conn.flushdb()
    yield conn
    conn.close()


@dataclass
class Fleet:
    """Worker processes serving one Redis database and queue."""

    url: str
    queue: str
    artifact_dir: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    broker_url: str | None = None

    def client(self) -> JobClient:
        return JobClient(ProducerSettings(redis_url=self.url, queue=self.queue, broker_url=self.broker_url))

    def start(self, name: str, pool: str = "prefork") -> None:
        env = {
            **os.environ,
            "BTQ_REDIS_URL": self.url,
            "BTQ_QUEUE": self.queue,
            "BTQ_IMPORTS": '["tests.fixture_registry"]',
            "BTQ_ARTIFACT_DIR": self.artifact_dir,
            "PYTHONPATH": str(ROOT),
            # Small shards, so the tests' small valsets are really sharded across the fleet.
            "BTQ_SHARD_MIN_EXAMPLES": "2",
            **({"BTQ_BROKER_URL": self.broker_url} if self.broker_url else {}),
            **self.extra_env,
        }
        log = Path(self.artifact_dir) / f"{name}.log"
        argv = worker_argv(queue=self.queue, pool=pool, name=f"{name}@%h")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.logs[name] = log

    def wait_ready(self, names: list[str], timeout_s: float = 60) -> None:
        def ready() -> bool:
            for name in names:
                if self.procs[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited:\n{self.logs[name].read_text()[-3000:]}")
            return all("ready." in self.logs[n].read_text() for n in names)

        wait_until(ready, timeout_s, f"workers {names} ready", interval_s=0.2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def running_fleet(
    db: int, queue: str, names: list[str], extra_env: dict[str, str] | None = None, broker_url: str | None = None
) -> Iterator[Fleet]:
    """Flush test database `db`, start one worker process per name on it, stop them afterwards.

    Task messages go through `broker_url` when given (a RabbitMQ vhost), else through the same Redis.
    """
    url = redis_url(db)
    redis.Redis.from_url(url).flushdb()
    with tempfile.TemporaryDirectory(prefix="btq-test-") as tmp:
        fleet = Fleet(url=url, queue=queue, artifact_dir=tmp, extra_env=extra_env or {}, broker_url=broker_url)
        try:
            for name in names:
                fleet.start(name)
            fleet.wait_ready(names)
            live = redis.Redis.from_url(url)
            wait_until(lambda: live.zcard(keys.WORKERS) >= len(names), 30, "every worker's manifest")
            yield fleet
        finally:
            fleet.stop()


@pytest.fixture(scope="session")
def stub_openai() -> Iterator[StubOpenAI]:
    """A local OpenAI-compatible server; the shared fleet's settings point LiteLLM's `openai` prefix at it."""
    stub = StubOpenAI()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost made for this test session and deleted after it."""
    with throwaway_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def broker_url(request: pytest.FixtureRequest) -> str | None:
    """The session's broker for task messages: None (the Redis database) or RabbitMQ (BTQ_TEST_BROKER=amqp)."""
    if TEST_BROKER == "amqp":
        url: str = request.getfixturevalue("amqp_url")
        return url
    return None


@pytest.fixture(scope="session")
def fleet(stub_openai: StubOpenAI, broker_url: str | None) -> Iterator[Fleet]:
    """Two worker processes on database 1, shared by the integration tests."""
    env = {
        "BTQ_LM_API_BASES": json.dumps({"openai": stub_openai.url}),
        "BTQ_LM_API_KEYS": json.dumps({"openai": STUB_API_KEY}),
    }
    with running_fleet(1, "btq-test", ["wa", "wb"], env, broker_url) as f:
        yield f


@pytest.fixture
def client(fleet: Fleet) -> JobClient:
    """A producer client for the shared fleet."""
    return fleet.client()
