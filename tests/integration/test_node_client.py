"""The Node.js client (examples/node-client) submits through the intake and follows the job to its result."""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.producer.client import JobClient
from btq.producer.intake import job_id_for
from btq.schemas import keys
from tests.conftest import ROOT, Fleet
from tests.intake_process import running_intake
from tests.integration.test_parity import spec
from tests.malformed import add_malformed

pytestmark = pytest.mark.integration

CLIENT_DIR = ROOT / "examples" / "node-client"
DEMO_JOB = ROOT / "examples" / "demo_job.json"


@pytest.fixture(scope="module")
def node_client(fleet: Fleet) -> Iterator[Path]:
    """The client's directory with its npm packages installed from the committed lockfile."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI for the Node client test")
        pytest.skip("node/npm not installed")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True, timeout=300, capture_output=True
    )
    with running_intake(fleet):
        yield CLIENT_DIR


def run_node(fleet: Fleet, job: Path, submission_id: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "node",
        "submit.mjs",
        str(job),
        "--submission-id",
        submission_id,
        "--redis",
        fleet.url,
        "--timeout-s",
        "180",
    ]
    return subprocess.run(argv, check=False, cwd=CLIENT_DIR, capture_output=True, text=True, timeout=240)


def test_node_client_submits_the_demo_job_and_prints_the_same_best_candidate_as_submit(
    fleet: Fleet, client: JobClient, node_client: Path
) -> None:
    sid = f"node-{uuid.uuid4().hex}"
    done = run_node(fleet, DEMO_JOB, sid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"accepted as job {job_id_for(sid)}" in done.stdout
    assert "event job.succeeded" in done.stdout
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    # The same job through the Python client reaches the same best candidate.
    direct = client.wait(client.submit(DEMO_JOB.read_text()), timeout_s=180)
    assert direct.best is not None
    assert (printed["best"]["strategy"], printed["best"]["score"]) == (direct.best.strategy, direct.best.score)
    assert printed["best"]["program_state"] == direct.best.program_state


def test_node_client_reports_a_rejected_submission_with_the_field_named_error(
    fleet: Fleet, node_client: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad_job.json"
    bad.write_text(json.dumps({**json.loads(DEMO_JOB.read_text()), "metric": "nope"}))
    done = run_node(fleet, bad, f"node-bad-{uuid.uuid4().hex}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "rejected: metric: 'nope' is not registered" in done.stderr


def test_node_client_skips_malformed_event_entries_with_one_warning_each(
    fleet: Fleet, client: JobClient, node_client: Path, tmp_path: Path
) -> None:
    sid = f"node-garbage-{uuid.uuid4().hex}"
    stream = keys.job_key(job_id_for(sid), "events")
    bad = add_malformed(client.redis, stream)  # before the job exists: the client meets them first
    job = tmp_path / "job.json"
    job.write_text(json.dumps(spec("p", "given", True, 3)))
    done = run_node(fleet, job, sid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "event job.succeeded" in done.stdout
    for entry_id in bad:
        assert done.stderr.count(entry_id) == 1, done.stderr
    assert f"of stream {stream}" in done.stderr
