"""`btq compare` on the simulated LM: one job per strategy, run concurrently, final programs side by side."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from btq.producer.cli.main import main
from btq.producer.client import JobClient
from btq.producer.dashboard import compare_view
from btq.producer.dashboard.job_list import JobList
from btq.producer.dashboard.reader import list_jobs
from btq.producer.demo.compare import (
    BASELINE,
    DEFAULT_STRATEGIES,
    ComparisonStopped,
    _Launcher,
    carrier_of,
    lead_of,
    print_table,
    run_comparison,
    write_results,
)
from btq.schemas.events import EventType
from btq.schemas.exceptions import JobTimeoutError
from btq.schemas.result import JobState
from tests.conftest import wait_until
from tests.integration.test_parity import spec
from tests.reference import run_reference

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def comparison(fleet: Any) -> Any:
    client: JobClient = fleet.client()
    base = spec("p", "given", True, 4)
    return run_comparison(client, base, ("t.arith", "test"), timeout_s=300)


def test_each_strategy_reports_its_final_program_scores_as_in_process_better_together(comparison: Any) -> None:
    assert [r.strategy for r in comparison.runs] == list(DEFAULT_STRATEGIES)
    for run in comparison.runs:
        assert run.state == "succeeded"
        assert run.error is None
        reference = run_reference({**spec("p", "given", True, 4), "strategy": run.strategy})
        final = next(c for c in reference.candidates if c[0] == run.strategy)
        assert run.val == final[1]  # the whole strategy's program, not the job's best
        assert run.test is not None
        assert run.wall_s > 0 and 0 < run.compute_s <= run.wall_s + 1
    baseline = run_reference({**spec("p", "given", True, 4)}).candidates
    assert comparison.baseline_val == next(c[1] for c in baseline if c[0] == "")


def test_strategies_that_fine_tune_on_the_same_data_share_the_fine_tuned_model(comparison: Any) -> None:
    models = {r.strategy: r.models for r in comparison.runs}
    assert models["w"] == models["w -> p"]
    assert models["p -> w"] == models["p -> w -> p"]
    assert models["w"] != models["p -> w"]  # different programs fine-tuned, different content names
    assert all(m and ":ft-" in m[0] for s, m in models.items() if "w" in s)
    assert models["p"] == ["sim/t-small"]


def test_a_strategy_starts_once_the_longer_strategy_it_begins_has_run_their_shared_steps(
    fleet: Any, comparison: Any
) -> None:
    client: JobClient = fleet.client()
    runs = {run.strategy: run for run in comparison.runs}
    assert carrier_of("p", DEFAULT_STRATEGIES) == "p -> w -> p" and carrier_of("w", DEFAULT_STRATEGIES) == "w -> p"
    assert carrier_of("p -> w -> p", DEFAULT_STRATEGIES) is None
    lead = lead_of(DEFAULT_STRATEGIES)
    assert lead == "p -> w -> p"
    for strategy, run in runs.items():
        if strategy == lead:
            continue
        # `w -> p` has no carrier: it follows the lead's step 0 (the un-optimized program's evaluation).
        carrier = carrier_of(strategy, DEFAULT_STRATEGIES)
        follows, shared = (carrier, len(strategy.split("->"))) if carrier is not None else (lead, 0)
        carrier_done = next(
            e.at
            for _, e in client.events(runs[follows].job_id)
            if e.type is EventType.STEP_SUCCEEDED and e.step_index == shared
        )
        first_start = min(e.at for _, e in client.events(run.job_id) if e.type is EventType.STEP_STARTED)
        assert first_start >= carrier_done, strategy


def test_the_dashboard_opens_a_comparisons_jobs_together_with_the_same_scores(comparison: Any, fleet: Any) -> None:
    store = redis.Redis.from_url(fleet.url)
    jobs = JobList(store).in_group(comparison.group)
    assert {j["job_id"] for j in jobs} == {r.job_id for r in comparison.runs}
    shown = {row["strategy"]: row for row in compare_view.comparison(store, jobs, comparison.group)["jobs"]}
    for run in comparison.runs:
        assert (shown[run.strategy]["val"], shown[run.strategy]["test"]) == (run.val, run.test)
        assert shown[run.strategy]["lm_calls"] == run.lm_calls


def test_table_json_and_svg_chart_carry_every_row(comparison: Any, tmp_path: Path) -> None:
    out = io.StringIO()
    print_table(comparison, out)
    lines = out.getvalue().splitlines()
    assert lines[1].startswith(BASELINE)
    assert lines[-1] == f"on the dashboard: /compare?group={comparison.group}"
    for run, line in zip(comparison.runs, lines[2:], strict=False):
        assert line.startswith(run.strategy) and f"{run.val:.2f}" in line
        assert run.lm_calls is not None and run.cost is not None and f" {run.lm_calls} " in line and run.cost in line
    json_path, svg_path = write_results(comparison, tmp_path, "cmp")
    data = json.loads(json_path.read_text())
    assert [r["strategy"] for r in data["runs"]] == list(DEFAULT_STRATEGIES)
    assert [r["test"] for r in data["runs"]] == [r.test for r in comparison.runs]
    svg = svg_path.read_text()
    assert svg.startswith("<svg") and svg.count("<rect") >= 1 + 2 * (len(DEFAULT_STRATEGIES) + 1)
    for strategy in DEFAULT_STRATEGIES:
        assert strategy.replace(">", "&gt;") in svg


def test_cli_compare_against_a_running_fleet_writes_results(
    fleet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(spec("p", "given", True, 6)))
    monkeypatch.setenv("BTQ_REDIS_URL", fleet.url)
    monkeypatch.setenv("BTQ_QUEUE", fleet.queue)
    argv = ["compare", "--spec", str(job), "--held-out", "t.arith:test", "--workers", "0", "--out", str(tmp_path)]
    assert main([*argv, "--strategies", "p", "w"]) == 0
    printed = capsys.readouterr().out
    assert "(baseline)" in printed and "\np " in printed and "\nw " in printed
    assert len(list(tmp_path.glob("compare-job-*.json"))) == 1
    assert len(list(tmp_path.glob("compare-job-*.svg"))) == 1


def test_cli_compare_refuses_a_malformed_held_out_split(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(spec("p", "given", True, 6)))
    assert main(["compare", "--spec", str(job), "--held-out", "t.arith", "--workers", "0"]) == 2


def test_a_comparison_that_gives_up_cancels_the_jobs_it_submitted(fleet: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client: JobClient = fleet.client()
    submitted: dict[str, str] = {}
    submit = client.submit

    def recording_submit(job: dict[str, Any], **kwargs: Any) -> str:
        submitted[job["strategy"]] = submit(job, **kwargs)
        return submitted[job["strategy"]]

    monkeypatch.setattr(client, "submit", recording_submit)
    with pytest.raises(JobTimeoutError):
        # A bound far shorter than any job: the comparison gives up while its jobs are queued or running. The
        # LM answers in 300 ms, so the lead's step 0 (8 examples) cannot end before the bound is noticed, even
        # on a loaded machine: with a fast LM it once did, and `w -> p` was (rightly) submitted after it.
        job = spec("p -> w -> p", "given", True, 8, lm="t.sim_crawl")
        run_comparison(client, job, ("t.arith", "test"), timeout_s=0.05)
    # Only the lead was running; the others wait for its steps and are never submitted.
    assert set(submitted) == {"p -> w -> p"}
    for job_id in submitted.values():
        assert client.wait(job_id, timeout_s=120).state == JobState.CANCELLED
    assert set(submitted) == {"p -> w -> p"}


def test_a_strategy_whose_carrier_is_never_submitted_times_out_as_a_timeout(fleet: Any) -> None:
    # `p` follows the lead, never submitted here: running out of time waiting for it is a timeout,
    # the error a caller of `run_comparison` expects, not the `ComparisonStopped` of a stopping comparison.
    launcher = _Launcher(fleet.client(), spec("p -> w -> p", "given", True, 8), DEFAULT_STRATEGIES, timeout_s=0.05)
    with pytest.raises(JobTimeoutError, match="'p -> w -> p' was not submitted within"):
        launcher.submit_after_carrier("p")
    assert launcher.ids == {}
    launcher.cancel_all()  # once stopping, the same wait says the comparison stopped
    with pytest.raises(ComparisonStopped):
        launcher.submit_after_carrier("p")
    assert launcher.ids == {}


def test_sigterm_to_btq_compare_cancels_its_jobs(fleet: Any, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    # Slow enough that SIGTERM lands while the comparison is waiting on its running jobs.
    job.write_text(json.dumps(spec("p -> w -> p", "given", True, 9, lm="t.counted_slow")))
    env = {**os.environ, "BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue}
    argv = ["compare", "--spec", str(job), "--held-out", "t.arith:test", "--workers", "0", "--out", str(tmp_path)]
    client: JobClient = fleet.client()
    known = {row["job_id"] for row in list_jobs(client.redis)}
    proc = subprocess.Popen([sys.executable, "-m", "btq.producer.cli", *argv], env=env, stdout=subprocess.PIPE)
    try:

        def mine() -> list[str]:
            return [row["job_id"] for row in list_jobs(client.redis) if row["job_id"] not in known]

        wait_until(lambda: len(mine()) == 2, 60, "the comparison's first two jobs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    for job_id in mine():
        assert client.wait(job_id, timeout_s=120).state == JobState.CANCELLED
    assert len(mine()) == 2  # nothing submitted after the signal
