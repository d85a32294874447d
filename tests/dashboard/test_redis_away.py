"""Redis goes away under a running dashboard: the API answers 503 (never 500) naming where it looked, without
the password; pages show a banner; when Redis is back the banner goes. A redis-server of the test's own is
stopped and started again on the same port (the shared one must stay up for the other tests)."""

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from selenium.webdriver.common.by import By

from bench.dashboard_seed import seed_jobs
from tests.conftest import Fleet, _answers, wait_until
from tests.dashboard.browser import chromium, screenshot
from tests.dashboard.server import dashboard
from tests.dashboard.test_browser import rows

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-redis-password"


@contextmanager
def own_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*argv, "--requirepass", PASSWORD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        wait_until(lambda: _answers(url), 10, f"redis-server on port {port}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def banner(driver: object) -> str:
    shown = driver.find_element(By.ID, "banner")  # type: ignore[attr-defined]
    return str(shown.text) if shown.is_displayed() else ""


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_away_is_a_503_and_a_banner_until_it_is_back() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    where = f"redis://127.0.0.1:{port}/0"
    fleet = Fleet(url=url, queue="btq-away", artifact_dir="")
    with chromium() as driver, dashboard(fleet) as dash:
        with own_redis(port):
            seed_jobs(redis.Redis.from_url(url), 30)
            driver.get(dash.url + "/")
            wait_until(lambda: len(rows(driver, "jobs")) == 30, 30, "the jobs listed")
            assert banner(driver) == ""
            job_id = rows(driver, "jobs")[0][0][:12]
        # Redis is stopped; the dashboard and the open page go on.
        for path in ("/api/jobs", "/api/jobs/x", "/api/jobs/x/events", "/api/events", "/api/compare?jobs=x"):
            answer = dash.get(path)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert answer.json()["error"].startswith(f"redis: cannot reach Redis at {where}: "), path
            assert PASSWORD not in answer.text
        page = dash.get(f"/jobs/{job_id}")
        assert page.status_code == 503 and "cannot reach Redis" in page.text and PASSWORD not in page.text
        wait_until(lambda: banner(driver).startswith(f"redis: cannot reach Redis at {where}"), 30, "the banner")
        screenshot(driver, "redis-away")
        with own_redis(port):
            wait_until(lambda: banner(driver) == "", 30, "the banner gone once Redis is back")
            assert dash.get("/api/jobs").json()["total"] == 0  # the new server started empty
