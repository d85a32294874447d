"""One fleet shared by the observability tests: two real workers sending Celery task events, exporting
OpenTelemetry spans to a JSON-lines file, one of them serving its own `/metrics`; a dashboard over the same
database (its `/metrics`, `/healthz`, `/readyz`); and one real job already finished on it."""

import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.dashboard.server import serving_in_thread
from btq.producer.dashboard.settings import DashboardSettings
from btq.schemas import keys
from btq.schemas.result import JobResult
from tests.conftest import Fleet, redis_url, wait_until
from tests.integration.test_parity import spec

DB = 11
QUEUE = "btq-obs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ObservedFleet:
    fleet: Fleet
    client: JobClient
    dashboard: str
    worker_metrics: str
    spans: Path
    job_id: str
    result: JobResult
    tmp: Path


@pytest.fixture(scope="package")
def observed() -> Iterator[ObservedFleet]:
    url = redis_url(DB)
    redis.Redis.from_url(url).flushdb()
    with tempfile.TemporaryDirectory(prefix="btq-obs-") as tmp_dir:
        tmp = Path(tmp_dir)
        spans = tmp / "spans.jsonl"
        env = {"BTQ_WORKER_SEND_EVENTS": "true", "BTQ_OTEL_EXPORTER": "jsonl", "BTQ_OTEL_JSONL_PATH": str(spans)}
        fleet = Fleet(url=url, queue=QUEUE, artifact_dir=tmp_dir, extra_env=env)
        metrics_port = free_port()
        try:
            fleet.extra_env = {**env, "BTQ_METRICS_PORT": str(metrics_port)}
            fleet.start("oa")
            fleet.extra_env = env
            fleet.start("ob")
            fleet.wait_ready(["oa", "ob"])
            live = redis.Redis.from_url(url)
            wait_until(lambda: live.zcard(keys.WORKERS) >= 2, 30, "both workers' manifests")
            client = fleet.client()
            job_id = client.submit(spec("p -> w -> p", "given", True, 5))
            try:
                result = client.wait(job_id, timeout_s=120)
            except Exception:
                for name, log in fleet.logs.items():
                    print(f"--- worker {name}:\n{log.read_text()[-4000:]}")
                raise
            settings = DashboardSettings(redis_url=url, queue=QUEUE, dashboard_port=free_port())
            with serving_in_thread(settings) as base:
                yield ObservedFleet(
                    fleet=fleet,
                    client=client,
                    dashboard=base,
                    worker_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
                    spans=spans,
                    job_id=job_id,
                    result=result,
                    tmp=tmp,
                )
        finally:
            fleet.stop()
