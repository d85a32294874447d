"""Prometheus: a real Prometheus server scrapes the dashboard's and a worker's `/metrics` while jobs run,
and its query API shows the counters move; `/healthz` and `/readyz` answer."""

from urllib.parse import urlparse

import httpx
import pytest
import redis

from btq.schemas import keys
from tests.conftest import wait_until
from tests.integration.test_parity import spec
from tests.observability.conftest import ObservedFleet, free_port
from tests.observability.prometheus_server import prometheus, query

pytestmark = pytest.mark.integration


def _value(base: str, expr: str) -> float:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else -1.0


def test_prometheus_scrapes_the_fleet_and_sees_steps_and_lm_requests_move(observed: ObservedFleet) -> None:
    dashboard = urlparse(observed.dashboard).netloc
    worker = urlparse(observed.worker_metrics).netloc
    with prometheus({"btq": dashboard, "btq-worker": worker}, free_port()) as prom:
        # Given: Prometheus has scraped both targets at least once (the first job already ran).
        wait_until(lambda: len(query(prom, "up == 1")) == 2, 30, "both targets up", interval_s=0.5)
        before_steps = _value(prom, "sum(btq_steps_total)")
        before_p = _value(
            prom, 'sum(btq_steps_total{optimizer="BootstrapFewShotWithRandomSearch",outcome="succeeded"})'
        )
        before_jobs = _value(prom, 'btq_jobs{state="succeeded"}')
        before_lm = _value(prom, "btq_lm_requests_total")
        before_tokens = _value(prom, "btq_lm_prompt_tokens_total")
        assert before_steps >= 4  # at least baseline + p -> w -> p of the fixture's job
        assert before_lm > 0
        # When: another job runs on the fleet.
        job_id = observed.client.submit(spec("p -> p", "given", False, 9))
        observed.client.wait(job_id, timeout_s=120)
        # Then: the scraped counters moved, with the optimizer's class as a label and no job id anywhere.
        wait_until(
            lambda: _value(prom, "sum(btq_steps_total)") == before_steps + 3, 30, "three more steps", interval_s=0.5
        )
        p_steps = query(prom, 'btq_steps_total{optimizer="BootstrapFewShotWithRandomSearch",outcome="succeeded"}')
        assert [float(r["value"][1]) for r in p_steps] == [before_p + 2]
        assert _value(prom, "btq_lm_requests_total") > before_lm
        # LM usage accounting feeds the same counters: tokens spent; the simulated model has no price.
        wait_until(lambda: _value(prom, "btq_lm_prompt_tokens_total") > before_tokens, 30, "tokens counted")
        assert _value(prom, "btq_lm_unpriced_requests_total") > 0
        # Each target is scraped on its own clock: a scrape can show the third step's end before the job's
        # state is set (finalize runs after it), so these wait for the next scrape too (bounded).
        wait_until(
            lambda: _value(prom, 'btq_jobs{state="succeeded"}') == before_jobs + 1, 30, "one more job", interval_s=0.5
        )
        assert _value(prom, "sum(btq_workers)") == 2
        wait_until(
            lambda: _value(prom, "sum(btq_step_duration_seconds_count)") == before_steps + 3,
            30,
            "three more step durations",
            interval_s=0.5,
        )
        assert _value(prom, "btq_worker_lm_requests_total") > 0  # the worker's own endpoint
        series = httpx.get(f"{prom}/api/v1/series", params={"match[]": '{__name__=~"btq_.*"}'}, timeout=5).json()
        labels = {key for s in series["data"] for key in s}
        assert "job_id" not in labels
        assert not any(job_id in str(s) for s in series["data"])


def test_health_and_readiness(observed: ObservedFleet) -> None:
    assert httpx.get(f"{observed.dashboard}/healthz", timeout=5).json() == {"status": "ok"}
    ready = httpx.get(f"{observed.dashboard}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


def test_metrics_survive_malformed_entries_in_redis(observed: ObservedFleet) -> None:
    # Given: garbage in the global event stream and in the counters hash (another writer, a bug).
    conn = redis.Redis.from_url(observed.fleet.url)
    conn.xadd(keys.GLOBAL_EVENTS, {"event": b"{not json"})
    conn.xadd(keys.GLOBAL_EVENTS, {"other": b"1"})
    kept = conn.hget(keys.METRICS, "shards_scored")
    conn.hset(keys.METRICS, mapping={"lm_requests_typo": "3", "shards_scored": "many"})
    try:
        # Then: the scrape still answers, reads every group, and skips only what it cannot read.
        response = httpx.get(f"{observed.dashboard}/metrics", timeout=10)
        assert response.status_code == 200
        assert "btq_scrape_errors 0.0" in response.text
        assert "btq_jobs_submitted_total" in response.text
    finally:
        conn.hdel(keys.METRICS, "lm_requests_typo")
        conn.hset(keys.METRICS, "shards_scored", kept or b"0")
