"""A job's state as readers see it: `running` from step 0 on, a vanished job reported, a result reused as input."""

import json
import threading
import uuid
from typing import Any

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.events import EventType
from btq.schemas.exceptions import JobVanishedError
from btq.schemas.result import JobResult
from tests.conftest import redis_url, wait_until
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def test_status_reads_running_while_step_0_runs(client: JobClient) -> None:
    job = spec("p", "given", True, 8)
    job["lm"] = "t.sim_slower"  # step 0 (the baseline evaluation) takes a few seconds
    job_id = client.submit(job)
    for event in client.follow(job_id, timeout_s=120):
        if event.type is EventType.STEP_STARTED and event.step_index == 0:
            break
    status = client.status(job_id)
    assert not client.redis.exists(keys.step_key(job_id, 0)), "step 0 ended before its status was read"
    assert (status.state.value, status.steps_done) == ("running", 0)
    assert client.wait(job_id, timeout_s=120).state.value == "succeeded"


def test_wait_reports_a_job_that_vanished_instead_of_blocking_until_its_timeout() -> None:
    url = redis_url(12)
    store = redis.Redis.from_url(url)
    store.flushdb()
    client = JobClient(ProducerSettings(redis_url=url, queue="btq-vanish"))
    job_id = uuid.uuid4().hex
    # A submitted job waiting for its first step, as `submit` leaves it.
    store.set(keys.job_key(job_id, "spec"), "{}")
    store.hset(keys.job_key(job_id, "status"), mapping={"state": "queued", "steps_total": 1, "submitted_at": 0})
    outcome: list[BaseException | Any] = []

    def wait() -> None:
        try:
            outcome.append(client.wait(job_id, timeout_s=300))
        except BaseException as exc:  # the thread hands any outcome back to the test
            outcome.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    # Only once wait() blocks on the job's event stream (before, it would answer "not found" at once).
    wait_until(lambda: any(c.get("cmd") == "xread" for c in store.client_list()), 10, "wait() blocking")
    store.flushdb()  # Redis restarted without its data
    waiter.join(timeout=20)
    assert outcome, "wait() still blocks on a job whose keys are gone"
    (error,) = outcome
    assert isinstance(error, JobVanishedError) and job_id in str(error)
    store.close()


@pytest.mark.parametrize("field", ["program", "teacher"])
def test_a_results_best_program_state_is_accepted_back_as_job_input_and_runs(client: JobClient, field: str) -> None:
    first = client.wait(client.submit(spec("p -> w", "given", True, 4)), timeout_s=120)
    assert first.best is not None
    state = first.best.program_state
    saved_lm = state.get("lm")  # a bare Predict saves its LM state at the top level
    assert isinstance(saved_lm, dict) and "engine" in saved_lm and "_dspy_lm_class" in saved_lm
    job = spec("p", "given", True, 4)
    ref = {"name": job["program"]["name"], "state": state}
    if field == "program":
        job["program"] = ref
    else:
        job["teacher"] = ref
    again = client.wait(client.submit(job), timeout_s=120)
    assert again.state.value == "succeeded", again.error


@pytest.mark.parametrize("field", ["program", "teacher"])
def test_a_saved_lm_naming_another_engine_class_is_never_loaded(client: JobClient, field: str) -> None:
    first = client.wait(client.submit(spec("p", "given", True, 4)), timeout_s=120)
    assert first.best is not None
    honest = first.best.program_state
    forged = json.loads(json.dumps(honest))
    forged["lm"]["engine"] = {"class": "os:system", "state": {"command": "touch /tmp/btq-forged"}}

    def run(state: dict[str, Any]) -> JobResult:
        job = spec("p", "given", True, 4)
        job[field] = {"name": job["program"]["name"], "state": state}
        return client.wait(client.submit(job), timeout_s=120)

    result = run(forged)
    if field == "teacher":  # a teacher keeps its saved LM, so one naming another engine is refused
        assert result.state.value == "failed" and result.error is not None
        assert "engine" in result.error.message and "differs from the job LM" in result.error.message
    else:  # the student always runs on the job LM: the saved one is dropped unread
        assert [(c.strategy, c.score) for c in result.candidates] == [
            (c.strategy, c.score) for c in run(honest).candidates
        ]
