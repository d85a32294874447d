"""A real MLflow tracking server for a test: SQLite backend and artifacts in a temp dir, loopback port."""

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import wait_until


@contextmanager
def mlflow_server(port: int) -> Iterator[str]:
    """Run `mlflow server` during the block; yield its tracking URI."""
    with tempfile.TemporaryDirectory(prefix="btq-mlflow-") as tmp:
        log_path = Path(tmp) / "server.log"
        argv = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp}/mlflow.db",
            "--artifacts-destination",
            f"{tmp}/artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        proc = subprocess.Popen(argv, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        uri = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow server exited:\n{log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{uri}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, 90, "mlflow server", interval_s=0.5)
            yield uri
        finally:
            # The server runs its web workers as children: stop the whole process group it leads.
            import os
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
