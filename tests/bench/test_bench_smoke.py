"""Smoke test of the bench: the quick events section on real Redis and one real worker.

It asserts structure and zero lost events, never a time: the machine is shared and timings are noisy.
"""

import math
from pathlib import Path

import pytest
import redis

from bench.config import DB_EVENTS, QUICK
from bench.context import BenchContext
from bench.events import run_events
from bench.jobs import TINY_JOB_EVENTS
from bench.redis_dbs import db_url
from bench.report import render_table

pytestmark = pytest.mark.integration

JOBS = 20


@pytest.fixture
def bench_redis() -> None:
    try:
        redis.Redis.from_url(db_url(DB_EVENTS), socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis does not answer at {db_url(DB_EVENTS)}: {exc}")


def test_quick_events_section_delivers_every_event(bench_redis: None, tmp_path: Path) -> None:
    ctx = BenchContext(plan=QUICK, quick=True, workdir=tmp_path)
    section = run_events(ctx, jobs=JOBS, workers=1)

    assert section.failures == []
    figures = {f.name: f for f in section.figures}
    expected = TINY_JOB_EVENTS * JOBS
    assert figures["events expected"].value == expected
    assert figures["events in per-job streams"].value == expected
    assert figures["events received by subscriber"].value == expected
    assert figures["events lost"].value == 0
    assert figures["jobs succeeded"].value == JOBS
    for name in ("delivery latency p50", "delivery latency p99"):
        summary = figures[name].summary
        assert summary is not None and summary.n > 0
        assert not math.isnan(summary.median)
    assert len(ctx.startup_s) == 1  # the one worker's start-up was recorded
    assert "events lost" in render_table([section])
