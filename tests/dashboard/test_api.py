"""The dashboard's JSON API and event stream on a real Redis with real workers running real jobs."""

import json
import threading
import time

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.dashboard import reader
from btq.producer.dashboard.job_list import JobList
from btq.schemas import keys
from btq.schemas.events import EventType
from tests.conftest import Fleet, wait_until
from tests.dashboard.server import dashboard
from tests.dashboard.sse import Message, read_events
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def slow_job(steps: int = 4) -> dict[str, object]:
    job = spec(" -> ".join(["p"] * steps), "given", True, 5)
    job["lm"] = "t.sim_slow"
    return job


def test_event_stream_replays_after_a_cursor_then_follows_to_the_end(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p -> w", "given", True, 4))
    client.wait(job_id, timeout_s=120)
    stored = client.events(job_id)
    cursor = stored[2][0]
    with dashboard(fleet) as dash:
        got = []
        for message in read_events(f"{dash.url}/api/jobs/{job_id}/events?after={cursor}"):
            got.append(message)
            if EventType(message.event).is_terminal:
                break
    assert [m.id for m in got] == [eid for eid, _ in stored[3:]]
    assert [m.data for m in got] == [e.model_dump(mode="json") for _, e in stored[3:]]


def test_reconnect_with_last_event_id_loses_and_repeats_nothing(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(slow_job())
    with dashboard(fleet) as dash:
        url = f"{dash.url}/api/jobs/{job_id}/events"
        first: list[Message] = []
        for message in read_events(url):
            first.append(message)
            if message.event == EventType.STEP_SUCCEEDED and message.data["step_index"] == 1:
                break  # the connection drops mid-job
        assert client.status(job_id).state.value == "running"
        second: list[Message] = []
        for message in read_events(url, headers={"Last-Event-ID": first[-1].id}, timeout_s=120):
            second.append(message)
            if EventType(message.event).is_terminal:
                break
    ids = [m.id for m in first + second]
    assert ids == [eid for eid, _ in client.events(job_id)]
    assert len(set(ids)) == len(ids)


def test_last_event_id_wins_over_the_page_cursor_and_bad_cursors_are_refused(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 4))
    client.wait(job_id, timeout_s=120)
    stored = client.events(job_id)
    with dashboard(fleet) as dash:
        url = f"{dash.url}/api/jobs/{job_id}/events?after=0-0"
        got = next(read_events(url, headers={"Last-Event-ID": stored[-2][0]}))
        assert got.id == stored[-1][0]
        bad = dash.get(f"/api/jobs/{job_id}/events?after=latest")
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]
        assert dash.get("/api/jobs/nope/events").status_code == 404


def test_jobs_list_is_newest_first_filters_by_state_and_detail_matches_the_result(
    fleet: Fleet, client: JobClient
) -> None:
    first = client.submit(spec("p", "given", True, 1))
    second = client.submit(spec("p -> p", "given", True, 2))
    result = client.wait(second, timeout_s=120)
    client.wait(first, timeout_s=120)
    with dashboard(fleet) as dash:
        page = dash.get("/api/jobs?state=succeeded").json()
        rows = page["rows"]
        assert page["total"] == len(rows) >= 2
        ids = [r["job_id"] for r in rows]
        assert ids.index(second) < ids.index(first)
        assert all(r["state"] == "succeeded" for r in rows)
        row = rows[ids.index(second)]
        assert row["best_score"] == result.best.score if result.best else None
        assert (row["steps_done"], row["steps_total"], row["strategy"]) == (2, 2, "p -> p")
        assert second not in [r["job_id"] for r in dash.get("/api/jobs?state=running").json()["rows"]]
        refused = dash.get("/api/jobs?state=done")
        assert refused.status_code == 400 and "state" in refused.json()["error"]

        detail = dash.get(f"/api/jobs/{second}").json()
        got = [(c["strategy"], c["score"], c["step_index"]) for c in detail["result"]["candidates"]]
        assert got == [(c.strategy, c.score, c.step_index) for c in result.candidates]
        assert [s["outcome"] for s in detail["steps"]] == ["succeeded"] * 3
        assert all(s["worker"] and s["duration_s"] >= 0 for s in detail["steps"])
        assert detail["result"]["best_program"][0]["name"] == "self"
        assert dash.get("/api/jobs/nope").status_code == 404


