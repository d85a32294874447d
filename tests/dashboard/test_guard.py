"""What the dashboard refuses: blank tokens, foreign Host names, cross-site POSTs, unknown job pages;
and what it survives: malformed event entries and worker records anyone could write to Redis."""

import json
import logging
import os
import socket
import subprocess
import sys
import uuid

import pytest
import redis
from pydantic import SecretStr

from btq.producer.client import JobClient
from btq.producer.dashboard.server import DashboardServer
from btq.producer.dashboard.settings import DashboardSettings
from btq.schemas import keys
from btq.schemas.events import EventType
from tests.conftest import ROOT, Fleet, wait_until
from tests.dashboard.server import dashboard
from tests.dashboard.sse import read_events
from tests.dashboard.test_api import slow_job
from tests.integration.test_parity import spec
from tests.malformed import add_malformed

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_job_event_stream_skips_malformed_entries_and_reaches_the_end(
    fleet: Fleet, client: JobClient, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = uuid.uuid4().hex
    bad = add_malformed(client.redis, keys.job_key(job_id, "events"))
    client.submit(spec("p", "given", True, 5), job_id=job_id)
    client.wait(job_id, timeout_s=120)
    with caplog.at_level(logging.WARNING, logger="btq.events"), dashboard(fleet) as dash:
        got = []
        for message in read_events(f"{dash.url}/api/jobs/{job_id}/events", timeout_s=30):
            got.append(message)
            if EventType(message.event).is_terminal:
                break
    assert [m.id for m in got] == [eid for eid, _ in client.events(job_id)]
    assert [m.data for m in got] == [e.model_dump(mode="json") for _, e in client.events(job_id)]
    for entry_id in bad:
        assert any(entry_id in r.getMessage() and job_id in r.getMessage() for r in caplog.records)


def test_workers_api_and_cli_survive_malformed_events_and_worker_records(fleet: Fleet) -> None:
    store = redis.Redis.from_url(fleet.url)
    bad_events = add_malformed(store, keys.GLOBAL_EVENTS)
    junk = {
        keys.worker_key("notjson@x", "manifest"): b"\xff not json",
        keys.worker_key("types@x", "manifest"): json.dumps(
            {"worker": "types@x", "published_at": "abc", "pool_size": []}
        ),
        keys.worker_key("nan@x", "manifest"): json.dumps(
            {"worker": "nan@x", "published_at": "nan", "expires_at": "inf"}
        ),
        keys.worker_key("list@x", "manifest"): b"[1, 2]",
    }
    try:
        for key, value in junk.items():
            store.set(key, value, ex=120)
        store.hset(keys.worker_key("hash@x", "manifest"), mapping={b"worker": b"\xff\xfe", b"published_at": b"x"})
        store.expire(keys.worker_key("hash@x", "manifest"), 120)
        store.zadd(keys.WORKERS, {"notjson@x": 1, "types@x": 1, "list@x": 1})
        live = sorted(store.zrange(keys.WORKERS, 0, -1))
        wa = next(n.decode() for n in live if n.startswith(b"wa@"))
        store.hset(keys.worker_key(wa, "running"), "junk-task", b"\xff{not json")
        with dashboard(fleet) as dash:
            answer = dash.get("/api/workers")
            assert answer.status_code == 200, answer.text
            names = {w["worker"] for w in answer.json()}
            assert {"types@x", "nan@x"} <= names and any(n.startswith("wa@") for n in names)
        env = {**os.environ, "BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "btq.producer.cli", "workers", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        listed = {w["name"] for w in map(json.loads, done.stdout.splitlines())}
        assert wa in listed and not listed & {"notjson@x", "types@x", "list@x"}
        assert "notjson@x" in done.stderr and "junk-task" in done.stderr
    finally:
        store.xdel(keys.GLOBAL_EVENTS, *bad_events)
        store.delete(*junk, keys.worker_key("hash@x", "manifest"))
        store.zrem(keys.WORKERS, "notjson@x", "types@x", "list@x")
        store.hdel(keys.worker_key(wa, "running"), "junk-task")
        store.close()


@pytest.mark.parametrize("token", ["", "   "], ids=["empty", "blank"])
def test_an_empty_or_blank_token_is_refused_beyond_loopback_like_a_missing_one(token: str) -> None:
    env = {**os.environ, "BTQ_DASHBOARD_TOKEN": token, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "btq.producer.cli", "dashboard", "--host", "127.0.0.2", "--port", str(free_port())]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail("the dashboard started serving beyond loopback with a blank token")
    assert proc.returncode == 2 and "BTQ_DASHBOARD_TOKEN" in err
    settings = DashboardSettings(dashboard_host="127.0.0.2", dashboard_token=SecretStr(token))
    assert settings.dashboard_token is None
    with pytest.raises(ValueError, match="BTQ_DASHBOARD_TOKEN"):
        DashboardServer(settings)


def test_requests_naming_a_foreign_host_are_refused(fleet: Fleet) -> None:
    with dashboard(fleet) as dash:
        port = dash.settings.dashboard_port
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", f"127.0.0.1:{port + 1}"):
            for path in ("/", "/api/jobs", "/api/workers"):
                refused = dash.get(path, headers={"Host": host})
                assert refused.status_code == 421, (host, path, refused.status_code)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert dash.get("/api/jobs", headers={"Host": host}).status_code == 200, host
    with dashboard(fleet, dashboard_allowed_hosts=["btq.internal"]) as dash:
        assert dash.get("/api/jobs", headers={"Host": "btq.internal"}).status_code == 200
        assert dash.get("/api/jobs", headers={"Host": "evil.example"}).status_code == 421


def test_a_cross_site_cancel_is_refused_and_the_job_keeps_running(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(slow_job(6))
    wait_until(lambda: client.status(job_id).state.value == "running", 60, "the job running")
    with dashboard(fleet) as dash:
        path = f"/api/jobs/{job_id}/cancel"
        form = {"Content-Type": "text/plain"}
        for headers in (
            {**form, "Origin": "https://evil.example"},
            {**form, "Origin": "null"},
            {**form, "Sec-Fetch-Site": "cross-site"},
            {**form, "Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
        ):
            refused = dash.post(path, content="x", headers=headers)
            assert refused.status_code == 403, (headers, refused.status_code)
        assert not client.redis.exists(keys.job_key(job_id, "cancel"))
        assert client.status(job_id).state.value == "running"
        own = {"Origin": dash.url, "Sec-Fetch-Site": "same-origin"}
        accepted = dash.post(path, headers=own)
        assert accepted.status_code == 202, accepted.text
    assert client.wait(job_id, timeout_s=120).state.value == "cancelled"


def test_with_a_token_a_cross_site_cancel_needs_the_token_in_a_header(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(slow_job(6))
    with dashboard(fleet, token="s3cret-token") as dash:
        path = f"/api/jobs/{job_id}/cancel"
        foreign = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        cookie = {"btq_dashboard_token": "s3cret-token"}
        assert dash.post(path, headers=foreign, cookies=cookie).status_code == 403
        assert not client.redis.exists(keys.job_key(job_id, "cancel"))
        accepted = dash.post(path, headers={**foreign, "Authorization": "Bearer s3cret-token"})
        assert accepted.status_code == 202
    assert client.wait(job_id, timeout_s=120).state.value == "cancelled"


def test_an_unknown_job_page_answers_404_without_a_cancel_button(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 2))
    with dashboard(fleet) as dash:
        unknown = dash.get("/jobs/no-such-job")
        assert unknown.status_code == 404
        assert 'id="cancel"' not in unknown.text and "no-such-job" in unknown.text
        known = dash.get(f"/jobs/{job_id}")
        assert known.status_code == 200 and 'id="cancel"' in known.text
    client.wait(job_id, timeout_s=120)


def test_the_jobs_list_and_a_job_page_survive_a_job_whose_records_are_garbage(fleet: Fleet) -> None:
    store = redis.Redis.from_url(fleet.url)
    job_id = f"garbage-{uuid.uuid4().hex}"
    try:
        store.hset(
            keys.job_key(job_id, "status"),
            mapping={"state": "running", "steps_total": "many", "steps_done": b"\xff", "submitted_at": "nan"},
        )
        store.set(keys.job_key(job_id, "spec"), b"\xff not json")
        store.set(keys.job_key(job_id, "result"), b'{"not": "a result"}')
        store.zadd(keys.JOBS_INDEX, {job_id: 1})
        with dashboard(fleet) as dash:
            listed = dash.get(f"/api/jobs?q={job_id}")
            assert listed.status_code == 200, listed.text
            row = next(r for r in listed.json()["rows"] if r["job_id"] == job_id)
            assert (row["steps_total"], row["submitted_at"], row["best_score"]) == (0, 0.0, None)
            detail = dash.get(f"/api/jobs/{job_id}")
            assert detail.status_code == 200 and detail.json()["result"] is None
            assert dash.get(f"/jobs/{job_id}").status_code == 200
    finally:
        store.delete(*[keys.job_key(job_id, part) for part in ("status", "spec", "result")])
        store.zrem(keys.JOBS_INDEX, job_id)
        store.close()


def test_probes_answer_any_host_without_the_token_and_metrics_any_host_with_it(fleet: Fleet) -> None:
    """An orchestrator probes by pod address without a token; a scraper names its target by address."""
    with dashboard(fleet, token="s3cret-token") as dash:
        pod = {"Host": "10.1.2.3:8750"}
        assert dash.get("/healthz", headers=pod).status_code == 200
        assert dash.get("/readyz", headers=pod).status_code == 200
        assert dash.get("/metrics", headers=pod).status_code == 401, "metrics still need the token"
        scrape = dash.get("/metrics", headers={**pod, "Authorization": "Bearer s3cret-token"})
        assert scrape.status_code == 200 and "btq_" in scrape.text
        assert dash.get("/api/jobs", headers={**pod, "Authorization": "Bearer s3cret-token"}).status_code == 421
        assert dash.get("/api/jobs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
