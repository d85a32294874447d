"""The dashboard in real headless Chromium while real jobs run on real workers (screenshots kept)."""

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from tests.conftest import ROOT, Fleet, wait_until
from tests.dashboard.browser import chromium, screenshot
from tests.dashboard.server import dashboard
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def rows(driver: Any, table: str) -> list[list[str]]:
    # One script call reads the whole table at once: the page rebuilds tables as events arrive, so
    # element-by-element reads could see rows replaced under them.
    script = (
        "return [...document.querySelectorAll(arguments[0])].map(tr => [...tr.cells].map(td => td.innerText.trim()));"
    )
    return list(driver.execute_script(script, f"#{table} tbody tr"))


def btq_result_json(fleet: Fleet, job_id: str) -> dict[str, Any]:
    env = {**os.environ, "BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue}
    run = subprocess.run(
        [sys.executable, "-m", "btq.producer.cli", "result", job_id, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(run.stdout))


def test_job_page_shows_steps_live_then_the_chart_and_the_candidates_of_btq_result(
    fleet: Fleet, client: JobClient
) -> None:
    job = spec("p -> w -> p -> p -> p -> p", "given", True, 8)
    job["lm"] = "t.sim_slow"
    with dashboard(fleet) as dash, chromium() as driver:
        job_id = client.submit(job)  # the browser is up first: the page opens while the job runs
        driver.get(f"{dash.url}/jobs/{job_id}")
        driver.execute_script("window.notReloaded = true;")
        wait_until(lambda: len(rows(driver, "timeline")) >= 1, 60, "a first step on the timeline")
        first_seen = len(rows(driver, "timeline"))
        assert client.result(job_id) is None, "the job should still run while the page fills"
        wait_until(lambda: len(rows(driver, "timeline")) == 7, 120, "every step on the timeline")
        assert first_seen < 7
        wait_until(lambda: driver.find_element(By.ID, "result-section").is_displayed(), 60, "the result")
        assert driver.execute_script("return window.notReloaded === true;"), "the page reloaded"

        result = btq_result_json(fleet, job_id)
        table = rows(driver, "candidates")
        expected = [
            [str(rank), c["strategy"] or "(baseline)", f"{c['score']:.2f}", str(c["step_index"])]
            for rank, c in enumerate(result["candidates"], 1)
        ]
        assert [[r[0].rstrip(" *"), *r[1:]] for r in table] == expected
        assert table[0][0].endswith("*")  # the best candidate is marked
        bars = driver.find_elements(By.CSS_SELECTOR, "#score-svg rect.score-bar")
        by_step = {c["step_index"]: f"{c['score']:.2f}" for c in result["candidates"]}
        assert [b.get_attribute("data-score") for b in bars] == [by_step[i] for i in sorted(by_step)]
        assert all(float(b.get_attribute("width") or 0) > 0 for b in bars)
        timeline = rows(driver, "timeline")
        assert [r[4] for r in timeline] == ["succeeded"] * 7
        assert all(r[2].startswith(("wa@", "wb@")) for r in timeline)
        assert driver.find_element(By.ID, "job-state").text == "succeeded"
        # The fine-tune step ends with its sharded validation score: its last progress is that evaluation.
        # (how many shards depends on the live fleet: every one of them is done)
        assert re.search(r"evaluate (\d+)/\1\b", timeline[2][7]), timeline[2][7]
        screenshot(driver, "job-page-succeeded")

        report = client.evaluate(job_id, "t.arith", "test", timeout_s=120)
        wait_until(lambda: driver.find_elements(By.ID, "test-head"), 30, "held-out scores on the page")
        tests = [
            b.get_attribute("data-score") for b in driver.find_elements(By.CSS_SELECTOR, "#score-svg rect.test-bar")
        ]
        assert tests == [f"{report.scores[str(i)]:.2f}" for i in sorted(by_step)]
        assert [r[3] for r in rows(driver, "candidates")] == [
            f"{report.scores[str(c['step_index'])]:.2f}" for c in result["candidates"]
        ]
        screenshot(driver, "job-page-held-out")

        driver.get(dash.url + "/")
        wait_until(lambda: any(job_id[:12] == r[0] for r in rows(driver, "jobs")), 30, "the job in the list")
        screenshot(driver, "jobs-page")
        driver.get(dash.url + "/workers")
        wait_until(lambda: len(rows(driver, "workers")) >= 1, 30, "workers listed")
        screenshot(driver, "workers-page")


def test_cancel_button_stops_the_running_job(fleet: Fleet, client: JobClient) -> None:
    job = spec(" -> ".join(["p"] * 8), "given", True, 13)
    job["lm"] = "t.sim_slow"
    with dashboard(fleet) as dash, chromium() as driver:
        job_id = client.submit(job)
        driver.get(f"{dash.url}/jobs/{job_id}")
        wait_until(
            lambda: any(r[4] == "succeeded" for r in rows(driver, "timeline")), 60, "a finished step on the page"
        )
        driver.find_element(By.ID, "cancel").click()
        wait_until(lambda: driver.find_element(By.ID, "job-state").text == "cancelled", 120, "cancelled on the page")
        assert driver.find_element(By.ID, "cancel").get_attribute("disabled") is not None
        screenshot(driver, "job-page-cancelled")
    result = client.wait(job_id, timeout_s=60)
    assert result.state.value == "cancelled"
    assert len(result.candidates) < 9
    assert any(e.type is EventType.CANCEL_REQUESTED for _, e in client.events(job_id))


def test_jobs_list_shows_a_new_job_without_reload_and_filters_by_state(fleet: Fleet, client: JobClient) -> None:
    with dashboard(fleet) as dash, chromium() as driver:
        driver.get(dash.url + "/")
        driver.execute_script("window.notReloaded = true;")
        wait_until(lambda: driver.execute_script("return document.readyState") == "complete", 30, "page loaded")
        job_id = client.submit(spec("p -> p", "given", True, 51))
        client.wait(job_id, timeout_s=120)

        def row() -> list[str] | None:
            return next((r for r in rows(driver, "jobs") if r[0] == job_id[:12]), None)

        wait_until(lambda: (r := row()) is not None and r[1] == "succeeded", 60, "the new job, succeeded")
        assert driver.execute_script("return window.notReloaded === true;"), "the page reloaded"
        found = row()
        assert found is not None and found[2] == "p -> p" and found[3].endswith("2/2")
        Select(driver.find_element(By.ID, "state-filter")).select_by_value("cancelled")
        wait_until(lambda: row() is None, 30, "the succeeded job filtered out")
        assert all(r[1] == "cancelled" for r in rows(driver, "jobs"))