def test_workers_page_lists_live_workers_their_registry_and_the_step_they_run(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(slow_job(3))
    with dashboard(fleet) as dash:

        def running() -> list[dict[str, object]]:
            return [w for w in dash.get("/api/workers").json() if w["running"]]

        busy = wait_until(running, 60, "a worker running a step")
        assert isinstance(busy, list)
        assert busy[0]["running"][0]["job_id"] == job_id
        workers = dash.get("/api/workers").json()
        assert any("t.qa" in w["registered"].get("programs", {}) for w in workers)
        live = {w["worker"].split("@")[0] for w in workers if w["live"]}
        assert {"wa", "wb"} <= live
        assert all(w["last_seen_s_ago"] is None or w["last_seen_s_ago"] >= 0 for w in workers)
    client.wait(job_id, timeout_s=120)


def test_with_a_token_requests_without_it_get_401_and_cannot_cancel(fleet: Fleet, client: JobClient) -> None:
    job_id = client.submit(slow_job(6))
    store = redis.Redis.from_url(fleet.url)
    try:
        with dashboard(fleet, token="s3cret-token") as dash:
            for path in ("/", f"/jobs/{job_id}", "/workers", "/api/jobs", f"/api/jobs/{job_id}/events"):
                assert dash.get(path).status_code == 401, path
            assert dash.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
            refused = dash.post(f"/api/jobs/{job_id}/cancel")
            assert refused.status_code == 401
            assert not store.exists(keys.job_key(job_id, "cancel"))

            auth = {"Authorization": "Bearer s3cret-token"}
            assert dash.get("/api/jobs", headers=auth).status_code == 200
            page = dash.get("/?token=s3cret-token")
            assert page.status_code == 200 and "s3cret-token" not in page.text
            cookie = page.cookies.get("btq_dashboard_token")
            assert cookie == "s3cret-token"
            assert dash.get("/api/workers", cookies={"btq_dashboard_token": cookie}).status_code == 200
            accepted = dash.post(f"/api/jobs/{job_id}/cancel", headers=auth)
            assert accepted.status_code == 202 and accepted.json()["cancelled"] is True
        assert client.wait(job_id, timeout_s=120).state.value == "cancelled"
    finally:
        store.close()


def test_the_event_stream_sends_nothing_the_stream_does_not_hold(fleet: Fleet, client: JobClient) -> None:
    """Replays are read-only: opening streams concurrently adds no events and no keys."""
    job_id = client.submit(spec("p", "given", True, 9))
    client.wait(job_id, timeout_s=120)
    before = len(client.events(job_id))
    with dashboard(fleet) as dash:
        counts: list[int] = []

        def read() -> None:
            got = 0
            for message in read_events(f"{dash.url}/api/jobs/{job_id}/events"):
                got += 1
                if EventType(message.event).is_terminal:
                    break
            counts.append(got)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout=60)
    assert counts == [before] * 3
    assert len(client.events(job_id)) == before


def test_worker_list_tells_live_from_lapsed_workers_by_their_heartbeat_record(fleet: Fleet) -> None:
    store = redis.Redis.from_url(fleet.url)
    now = time.time()
    records = {
        "hb@host": {"worker": "hb@host", "pool_size": 4, "published_at": now, "expires_at": now + 60},
        "gone@host": {"worker": "gone@host", "pool_size": 2, "published_at": now - 90, "expires_at": now - 60},
        "odd@host": {"worker": "odd@host", "pool_size": "many", "expires_at": "soon"},
    }
    try:
        for name, record in records.items():
            store.set(keys.worker_key(name, "manifest"), json.dumps(record), ex=60)
        listed = {w["worker"]: w for w in reader.list_workers(store)}
        assert (listed["hb@host"]["live"], listed["hb@host"]["slots"]) == (True, 4)
        assert (listed["gone@host"]["live"], listed["gone@host"]["slots"]) == (False, 2)
        assert (listed["odd@host"]["live"], listed["odd@host"]["slots"]) == (None, None)
        # The fleet's own workers publish the same record: live, with their pool size.
        own = [w for name, w in listed.items() if name.startswith(("wa@", "wb@"))]
        assert len(own) == 2 and all(w["live"] and w["slots"] >= 1 for w in own)
    finally:
        store.delete(*[keys.worker_key(name, "manifest") for name in records])
        store.close()


def test_a_long_lived_job_list_picks_up_a_best_score_once_the_job_ends(fleet: Fleet, client: JobClient) -> None:
    jobs = JobList(redis.Redis.from_url(fleet.url))
    job_id = client.submit(slow_job(3))
    wait_until(lambda: client.status(job_id).state.value == "running", 60, "the job running")
    running = next(r for r in jobs.rows() if r["job_id"] == job_id)
    assert running["best_score"] is None and running["strategy"] == "p -> p -> p"
    result = client.wait(job_id, timeout_s=120)
    done = next(r for r in jobs.rows() if r["job_id"] == job_id)
    assert result.best is not None
    assert (done["state"], done["best_score"]) == ("succeeded", result.best.score)
