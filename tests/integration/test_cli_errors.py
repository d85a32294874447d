"""Errors a person can act on: one line and a documented exit code, never a traceback.

Real processes throughout: `btq` against a closed port, against a Redis that starts while it waits, a
watch that times out, unreadable paths, a spec wrong in several places, and a job whose step failed.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from btq.producer.cli.exit_codes import ExitCode
from btq.producer.client import JobClient
from btq.schemas import keys
from tests.cli_runner import run_btq
from tests.conftest import ROOT, Fleet, wait_until
from tests.integration.test_failures import failing_spec
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

EVERY_REDIS_COMMAND = [
    ["jobs"],
    ["workers"],
    ["status", "abc"],
    ["watch", "abc"],
    ["result", "abc"],
    ["export", "abc"],
    ["cancel", "abc"],
    ["evaluate", "abc", "--dataset", "t.arith", "--split", "test"],
    ["submit", str(ROOT / "examples" / "demo_job.json")],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def btq(
    url: str, *args: str, queue: str = "btq", budget_s: float = 0, stdin: str | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        "BTQ_REDIS_URL": url,
        "BTQ_QUEUE": queue,
        "BTQ_REDIS_RECONNECT_BUDGET_S": str(budget_s),
        "BTQ_BROKER_URL": None,
    }
    return run_btq(*args, env=env, stdin=stdin, timeout_s=timeout_s)


def on_fleet(fleet: Fleet, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if fleet.broker_url:
        pytest.skip("these runs send task messages through the Redis database")
    return btq(fleet.url, *args, queue=fleet.queue, **kwargs)


def test_every_command_says_in_one_line_that_redis_is_unreachable_and_exits_5() -> None:
    port = _free_port()
    url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    for command in EVERY_REDIS_COMMAND:
        run = btq(url, *command)
        assert run.returncode == ExitCode.UNREACHABLE, (command, run.stderr)
        assert run.stderr.splitlines() == [f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: connection refused"]
        assert "s3cret" not in run.stdout + run.stderr and run.stdout == ""


def test_the_reconnect_budget_covers_the_first_connection(tmp_path: Path) -> None:
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = [sys.executable, "-m", "btq.producer.cli", "status", "no-such-job"]
    env = {**os.environ, "BTQ_REDIS_URL": url, "BTQ_REDIS_RECONNECT_BUDGET_S": "60"}
    waiting = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server: subprocess.Popen[bytes] | None = None
    try:
        # The command is retrying (not ended) while nothing listens; then Redis starts and it gets through.
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=2)
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    assert waiting.returncode == ExitCode.NOT_FOUND, err
    assert err.splitlines() == ["unknown job id: 'no-such-job'"]


def test_unreadable_paths_exit_2_naming_the_path(fleet: Fleet, client: JobClient, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    run = on_fleet(fleet, "submit", str(missing))
    assert (run.returncode, run.stderr.splitlines()) == (2, [f"cannot use {missing}: no such file or directory"])
    run = on_fleet(fleet, "submit", str(tmp_path))
    assert (run.returncode, run.stderr.splitlines()) == (2, [f"cannot use {tmp_path}: is a directory"])
    job_id = client.submit(spec("p", "given", True, 3))
    client.wait(job_id, timeout_s=60)
    target = tmp_path / "no-dir" / "program.json"
    run = on_fleet(fleet, "export", job_id, "-o", str(target))
    assert (run.returncode, run.stderr.splitlines()) == (2, [f"cannot use {target}: no such file or directory"])


def test_a_watch_that_times_out_exits_6(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p -> p", "given", True, 3, lm="t.sim_crawl"))
    try:
        run = on_fleet(fleet, "watch", job_id, "--json", "--timeout", "1")
        assert run.returncode == ExitCode.TIMEOUT, run.stderr
        assert run.stderr.splitlines() == [f"timed out: job {job_id} did not finish within 1.0s"]
    finally:
        client.cancel(job_id)
        client.wait(job_id, timeout_s=120)


def test_a_spec_wrong_in_several_places_is_refused_once_with_every_field(fleet: Fleet) -> None:
    job: dict[str, Any] = spec("p", "given", True, 3, num_threads=0)
    del job["metric"]
    job["valset_ratio"] = 2
    run = on_fleet(fleet, "submit", "-", stdin=json.dumps(job))
    assert run.returncode == ExitCode.BAD_INPUT
    [line] = run.stderr.splitlines()
    assert line.startswith("invalid job: ")
    for field in (
        "metric: Field required",
        "valset_ratio: valset_ratio must be in range",
        "num_threads: Input should be",
    ):
        assert field in line, line
    unknown = spec("p", "given", True, 3, metric="t.nope", lm="t.nolm")
    run = on_fleet(fleet, "submit", "-", stdin=json.dumps(unknown))
    [line] = run.stderr.splitlines()
    assert "metric: 't.nope' is not registered" in line and "lm: 't.nolm' is not registered" in line


def test_a_failed_step_shows_everywhere_and_strict_exits_7(fleet: Fleet, client: JobClient, tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(failing_spec("p -> f -> p")))
    waited = on_fleet(fleet, "submit", str(job_file), "--wait", "--strict", "--timeout", "120")
    assert waited.returncode == ExitCode.STEP_FAILED, waited.stderr
    job_id = waited.stdout.split()[1]
    last = waited.stdout.splitlines()[-1]
    assert last == f"job {job_id}: succeeded, 1 step failed; best 'p' score " + last.rsplit(" ", 1)[1]
    assert "succeeded, 1 step failed: best 'p'" in waited.stdout  # the job's own event line too

    status = on_fleet(fleet, "status", job_id)
    assert (status.returncode, status.stdout.strip()) == (0, f"{job_id}: succeeded, 1 step failed, 2/3 steps")
    assert on_fleet(fleet, "status", job_id, "--strict").returncode == ExitCode.STEP_FAILED
    assert json.loads(on_fleet(fleet, "status", job_id, "--json").stdout)["state_label"] == "succeeded, 1 step failed"
    watched = on_fleet(fleet, "watch", job_id)
    assert watched.returncode == 0 and watched.stdout.splitlines()[-1] == last

    rows = [json.loads(line) for line in on_fleet(fleet, "jobs", "--json", "--limit", "500").stdout.splitlines()]
    row = next(r for r in rows if r["job_id"] == job_id)
    assert (row["state"], row["state_label"], row["failed_steps"]) == ("succeeded", "succeeded, 1 step failed", 1)
    table = on_fleet(fleet, "jobs", "--limit", "500").stdout.splitlines()
    assert any(line.startswith(job_id) and "succeeded, 1 step failed" in line for line in table)
    total = redis.Redis.from_url(fleet.url).zcard(keys.JOBS_INDEX)
    assert table[-1].startswith(f"{min(total, 500)} of {total} jobs")


def test_node_client_stops_after_its_reconnect_budget(tmp_path: Path) -> None:
    client_dir = ROOT / "examples" / "node-client"
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI for the Node client test")
        pytest.skip("node/npm not installed")
    if not (client_dir / "node_modules").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=client_dir, check=True, timeout=300, capture_output=True
        )
    port = _free_port()
    done = subprocess.run(
        ["node", "submit.mjs", "--redis", f"redis://:pw@127.0.0.1:{port}/0", "--reconnect-budget-s", "1"],
        cwd=client_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.UNREACHABLE
    assert done.stderr.splitlines() == [f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: connection refused"]


def test_a_worker_warns_when_its_local_artifact_dir_cannot_reach_other_hosts(fleet: Fleet) -> None:
    # A worker on another host, as its heartbeat record says; this host's new worker uses a local directory.
    live = redis.Redis.from_url(fleet.url)
    record = live.get(keys.worker_key(live.zrange(keys.WORKERS, 0, 0)[0].decode(), "manifest"))
    assert record is not None
    other = json.loads(record) | {"worker": "wz@elsewhere.example"}
    live.set(keys.worker_key("wz@elsewhere.example", "manifest"), json.dumps(other), ex=60)
    live.zadd(keys.WORKERS, {"wz@elsewhere.example": other["published_at"]})
    try:
        fleet.start("wlocal")
        fleet.wait_ready(["wlocal"])
        log = fleet.logs["wlocal"]
        wait_until(lambda: "elsewhere.example" in log.read_text(), 30, "the artifact dir warning")
        assert f"artifact dir {fleet.artifact_dir} is local to this host" in log.read_text()
    finally:
        proc = fleet.procs.pop("wlocal")
        proc.terminate()
        proc.wait(timeout=30)
        live.delete(keys.worker_key("wz@elsewhere.example", "manifest"))
        live.zrem(keys.WORKERS, "wz@elsewhere.example")


def test_an_unreachable_broker_is_one_line_and_leaves_no_job(fleet: Fleet, tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(spec("p", "given", True, 3)))
    port = _free_port()
    env = {
        "BTQ_REDIS_URL": fleet.url,
        "BTQ_QUEUE": fleet.queue,
        "BTQ_BROKER_URL": f"redis://:brokerpw@127.0.0.1:{port}/0",
        "BTQ_REDIS_RECONNECT_BUDGET_S": "0",
    }
    store = redis.Redis.from_url(fleet.url)
    before = store.zcard(keys.JOBS_INDEX)
    run = run_btq("submit", str(job_file), env=env, timeout_s=120)
    assert run.returncode == ExitCode.UNREACHABLE, run.stderr
    assert run.stderr.splitlines() == [
        f"cannot reach the broker at redis://:***@127.0.0.1:{port}/0: connection refused"
    ]
    assert store.zcard(keys.JOBS_INDEX) == before
