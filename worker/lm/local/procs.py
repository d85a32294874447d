"""Child processes that cannot outlive the worker: parent-death signal, own process group, reaping."""

import concurrent.futures
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child between fork and exec (Linux): SIGKILL it when the parent dies."""
    os.setsid()  # own process group: stopping it stops anything the child started too
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# The parent-death signal fires when the *thread* that forked the child exits, not the process. dspy
# and Celery call launch/finetune from short-lived threads, so children are always spawned from one
# long-lived thread instead (a ThreadPoolExecutor keeps its idle thread until shutdown). A forked
# process (Celery prefork) has no copy of that thread, so it gets its own executor.
_spawners: dict[int, concurrent.futures.ThreadPoolExecutor] = {}


def _spawner() -> concurrent.futures.ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _spawners:
        _spawners.clear()  # a parent's executor is unusable here: its thread was not forked
        _spawners[pid] = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="btq-local-spawn")
    return _spawners[pid]


def spawn(
    cmd: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    stdout_pipe: bool = False,
) -> subprocess.Popen[Any]:
    """Start `cmd` as a child that dies with this process, in its own process group.

    Args:
        cmd: The command line.
        log: File receiving the child's stdout and stderr (appended); ignored with `stdout_pipe`.
        env: The child's environment (default: this process's).
        stdout_pipe: Give the caller the child's stdout as a text pipe (stderr still goes to `log`).

    Returns:
        The started process.

    """

    def start() -> subprocess.Popen[Any]:
        sink: IO[Any] | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            sink = log.open("ab")
        try:
            return subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else sink,
                stderr=sink if stdout_pipe or log is not None else subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - runs only setsid and prctl
                text=stdout_pipe,
                bufsize=1 if stdout_pipe else -1,
            )
        finally:
            if not isinstance(sink, int):
                sink.close()  # the child holds its own descriptor

    return _spawner().submit(start).result()


def terminate(process: subprocess.Popen[Any], grace_s: float) -> int | None:
    """Stop `process` and its process group: SIGTERM, then SIGKILL after `grace_s`; return its exit code."""
    if process.poll() is not None:
        return process.returncode
    _signal_group(process, signal.SIGTERM)
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        return process.wait(timeout=grace_s)


def _signal_group(process: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the child called setsid: its pid is its group id
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(sig)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll `condition` until it is true or `timeout_s` passes; return whether it became true."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


def tail(path: Path, max_bytes: int = 4000) -> str:
    """Return the last `max_bytes` of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
