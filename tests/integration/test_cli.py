"""The `btq` CLI as a user runs it: submit a job file, watch it live, read the result, export schemas."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from btq.producer.client import JobClient
from tests.cli_runner import run_btq
from tests.conftest import Fleet
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def btq(fleet: Fleet, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue}
    if fleet.broker_url:
        env["BTQ_BROKER_URL"] = fleet.broker_url
    return run_btq(*args, env=env, stdin=stdin)


def test_submit_wait_prints_live_steps_and_the_ranked_table(fleet: Fleet, tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(spec("p -> w -> p", "given", True, 3)))
    run = btq(fleet, "submit", str(job_file), "--wait", "--timeout", "120")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any("running" in line and "p -> w" in line for line in lines)
    assert sum(" ok " in line for line in lines) == 4
    assert "rank  strategy" in run.stdout and "(baseline)" in run.stdout
    job_id = lines[0].split()[1]

    result = btq(fleet, "result", job_id, "--json")
    assert json.loads(result.stdout)["job_id"] == job_id
    assert btq(fleet, "status", job_id).stdout.strip() == f"{job_id}: succeeded, 3/3 steps"
    replay = btq(fleet, "watch", job_id, "--json", "--timeout", "10")
    assert [json.loads(line)["type"] for line in replay.stdout.splitlines()][-1] == "job.succeeded"


def test_invalid_job_file_exits_2_naming_the_field(fleet: Fleet) -> None:
    bad: dict[str, Any] = spec("p -> nope", "given", True, 3)
    run = btq(fleet, "submit", "-", stdin=json.dumps(bad))
    assert run.returncode == 2
    assert run.stderr.startswith("invalid job: strategy:")


def test_cancel_of_a_finished_job_says_so(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 3))
    client.wait(job_id, timeout_s=60)
    run = btq(fleet, "cancel", job_id)
    assert run.returncode == 1 and "already ended" in run.stdout


def test_schema_command_prints_the_job_json_schema(fleet: Fleet) -> None:
    schema = json.loads(btq(fleet, "schema", "job").stdout)
    assert "strategy" in schema["properties"]
