"""llama.cpp OpenAI-compatible servers: one per model per worker process, started on demand, reused.

A server is `python -m llama_cpp.server` on a free loopback port, started from `procs.spawn` (it dies
with the worker), health-checked within a bounded time, its log kept on disk. The pool stops every
server at interpreter exit and forgets its parent's servers in a forked child (Celery prefork).
"""

import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btq.worker.lm.local.models import ServedModel
from btq.worker.lm.local.procs import spawn, tail, terminate, wait_until
from btq.worker.lm.local.settings import ServerSettings

logger = logging.getLogger(__name__)

_START_ATTEMPTS = 3
"""A free port can be taken between probing and the server's bind; such a start is retried."""


class ServerStartError(RuntimeError):
    """A llama.cpp server did not become healthy in time; the message ends with its log's tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Loopback only: an http_proxy in the environment must not see (or swallow) health checks.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/models", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LlamaServer:
    """One running llama.cpp server process."""

    served: ServedModel
    process: subprocess.Popen[Any]
    port: int
    log: Path
    started_at: float = field(default_factory=time.time)
    ready_s: float = 0.0

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (`.../v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.process.poll() is None

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (Linux /proc), or None when unknown."""
        try:
            fields = Path(f"/proc/{self.process.pid}/status").read_text().split("\n")
        except OSError:
            return None
        for line in fields:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None


def _command(served: ServedModel, port: int, settings: ServerSettings) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(served.gguf),
        "--model_alias",
        served.alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(settings.n_ctx),
        "--n_threads",
        str(settings.n_threads),
        "--n_threads_batch",
        str(settings.n_threads),
        # Greedy sampling reads the last token's logits only; engine requests never ask for logprobs.
        "--logits_all",
        str(settings.logits_all).lower(),
    ]
    if served.lora is not None:
        cmd += ["--lora_path", str(served.lora)]
    return cmd


def start_server(served: ServedModel, settings: ServerSettings) -> LlamaServer:
    """Start a server for `served` and wait, within `settings.start_timeout_s`, until it answers.

    Raises:
        ServerStartError: It exited or did not answer in time (it is stopped; its log is kept).

    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    last = ""
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        log = settings.log_dir / f"{served.alias}-{stamp}-{os.getpid()}-{port}.log"
        began = time.monotonic()
        process = spawn(_command(served, port, settings), log=log)
        server = LlamaServer(served, process, port, log)
        up = wait_until(
            lambda s=server: not s.alive() or _healthy(s.base_url),  # type: ignore[misc]
            settings.start_timeout_s,
            interval_s=0.1,
        )
        if up and server.alive():
            server.ready_s = time.monotonic() - began
            logger.info("llama.cpp server for %s ready on %s in %.1fs", served.model, server.base_url, server.ready_s)
            return server
        terminate(process, settings.stop_timeout_s)
        last = tail(log)
        if not up:
            raise ServerStartError(
                f"llama.cpp server for {served.model} did not answer within {settings.start_timeout_s}s "
                f"(log {log}):\n{last}"
            )
        if "address already in use" not in last.lower():
            break  # it exited for a reason a new port will not fix
        logger.warning("llama.cpp server start attempt %d lost its port; retrying", attempt)
    raise ServerStartError(f"llama.cpp server for {served.model} exited during start:\n{last}")


STRUCTURED = "structured"
"""The slot of a model's requests that ask for a `response_format` (JSONAdapter's): a server of their own.

A server reuses the prompt prefix it evaluated last. dspy's ChatAdapter falls back to JSONAdapter when an
answer does not parse, so on one server the two prompt formats alternate and every prompt is evaluated
from its start; with a server per format each keeps its own system prompt (and demos) evaluated.
"""


class ServerPool:
    """The servers of this process, by model name and slot; thread-safe, one start per model at a time."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self._servers: dict[tuple[str, str], LlamaServer] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _model_lock(self, model: str) -> threading.Lock:
        with self._lock:
            self._forget_if_forked()
            return self._locks.setdefault(model, threading.Lock())

    def _forget_if_forked(self) -> None:
        # A forked child inherits the parent's handles, but the processes are the parent's to stop.
        if os.getpid() != self._pid:
            self._servers.clear()
            self._locks.clear()
            self._pid = os.getpid()

    def ensure(self, served: ServedModel, slot: str = "") -> LlamaServer:
        """Return the running server for `served.model` in `slot`, starting (or restarting a dead) one.

        Slots are servers of the same model for different kinds of requests (`STRUCTURED`); "" is the main one.
        """
        key = (served.model, slot)
        with self._model_lock(served.model):
            server = self._servers.get(key)
            if server is not None and server.alive() and server.served == served:
                return server
            if server is not None:
                logger.warning("llama.cpp server for %s is gone or changed; starting anew", served.model)
                terminate(server.process, self.settings.stop_timeout_s)
            server = start_server(served, self.settings)
            self._servers[key] = server
            return server

    def get(self, model: str, slot: str = "") -> LlamaServer | None:
        """Return the live server of `model` in `slot`, if one runs."""
        with self._lock:
            self._forget_if_forked()
            server = self._servers.get((model, slot))
        return server if server is not None and server.alive() else None

    def stop(self, model: str) -> None:
        """Stop the servers of `model` (every slot), if any (their logs stay on disk)."""
        with self._model_lock(model):
            with self._lock:
                servers = [self._servers.pop(key) for key in [k for k in self._servers if k[0] == model]]
            for server in servers:
                terminate(server.process, self.settings.stop_timeout_s)
                logger.info("llama.cpp server for %s stopped (log %s)", model, server.log)

    def stop_all(self) -> None:
        """Stop every server this process started."""
        for model in self._all_models():
            self.stop(model)

    def _all_models(self) -> list[str]:
        with self._lock:
            self._forget_if_forked()
            return sorted({model for model, _ in self._servers})

    def models(self) -> list[str]:
        """Return the models with a live server."""
        with self._lock:
            self._forget_if_forked()
            return sorted({m for (m, _), s in self._servers.items() if s.alive()})


_POOLS: list[ServerPool] = []


def _stop_pools() -> None:
    for pool in _POOLS:
        pool.stop_all()


atexit.register(_stop_pools)


def default_pool() -> ServerPool:
    """Return this process's shared pool (created on first use, stopped at exit)."""
    if not _POOLS:
        _POOLS.append(ServerPool())
    return _POOLS[0]


def register_pool(pool: ServerPool) -> ServerPool:
    """Have `pool`'s servers stopped at interpreter exit too; return it."""
    if pool not in _POOLS:
        _POOLS.append(pool)
    return pool
