"""Events: every step's events arrive in order; a late subscriber replays them all, from any cursor."""

import threading

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType, JobEvent
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def expected_sequence(steps: int) -> list[tuple[EventType, int | None]]:
    seq: list[tuple[EventType, int | None]] = [(EventType.JOB_SUBMITTED, None)]
    for index in range(steps + 1):
        seq += [(EventType.STEP_STARTED, index), (EventType.STEP_SUCCEEDED, index)]
    return [*seq, (EventType.JOB_SUCCEEDED, None)]


def test_live_subscriber_sees_every_step_in_order_and_late_subscriber_replays_all(client: JobClient) -> None:
    job_id = client.submit(spec("p -> w -> p", "given", True, 2))
    live: list[JobEvent] = []
    follower = threading.Thread(target=lambda: live.extend(client.follow(job_id, timeout_s=120)))
    follower.start()
    follower.join(timeout=150)
    assert not follower.is_alive()
    lifecycle = [(e.type, e.step_index) for e in live if e.type is not EventType.STEP_PROGRESS]
    assert lifecycle == expected_sequence(3)
    assert [e.strategy for e in live if e.type is EventType.STEP_SUCCEEDED] == [
        "",
        "p",
        "p -> w",
        "p -> w -> p",
    ]
    assert all(e.worker for e in live if e.type is EventType.STEP_SUCCEEDED)
    assert [e.at for e in live] == sorted(e.at for e in live)

    replay = client.events(job_id)
    assert [e for _, e in replay] == live
    cursor = replay[3][0]
    assert [e for _, e in client.events(job_id, after=cursor)] == live[4:]
    assert list(client.follow(job_id, timeout_s=10)) == live


def test_result_scores_match_the_step_events(client: JobClient) -> None:
    job_id = client.submit(spec("p -> p", "given", False, 6))
    result = client.wait(job_id, timeout_s=120)
    scores = {e.step_index: e.score for _, e in client.events(job_id) if e.type is EventType.STEP_SUCCEEDED}
    assert {c.step_index: c.score for c in result.candidates} == scores


def test_cancel_stops_the_job_and_keeps_candidates_so_far(client: JobClient) -> None:
    job = spec("p -> p -> p -> p -> p -> p", "given", True, 12)
    job["lm"] = "t.sim_slow"
    job_id = client.submit(job)
    for event in client.follow(job_id, timeout_s=120):
        if event.type is EventType.STEP_SUCCEEDED and event.step_index == 1:
            assert client.cancel(job_id)
            break
    result = client.wait(job_id, timeout_s=120)
    assert result.state.value == "cancelled"
    assert {c.step_index for c in result.candidates} >= {0, 1}
    assert len(result.candidates) < 7
    assert client.cancel(job_id) is False
    status = client.status(job_id)
    assert status.state.value == "cancelled"
    # It counts the steps that ran (`cancelled, 2/6 steps`), not those cancelled or skipped after.
    assert status.steps_done == max(c.step_index for c in result.candidates) < status.steps_total


def test_finetuning_reports_progress_events_inside_its_step(client: JobClient) -> None:
    job_id = client.submit(spec("p -> w", "given", True, 2))
    client.wait(job_id, timeout_s=120)
    events = [e for _, e in client.events(job_id)]
    progress = [e for e in events if e.type is EventType.STEP_PROGRESS and e.detail["phase"] == "finetune"]
    assert [(e.step_index, e.detail["phase"]) for e in progress] == [(2, "finetune")]
    started = next(i for i, e in enumerate(events) if e.type is EventType.STEP_STARTED and e.step_index == 2)
    done = next(i for i, e in enumerate(events) if e.type is EventType.STEP_SUCCEEDED and e.step_index == 2)
    assert started < events.index(progress[0]) < done


def test_sharded_evaluations_report_shards_done_out_of_total_while_they_run(client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 4))
    client.wait(job_id, timeout_s=120)
    events = [e for _, e in client.events(job_id)]
    evaluating = [e.detail for e in events if e.type is EventType.STEP_PROGRESS and e.detail["phase"] == "evaluate"]
    assert evaluating, "evaluations report progress"
    for detail in evaluating:
        assert 0 <= detail["shards_done"] <= detail["shards_total"]
    finals = [d for d in evaluating if "shard_workers" in d]
    assert finals and all(d["shards_done"] == d["shards_total"] for d in finals)
