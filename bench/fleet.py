"""Worker processes for the bench: spawn, time the start-up, find the pool child, read RSS, stop.

Each worker runs the core's command line (`btq.producer.fleet.worker_command.worker_argv`: `celery -A btq.worker.main
worker -c 1 --pool prefork -l warning -n NAME@%h`), configured only through `BTQ_*` variables, started from the repository root so `bench.registry`
imports. Start-up time is spawn to the manifest the worker publishes when it is ready to consume.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import cast

from bench.config import ROOT
from bench.redis_dbs import connect, db_url
from btq.producer.fleet.worker_command import worker_argv
from btq.schemas import keys

READY_TIMEOUT_S = 120.0
"""Bound on one worker's start-up; a shared 2-core machine can take tens of seconds."""

STOP_TIMEOUT_S = 20.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # /proc/<pid>/stat: the command name may contain spaces, so split after its closing ')'.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Return the pids whose parent is `pid` (this kernel has no /proc/<pid>/task/<pid>/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def rss_kb(pid: int) -> int:
    """Return the resident set size (VmRSS, kB) of process `pid`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """Return the user + system CPU seconds process `pid` has used so far."""
    fields = _stat_fields(pid)
    # After the ')' split, utime and stime are fields 14 and 15 of stat(5), i.e. indices 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _worker_env(db: int, artifact_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Inherited BTQ_* variables could redirect or break the worker (its settings forbid extras).
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTQ_")}
    env.update(
        {
            "BTQ_REDIS_URL": db_url(db),
            "BTQ_IMPORTS": json.dumps(["bench.registry"]),
            "BTQ_ARTIFACT_DIR": str(artifact_dir),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONPATH": str(ROOT),
            **(extra or {}),
        }
    )
    return env


@dataclass
class WorkerProcess:
    """One Celery worker instance started by the bench."""

    name: str
    proc: "subprocess.Popen[bytes]"
    log_path: Path
    spawned_at: float
    startup_s: float = float("nan")

    def pool_pid(self) -> int:
        """Return the pid doing the work: the prefork pool child (or the worker itself with solo)."""
        kids = children(self.proc.pid)
        return kids[0] if kids else self.proc.pid

    def pids(self) -> list[int]:
        """Return the worker's main process and its pool children."""
        return [self.proc.pid, *children(self.proc.pid)]

    def cpu_s(self) -> float:
        """Return CPU seconds used by the worker and its pool children so far."""
        total = 0.0
        for pid in self.pids():
            with suppress(OSError):
                total += cpu_s(pid)
        return total

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the worker's log, for error messages."""
        with suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


@dataclass
class Fleet:
    """Workers of one bench database; use as a context manager so they are always stopped."""

    db: int
    artifact_dir: Path
    log_dir: Path
    on_started: Callable[[float], None] | None = None
    """Receives each worker's start-up seconds (the bench pools them across sections)."""
    workers: list[WorkerProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """Extra BTQ_ settings for this fleet's workers."""

    def start(self, name: str, queues: list[str] | None = None, pool: str | None = None) -> WorkerProcess:
        """Spawn one worker and wait (bounded) until it published its manifest; record the start-up."""
        # The core's one worker command line (the same as `btq worker`), at warning level: the bench
        # reads logs only when a worker fails.
        argv = worker_argv(
            queue=",".join(queues) if queues else None,
            loglevel="warning",
            pool=pool or "prefork",
            name=f"{name}@%h",
        )
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            spawned_at = time.time()
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=_worker_env(self.db, self.artifact_dir, self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(name, proc, log_path, spawned_at)
        self.workers.append(worker)
        worker.startup_s = self._wait_for_manifest(worker) - spawned_at
        if self.on_started is not None:
            self.on_started(worker.startup_s)
        return worker

    def _wait_for_manifest(self, worker: WorkerProcess) -> float:
        # The poll interval bounds the error of the start-up figure.
        client = connect(self.db)
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"worker {worker.name} exited during start-up:\n{worker.log_tail()}")
                names = [n.decode() for n in cast(list[bytes], client.zrange(keys.WORKERS, 0, -1))]
                mine = [n for n in names if n.startswith(f"{worker.name}@")]
                raw = client.get(keys.worker_key(mine[0], "manifest")) if mine else None
                if raw is not None:
                    manifest = json.loads(raw)
                    if float(manifest["published_at"]) >= worker.spawned_at:
                        return float(manifest["published_at"])
                time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"worker {worker.name} published no manifest in {READY_TIMEOUT_S}s:\n{worker.log_tail()}")

    def stop(self) -> None:
        """Stop every worker this fleet started (all signalled first, so they shut down together)."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.terminate()
        for worker in self.workers:
            worker.stop()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is not None:
            # A task that raises in a worker never ends its job: its log is the only place that says why.
            for worker in self.workers:
                print(f"--- log tail of worker {worker.name} ---\n{worker.log_tail(2000)}", file=sys.stderr)
