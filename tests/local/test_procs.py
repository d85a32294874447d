"""Child processes: stopped on request, and gone when the parent dies (no orphans)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from btq.worker.lm.local.procs import spawn, terminate, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is dead once its status says so.
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0
    except OSError:
        return True


def test_terminate_stops_the_child_and_its_group(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    process = spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], log=log)
    assert wait_until(lambda: "up" in log.read_text(), 10)
    assert os.getpgid(process.pid) == process.pid  # its own process group
    terminate(process, grace_s=5)
    assert process.returncode is not None


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # A parent that spawns a long-lived child from a short-lived thread, then dies without cleanup.
    script = textwrap.dedent(f"""
        import os, sys, threading
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from btq.worker.lm.local.procs import spawn
        box = []
        t = threading.Thread(target=lambda: box.append(spawn([sys.executable, "-c", "import time; time.sleep(60)"])))
        t.start(); t.join()
        open({str(pid_file)!r}, "w").write(str(box[0].pid))
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    child = int(pid_file.read_text())
    assert wait_until(lambda: _gone(child), 10), f"child {child} outlived its parent"


def test_spawn_works_in_a_forked_child_after_the_parent_spawned() -> None:
    spawn([sys.executable, "-c", "pass"]).wait(timeout=30)  # the parent's spawner thread now exists
    pid = os.fork()
    if pid == 0:  # the child (as in Celery prefork): it must not wait on the parent's thread forever
        code = 1
        try:
            code = spawn([sys.executable, "-c", "pass"]).wait(timeout=30)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
