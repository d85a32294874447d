"""Horizontal scale: one job's steps run on both worker processes; the events say which."""

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from tests.integration.test_parity import assert_same, spec

pytestmark = pytest.mark.integration


def test_one_job_runs_its_steps_on_both_workers_and_still_matches_in_process(client: JobClient) -> None:
    job = spec("p -> w -> p -> w -> p -> p", "given", True, 21)
    job_id = client.submit(job)
    result = client.wait(job_id, timeout_s=300)
    hosts = {
        e.worker.split("@")[0] for _, e in client.events(job_id) if e.type is EventType.STEP_SUCCEEDED and e.worker
    }
    assert hosts == {"wa", "wb"}
    assert_same(result, job)


def test_many_jobs_at_once_all_finish_on_the_two_workers(client: JobClient) -> None:
    ids = [client.submit(spec("p -> w", "given", True, seed)) for seed in range(8)]
    results = [client.wait(job_id, timeout_s=300) for job_id in ids]
    assert all(r.state.value == "succeeded" for r in results)
    workers = {
        e.worker.split("@")[0]
        for job_id in ids
        for _, e in client.events(job_id)
        if e.type is EventType.STEP_STARTED and e.worker
    }
    assert workers == {"wa", "wb"}
