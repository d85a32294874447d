"""A real `btq intake` process for a test fleet."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, Fleet, wait_until


@contextmanager
def running_intake(fleet: Fleet, claim_idle_s: float = 1.0) -> Iterator[subprocess.Popen[bytes]]:
    """Start `btq intake` on the fleet's database and queue; stop it afterwards (bounded)."""
    env = {
        **os.environ,
        "BTQ_REDIS_URL": fleet.url,
        "BTQ_QUEUE": fleet.queue,
        "BTQ_INTAKE_CLAIM_IDLE_S": str(claim_idle_s),
        "BTQ_INTAKE_MAX_ENTRY_BYTES": str(1024 * 1024),
        "PYTHONPATH": str(ROOT),
    }
    with tempfile.TemporaryDirectory(prefix="btq-intake-") as tmp:
        log = Path(tmp) / "intake.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "btq.producer.cli", "intake"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: "reading" in log.read_text() or proc.poll() is not None, 30, "the intake to start")
            assert proc.poll() is None, log.read_text()
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
