"""`btq watch`, `submit --wait`, `btq jobs` and `btq worker --events` as a user meets them."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from tests.cli_runner import run_btq
from tests.conftest import ROOT, Fleet, redis_url, wait_until
from tests.integration.test_parity import spec
from tests.pty_terminal import run_in_pty, visible_lines

pytestmark = pytest.mark.integration


def btq(url: str, queue: str, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return run_btq(*args, env={"BTQ_REDIS_URL": url, "BTQ_QUEUE": queue}, timeout_s=timeout_s)


def test_watch_in_an_80_column_terminal_draws_bars_never_wider(fleet: Fleet, client: JobClient) -> None:
    job = spec("p -> w -> p -> p", "given", True, 21)
    job["lm"] = "t.sim_slow"
    job_id = client.submit(job)
    env = {**os.environ, "BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue, "PYTHONPATH": str(ROOT)}
    raw = run_in_pty(
        [sys.executable, "-m", "btq.producer.cli", "watch", job_id, "--timeout", "120"],
        columns=80,
        env=env,
        timeout_s=180,
    )
    lines = visible_lines(raw)
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    text = "\n".join(lines)
    assert "━" in raw and "job.succeeded" in text and "rank  strategy" in text
    assert client.status(job_id).state.value == "succeeded"


def test_submit_wait_without_a_live_worker_fails_fast_and_enqueues_nothing(tmp_path: Path) -> None:
    url = redis_url(6)
    store = redis.Redis.from_url(url)
    store.flushdb()
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(spec("p", "given", True, 1)))
    began = time.monotonic()
    run = btq(url, "btq-nobody", "submit", str(job_file), "--wait", "--timeout", "3600")
    took = time.monotonic() - began
    assert run.returncode == 4, run.stdout + run.stderr
    assert "no live worker consumes queue 'btq-nobody'" in run.stderr and "btq worker" in run.stderr
    assert took < 30  # bounded by one remote-control round (1.5 s) plus interpreter start
    assert store.keys("btq:*") == []  # (only the remote-control reply binding of the ping exists)
    store.close()


def test_watch_of_an_unknown_job_id_says_so_at_once(fleet: Fleet) -> None:
    run = btq(fleet.url, fleet.queue, "watch", "0123456789abcdef", "--timeout", "3600")
    assert run.returncode == 3
    assert "unknown job id" in run.stderr and "0123456789abcdef" in run.stderr


def test_watch_of_a_queued_job_no_worker_serves_fails_fast(fleet: Fleet) -> None:
    orphan = JobClient(ProducerSettings(redis_url=fleet.url, queue="btq-unserved"))
    job_id = orphan.submit(spec("p", "given", True, 1))
    try:
        run = btq(fleet.url, "btq-unserved", "watch", job_id, "--timeout", "3600")
        assert run.returncode == 4
        assert "no live worker consumes queue 'btq-unserved'" in run.stderr
    finally:
        orphan.cancel(job_id)
        redis.Redis.from_url(fleet.url).delete("btq-unserved")


def test_jobs_lists_newest_first_with_a_state_filter_and_json(fleet: Fleet, client: JobClient) -> None:
    older = client.submit(spec("p", "given", True, 31))
    newer = client.submit(spec("p -> p", "given", True, 32))
    client.wait(older, timeout_s=120)
    client.wait(newer, timeout_s=120)
    rows = [json.loads(line) for line in btq(fleet.url, fleet.queue, "jobs", "--json").stdout.splitlines()]
    ids = [r["job_id"] for r in rows]
    assert ids.index(newer) < ids.index(older)
    assert rows[ids.index(newer)]["strategy"] == "p -> p" and rows[ids.index(newer)]["state"] == "succeeded"
    table = btq(fleet.url, fleet.queue, "jobs", "--state", "succeeded").stdout
    assert newer in table and "succeeded" in table and table.splitlines()[0].startswith("job")
    none = btq(fleet.url, fleet.queue, "jobs", "--state", "queued", "--json").stdout
    assert newer not in none
    bad = btq(fleet.url, fleet.queue, "jobs", "--state", "done")
    assert bad.returncode == 2 and "--state" in bad.stderr


def test_worker_started_with_events_sends_celery_task_events() -> None:
    url = redis_url(7)
    redis.Redis.from_url(url).flushdb()
    queue = "btq-events"
    seen: list[dict[str, Any]] = []
    app = Celery(broker=url, set_as_current=False)
    with tempfile.TemporaryDirectory(prefix="btq-test-events-") as tmp:
        env = {
            **os.environ,
            "BTQ_REDIS_URL": url,
            "BTQ_QUEUE": queue,
            "BTQ_IMPORTS": '["tests.fixture_registry"]',
            "BTQ_ARTIFACT_DIR": tmp,
            "PYTHONPATH": str(ROOT),
        }
        log = Path(tmp) / "worker.log"
        argv = [sys.executable, "-m", "btq.producer.cli", "worker", "--events", "-n", "ev@%h", "-l", "info"]
        worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "ready." in log.read_text(), 60, "worker ready", interval_s=0.2)
            with app.connection() as conn:
                receiver = app.events.Receiver(conn, handlers={"*": seen.append})
                listener = threading.Thread(target=lambda: _capture(receiver), daemon=True)
                listener.start()
                wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in seen), 30, "a worker heartbeat")
                client = JobClient(ProducerSettings(redis_url=url, queue=queue))
                job_id = client.submit(spec("p", "given", True, 41))
                client.wait(job_id, timeout_s=120)

                def succeeded() -> int:
                    return sum(e["type"] == "task-succeeded" for e in seen)

                wait_until(lambda: succeeded() >= 3, 30, "task-succeeded events of the job's tasks")
                receiver.should_stop = True
                listener.join(timeout=10)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    names = {e.get("name") for e in seen if e["type"] == "task-received"}
    assert {"btq.step", "btq.finalize"} <= names
    assert all(e["hostname"].startswith("ev@") for e in seen if e["type"].startswith("task-"))


def _capture(receiver: Any) -> None:
    with suppress(OSError):  # timeout: the test already failed or finished
        receiver.capture(limit=None, timeout=120, wakeup=True)
