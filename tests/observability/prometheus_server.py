"""A real Prometheus server for a test: Debian's binary on a loopback port, its own config and storage."""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until


def prometheus_binary() -> str:
    """The `prometheus` program; skips locally, fails in CI when absent (scripts/install-prometheus.sh)."""
    found = shutil.which("prometheus")
    if found is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("prometheus is required in CI: scripts/install-prometheus.sh installs it")
        pytest.skip("prometheus is not installed (scripts/install-prometheus.sh)")
    return found


@contextmanager
def prometheus(targets: dict[str, str], port: int, scrape_interval_s: float = 1.0) -> Iterator[str]:
    """Run Prometheus scraping `targets` (job name -> host:port) every interval; yield its base URL."""
    binary = prometheus_binary()
    with tempfile.TemporaryDirectory(prefix="btq-prom-") as tmp:
        jobs = "".join(
            f"  - job_name: {name}\n    static_configs:\n      - targets: ['{target}']\n"
            for name, target in targets.items()
        )
        config = Path(tmp) / "prometheus.yml"
        interval = f"{int(scrape_interval_s * 1000)}ms"  # Prometheus durations take integers only
        config.write_text(
            f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:\n{jobs}"
        )
        log = (Path(tmp) / "prometheus.log").open("wb")
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={Path(tmp) / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _ready(base, proc), 30, "prometheus ready", interval_s=0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _ready(base: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        log = Path(str(proc.args[1]).split("=", 1)[1]).parent / "prometheus.log"
        raise AssertionError(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
    try:
        return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant PromQL query through the HTTP API; return its result vector."""
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
