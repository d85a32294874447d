"""The dashboard over 2,000 jobs seeded in the real Redis layout, in real Chromium: pages, search, filters in
the address, a job whose step failed, a candidate diff, a comparison page, 404s. Render and search times
are printed (never asserted: the machine's load decides them)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from bench.dashboard_seed import STRATEGIES, Seeded, seed_jobs
from btq.schemas import keys
from btq.schemas.job import JobSpec
from btq.schemas.result import JobResult
from btq.schemas.saved_program import saved_program
from tests.conftest import Fleet, redis_url, wait_until
from tests.dashboard.browser import chromium, screenshot, screenshot_at
from tests.dashboard.server import Served, dashboard
from tests.dashboard.test_browser import rows

pytestmark = pytest.mark.integration

COUNT = 2000


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[Fleet, Seeded]]:
    """2,000 jobs in Redis database 5 (no workers: the dashboard only reads)."""
    url = redis_url(5)
    store = redis.Redis.from_url(url)
    store.flushdb()
    try:
        yield Fleet(url=url, queue="btq-seeded", artifact_dir=""), seed_jobs(store, COUNT)
    finally:
        store.flushdb()
        store.close()


@pytest.fixture(scope="module")
def served(seeded: tuple[Fleet, Seeded]) -> Iterator[Served]:
    with dashboard(seeded[0]) as dash:
        yield dash


def result(fleet: Fleet, job_id: str) -> JobResult:
    raw = redis.Redis.from_url(fleet.url).get(keys.job_key(job_id, "result"))
    assert raw is not None
    return JobResult.model_validate_json(raw)


def listed_ids(driver: Any) -> list[str]:
    """The short job ids the list shows (a comparison's jobs carry a `comparison` tag after theirs)."""
    return [r[0][:12] for r in rows(driver, "jobs")]


def loaded(driver: Any, search: str) -> bool:
    return bool(driver.execute_script("return document.body.dataset.loaded === arguments[0];", search))


def test_first_page_of_2000_jobs_with_total_and_pages(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    _, jobs = seeded
    with chromium(1280, 1500) as driver:
        driver.get(served.url + "/")
        wait_until(lambda: len(rows(driver, "jobs")) == 50, 30, "the first page of jobs")
        first_ms = driver.execute_script("return window.firstRenderMs;")
        print(f"\nfirst page of {COUNT} jobs rendered {first_ms:.0f} ms after navigation started")
        assert driver.find_element(By.ID, "total").text == f"{COUNT} jobs"
        assert driver.find_element(By.CSS_SELECTOR, "#pager .page-of").text == f"page 1 of {COUNT // 50}"
        newest = list(reversed(jobs.ids))
        assert listed_ids(driver) == [j[:12] for j in newest[:50]]
        screenshot(driver, "jobs-2000")

        driver.find_element(By.LINK_TEXT, "next \u203a").click()
        wait_until(lambda: loaded(driver, "?page=2"), 30, "page 2 in the address")
        assert listed_ids(driver) == [j[:12] for j in newest[50:100]]
        driver.back()
        wait_until(lambda: loaded(driver, ""), 30, "back on page 1")
        assert listed_ids(driver)[0] == newest[0][:12]


def test_search_by_submission_id_strategy_and_job_id(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    _, jobs = seeded
    submission, job_id = jobs.submission
    with chromium() as driver:
        driver.get(served.url + "/")
        wait_until(lambda: len(rows(driver, "jobs")) == 50, 30, "the first page")
        driver.find_element(By.ID, "q").send_keys(submission + "\n")
        wait_until(lambda: loaded(driver, f"?q={submission}"), 30, "the search answered")
        print(
            f"\nsearch over {COUNT} jobs answered and rendered in {driver.execute_script('return window.lastListMs'):.0f} ms"
        )
        assert listed_ids(driver) == [job_id[:12]]
        assert driver.find_element(By.ID, "total").text == "1 job"

        api = served.get("/api/jobs", params={"q": "p -> w -> p", "per_page": 200}).json()
        expected = sum(1 for r in served.get("/api/jobs", params={"strategy": "p -> w -> p"}).json()["rows"])
        assert api["total"] >= expected > 0
        assert all("p -> w -> p" in r["strategy"] for r in api["rows"])
        by_id = served.get("/api/jobs", params={"q": jobs.failed_step[:10].upper()}).json()
        assert [r["job_id"] for r in by_id["rows"]] == [jobs.failed_step]
        by_program = served.get("/api/jobs", params={"program": "local.iso_date", "per_page": 1}).json()
        assert by_program["total"] > 0 and by_program["rows"][0]["program"] == "local.iso_date"


def test_state_filter_and_sort_are_in_the_address(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    with chromium() as driver:
        driver.get(served.url + "/?state=cancelling")
        wait_until(lambda: loaded(driver, "?state=cancelling"), 30, "the bookmarked filter")
        assert Select(driver.find_element(By.ID, "state-filter")).first_selected_option.text == "cancelling"
        listed = rows(driver, "jobs")
        assert listed and all(r[1] == "cancelling" for r in listed)

        Select(driver.find_element(By.ID, "state-filter")).select_by_value("succeeded")
        wait_until(lambda: loaded(driver, "?state=succeeded"), 30, "the filter in the address")
        driver.find_element(By.CSS_SELECTOR, 'th[data-sort="best"]').click()
        wait_until(lambda: loaded(driver, "?state=succeeded&sort=best"), 30, "sorted by best score, descending")
        scores = [float(r[4]) for r in rows(driver, "jobs")]
        assert scores == sorted(scores, reverse=True)
        top = served.get("/api/jobs", params={"state": "succeeded", "sort": "best", "order": "asc"}).json()["rows"]
        assert float(rows(driver, "jobs")[0][4]) >= top[0]["best_score"]

    bad = served.get("/api/jobs", params={"state": "done", "sort": "size", "page": "0"})
    assert bad.status_code == 400
    assert [p.split(":")[0] for p in bad.json()["errors"]] == ["state", "sort", "page"]


def test_a_job_whose_step_failed_is_marked_in_the_list_and_on_its_page(
    served: Served, seeded: tuple[Fleet, Seeded]
) -> None:
    fleet, jobs = seeded
    label = result(fleet, jobs.failed_step).state_label
    assert label == "succeeded, 1 step failed"
    row = served.get("/api/jobs", params={"q": jobs.failed_step}).json()["rows"][0]
    assert (row["state_label"], row["failed_steps"]) == (label, 1)
    with chromium(1280, 1700) as driver:
        driver.get(served.url + "/?q=" + jobs.failed_step)
        wait_until(lambda: rows(driver, "jobs"), 30, "the job in the list")
        cell = driver.find_element(By.CSS_SELECTOR, "#jobs tbody td.step-failed")
        assert cell.text == label
        driver.get(f"{served.url}/jobs/{jobs.failed_step}")
        wait_until(lambda: driver.find_element(By.ID, "result-section").is_displayed(), 30, "the result")
        header = driver.find_element(By.ID, "job-state")
        assert header.text == label and "step-failed" in (header.get_attribute("class") or "")
        assert driver.find_elements(By.CSS_SELECTOR, "#step-svg .failed-point")
        assert [r[4] for r in rows(driver, "timeline")] == ["succeeded", "succeeded", "failed"]
        spec = dict(rows(driver, "spec"))
        assert spec["strategy"] == "p -> w -> p" and spec["program"] == '{"name":"t.qa","start_state":false}'
        timings = dict(rows(driver, "timings"))
        assert timings["wall time (first step to result)"].endswith(" s") and timings["LM calls"]
        screenshot(driver, "job-failed-step")


def diff_view(driver: Any) -> dict[str, Any]:
    # Read in one script call: the diff is rebuilt whenever the pair changes.
    script = """const d = document.querySelector('#diff'), h = d.querySelector('h3'), c = d.querySelector('.demo-count');
      return {heading: h ? h.innerText : '', text: d.innerText, ins: d.querySelectorAll('ins').length,
        del: d.querySelectorAll('del').length, demos: c ? c.innerText : '',
        added: d.querySelectorAll('pre.added').length};"""
    return dict(driver.execute_script(script))


def test_a_diff_between_two_candidates(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    fleet, jobs = seeded
    job_id = jobs.group_ids[-1]  # p -> w -> p: instructions, demos and the LM all change after step 0
    done = result(fleet, job_id)
    last = max(c.step_index for c in done.candidates)
    with chromium(1280, 1300) as driver:
        driver.get(f"{served.url}/jobs/{job_id}?a=0&b={last}")
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#diff .predictor"), 30, "the diff")
        diff = diff_view(driver)
        assert "changed" in diff["heading"] and diff["ins"] and diff["del"]
        assert "LM: sim/base \u2192 ft:sim-" in diff["text"]
        assert diff["demos"].startswith("demos: 0 \u2192 ")
        assert diff["added"], "the demos the optimizer added"
        programs = driver.find_elements(By.CSS_SELECTOR, "#programs details")
        assert len(programs) == len(done.candidates)
        screenshot_at(driver, "candidate-diff", "#diff-section")

        Select(driver.find_element(By.ID, "diff-a")).select_by_value(str(last))
        wait_until(lambda: f"a={last}&b={last}" in driver.current_url, 30, "the pair in the address")
        wait_until(lambda: "same" in diff_view(driver)["heading"], 30, "no change")

    refused = served.get(f"/api/jobs/{job_id}/diff", params={"a": "x", "b": "99"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("a: ")
    missing = served.get(f"/api/jobs/{job_id}/diff", params={"a": "0", "b": "99"})
    assert missing.status_code == 400 and "b: step 99" in missing.json()["error"]


def test_each_candidate_downloads_as_the_file_btq_export_writes(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    fleet, jobs = seeded
    job_id = jobs.group_ids[-1]
    done = result(fleet, job_id)
    raw = redis.Redis.from_url(fleet.url).get(keys.job_key(job_id, "spec"))
    assert raw is not None
    spec = JobSpec.model_validate_json(raw)
    with chromium() as driver:
        driver.get(f"{served.url}/jobs/{job_id}")
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#programs details"), 30, "the programs")
        links = driver.find_elements(By.CSS_SELECTOR, "#programs a.download-program")
        assert [a.get_attribute("href").split("/candidates/")[1] for a in links] == [
            f"{c.step_index}/program.json" for c in done.candidates
        ]
    for rank, candidate in enumerate(done.candidates):
        files = f"/api/jobs/{job_id}/candidates/{candidate.step_index}"
        expected = saved_program(done, spec, rank=rank)
        program = served.get(files + "/program.json")
        assert program.status_code == 200 and program.text == expected.program_json()
        disposition = program.headers["content-disposition"]
        assert disposition == f'attachment; filename="btq-{job_id}-step{candidate.step_index}.json"'
        manifest = served.get(files + "/manifest.json")
        assert manifest.json() == json.loads(expected.manifest_json())
        assert "manifest.json" in manifest.headers["content-disposition"]
    assert served.get(f"/api/jobs/{job_id}/candidates/99/program.json").status_code == 404
    assert served.get("/api/jobs/no-such-job/candidates/0/program.json").status_code == 404


def test_a_comparison_opens_its_jobs_together(served: Served, seeded: tuple[Fleet, Seeded]) -> None:
    fleet, jobs = seeded
    with chromium(1280, 1000) as driver:
        driver.get(served.url + "/?q=" + jobs.group)
        wait_until(lambda: len(rows(driver, "jobs")) == len(STRATEGIES), 30, "the comparison's jobs")
        driver.find_element(By.CSS_SELECTOR, "#jobs a.tag").click()
        wait_until(lambda: loaded(driver, "compare"), 30, "the comparison page")
        table = rows(driver, "compare")
        assert [r[0] for r in table] == ["(baseline)", *STRATEGIES]
        for job_id, row in zip(jobs.group_ids, table[1:], strict=True):
            done = result(fleet, job_id)
            final = next(c for c in done.candidates if c.strategy == done.strategy)
            assert row[1] == job_id[:12] and row[3] == f"{final.score:.2f}"
        tests = [float(r[4]) for r in table]
        assert tests == [31.0, 52.0, 47.0, 61.0, 58.0, 66.0]  # the held-out reports seeded per strategy
        assert all(r[6].endswith(" s") for r in table[1:])
        assert len(driver.find_elements(By.CSS_SELECTOR, "#compare-svg rect.test-bar")) == len(table)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#wall-svg rect.wall-bar")) == len(STRATEGIES)
        screenshot(driver, "comparison")

        picked = jobs.ids[:2]
        driver.get(f"{served.url}/compare?jobs={','.join(picked)}")
        wait_until(lambda: loaded(driver, "compare"), 30, "a comparison of picked jobs")
        assert [r[1] for r in rows(driver, "compare") if r[1]] == [j[:12] for j in picked]


def test_unknown_jobs_answer_404(served: Served) -> None:
    page = served.get("/jobs/no-such-job")
    assert page.status_code == 404 and 'id="cancel"' not in page.text
    for path in ("/api/jobs/no-such-job", "/api/jobs/no-such-job/diff?a=0&b=1", "/api/compare?jobs=no-such-job"):
        answer = served.get(path)
        assert answer.status_code == 404, path
        assert "no-such-job" in json.dumps(answer.json())
    assert served.get("/api/compare").status_code == 400
