"""The job page draws whatever `step.progress` reports arrive: the fine-tune loss curve as it trains and
evaluation shards. The events are written to a real Redis in the documented layout, as the local
backend and the sharded evaluation write them (the simulated LM of the test fleet reports no loss)."""

import time
import uuid
from typing import Any

import pytest
import redis
from selenium.webdriver.common.by import By

from btq.schemas import keys
from btq.schemas.events import EventType, JobEvent
from tests.conftest import redis_url, wait_until
from tests.dashboard.browser import chromium, screenshot
from tests.dashboard.server import dashboard

pytestmark = pytest.mark.integration


class Job:
    """A job as workers record it: status hash, spec, events stream."""

    def __init__(self, store: redis.Redis) -> None:
        self.store = store
        self.id = uuid.uuid4().hex
        now = time.time()
        store.set(keys.job_key(self.id, "spec"), '{"strategy": "w", "program": {"name": "local.iso_date"}}')
        store.hset(
            keys.job_key(self.id, "status"),
            mapping={"state": "running", "steps_total": 1, "steps_done": 0, "submitted_at": now, "updated_at": now},
        )
        store.zadd(keys.JOBS_INDEX, {self.id: now})

    def emit(self, kind: EventType, index: int | None = None, **detail: Any) -> None:
        event = JobEvent(
            type=kind,
            job_id=self.id,
            at=time.time(),
            steps_total=1,
            step_index=index,
            strategy="" if index == 0 else "w",
            worker="w1@host:1",
            attempt=1,
            detail=detail,
        )
        self.store.xadd(keys.job_key(self.id, "events"), {"event": event.model_dump_json()})


def finetune_step(job: Job, step: int) -> None:
    job.emit(EventType.STEP_PROGRESS, 1, phase="finetune", event="step", step=step, total_steps=20, loss=3.0 / step)


def test_loss_curve_grows_live_and_shards_show_their_count() -> None:
    url = redis_url(3)
    store = redis.Redis.from_url(url)
    store.flushdb()
    job = Job(store)
    job.emit(EventType.JOB_SUBMITTED, seed=0)
    job.emit(EventType.STEP_STARTED, 1)
    for step in range(1, 11):
        finetune_step(job, step)
    fleet_like = type("F", (), {"url": url, "queue": "btq-progress"})()
    try:
        with dashboard(fleet_like) as dash, chromium() as driver:  # type: ignore[arg-type]
            driver.get(f"{dash.url}/jobs/{job.id}")

            def points() -> int:
                lines = driver.find_elements(By.CSS_SELECTOR, "#loss-svg polyline.loss-line")
                return len((lines[0].get_attribute("points") or "").split()) if lines else 0

            wait_until(lambda: points() == 10, 30, "ten loss points replayed")
            progress = driver.find_element(By.CSS_SELECTOR, "#step-1 .c-progress")
            assert "fine-tune 10/20" in progress.text and "loss 0.300" in progress.text
            for step in range(11, 21):
                finetune_step(job, step)
            wait_until(lambda: points() == 20, 30, "the curve following new reports live")
            job.emit(EventType.STEP_PROGRESS, 1, phase="evaluate", shards_done=3, shards_total=8)
            wait_until(lambda: "evaluate 3/8" in progress.text, 30, "shard progress")
            job.emit(EventType.STEP_PROGRESS, 1, phase="finetune", event="phase", stage="convert")
            wait_until(lambda: "stage=convert" in progress.text, 30, "an uncounted report shown as key=value")
            screenshot(driver, "job-page-loss-curve")
    finally:
        store.flushdb()
        store.close()
