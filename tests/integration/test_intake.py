"""The intake stream: submissions as stream entries, handled by a real `btq intake` process."""

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from btq.producer.client import JobClient
from btq.producer.intake import Intake, job_id_for, submission_status
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.events import EventType, JobEvent
from btq.schemas.intake import SubmissionState, SubmissionStatus
from tests.conftest import Fleet, redis_url, wait_until
from tests.intake_process import running_intake
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def intake(fleet: Fleet) -> Iterator[subprocess.Popen[bytes]]:
    """One `btq intake` process for the shared fleet; it takes over entries idle for 1 s."""
    with running_intake(fleet) as proc:
        yield proc


def submit(client: JobClient, job: Any, submission_id: str | None = None, **extra: str | bytes) -> str:
    """XADD one entry the way any language would; return the submission id."""
    fields: dict[str, str | bytes] = {"job": job if isinstance(job, (str, bytes)) else json.dumps(job), **extra}
    if submission_id is not None:
        fields["submission_id"] = submission_id
    entry_id = client.redis.xadd(keys.INTAKE, fields)  # type: ignore[arg-type]
    return submission_id or (entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id))


def outcome(client: JobClient, submission_id: str, timeout_s: float = 30) -> SubmissionStatus:
    status = wait_until(
        lambda: submission_status(client.redis, submission_id), timeout_s, f"outcome of {submission_id}"
    )
    assert isinstance(status, SubmissionStatus)
    return status


def global_events(client: JobClient, submission_id: str) -> list[JobEvent]:
    entries = client.redis.xrange(keys.GLOBAL_EVENTS)
    events = [JobEvent.model_validate_json(data[b"event"]) for _, data in entries]
    return [e for e in events if e.detail.get("submission_id") == submission_id]


def test_a_submission_through_the_intake_runs_to_the_same_result_as_submit(
    client: JobClient, intake: subprocess.Popen[bytes]
) -> None:
    job = spec("p -> p", "given", True, 17)
    sid = f"same-{uuid.uuid4().hex}"
    submit(client, job, sid)
    status = outcome(client, sid)
    assert status.state is SubmissionState.ACCEPTED and status.job_id == job_id_for(sid)
    via_intake = client.wait(status.job_id, timeout_s=120)
    direct = client.wait(client.submit(job), timeout_s=120)
    assert [(c.strategy, c.score, c.program_state) for c in via_intake.candidates] == [
        (c.strategy, c.score, c.program_state) for c in direct.candidates
    ]


def test_the_same_submission_published_twice_makes_one_job_and_one_set_of_events(
    client: JobClient, intake: subprocess.Popen[bytes]
) -> None:
    sid = f"twice-{uuid.uuid4().hex}"
    jobs_before = client.redis.zcard(keys.JOBS_INDEX)
    submit(client, spec("p", "given", True, 3), sid)
    submit(client, spec("p", "given", True, 3), sid)
    status = outcome(client, sid)
    client.wait(status.job_id, timeout_s=120)
    # Both entries were handled (acknowledged), yet one job exists with one submitted event.
    wait_until(lambda: _pending(client) == 0, 30, "both entries acknowledged")
    assert client.redis.zcard(keys.JOBS_INDEX) == jobs_before + 1
    submitted = [e for _, e in client.events(status.job_id) if e.type is EventType.JOB_SUBMITTED]
    assert len(submitted) == 1 and submitted[0].detail["submission_id"] == sid
    assert len([e for e in global_events(client, sid) if e.type is EventType.JOB_SUBMITTED]) == 1
    assert len([e for e in global_events(client, sid) if e.type is EventType.JOB_SUCCEEDED]) == 0  # no detail there
    assert len([e for _, e in client.events(status.job_id) if e.type is EventType.JOB_SUCCEEDED]) == 1


def test_a_rejected_submission_gets_the_field_named_error_an_event_and_nothing_else(
    client: JobClient, intake: subprocess.Popen[bytes]
) -> None:
    sid = f"bad-{uuid.uuid4().hex}"
    submit(client, {**spec("p", "given", True, 3), "metric": "nope"}, sid)
    status = outcome(client, sid)
    assert status.state is SubmissionState.REJECTED
    assert status.field == "metric" and "'nope' is not registered" in (status.message or "")
    rejected = global_events(client, sid)
    assert [e.type for e in rejected] == [EventType.JOB_REJECTED]
    assert rejected[0].error is not None and rejected[0].error.message.startswith("metric: ")
    assert not client.redis.keys(f"btq:job:{status.job_id}:*")


GARBAGE: list[tuple[str, dict[str, str | bytes], str | None]] = [
    ("not JSON", {"job": b"\xff\xfe not json"}, ""),
    ("wrong JSON shape", {"job": "[1, 2, 3]"}, ""),
    ("oversized", {"job": "x" * (10 * 1024 * 1024)}, "job"),
    (
        "unknown schema_version",
        {"job": json.dumps({**spec("p", "given", True, 3), "schema_version": 99})},
        "schema_version",
    ),
    ("no job field", {"payload": "{}"}, "payload"),
]


def test_garbage_on_the_intake_is_rejected_and_the_consumer_serves_the_next_submission(
    client: JobClient, intake: subprocess.Popen[bytes]
) -> None:
    jobs_before = client.redis.zcard(keys.JOBS_INDEX)
    queued_before = sum(
        client.redis.llen(q) for q in client.redis.keys(f"{client.settings.queue}*") if client.redis.type(q) == b"list"
    )
    rejected = {}
    for name, fields, _ in GARBAGE:
        sid = f"garbage-{uuid.uuid4().hex}"
        client.redis.xadd(keys.INTAKE, {**fields, "submission_id": sid})  # type: ignore[arg-type]
        rejected[name] = sid
    client.redis.xadd(keys.INTAKE, {"job": "{}", "submission_id": "not a valid id!"})  # logged and dropped
    good = f"good-{uuid.uuid4().hex}"
    submit(client, spec("p", "given", True, 3), good)
    assert outcome(client, good).state is SubmissionState.ACCEPTED
    for name, _, field in GARBAGE:
        status = outcome(client, rejected[name])
        assert status.state is SubmissionState.REJECTED, name
        if field:
            assert status.field == field, (name, status)
        assert not client.redis.exists(keys.job_key(status.job_id, "spec")), name
    assert intake.poll() is None
    assert client.redis.zcard(keys.JOBS_INDEX) == jobs_before + 1
    client.wait(job_id_for(good), timeout_s=120)
    queued_after = sum(
        client.redis.llen(q) for q in client.redis.keys(f"{client.settings.queue}*") if client.redis.type(q) == b"list"
    )
    assert queued_after <= queued_before


def test_a_submission_pending_on_a_dead_consumer_is_claimed_and_handled(
    client: JobClient, intake: subprocess.Popen[bytes]
) -> None:
    # Given an entry delivered to a consumer that died before acknowledging it
    client.redis.xgroup_createconsumer(keys.INTAKE, keys.INTAKE_GROUP, "ghost")
    sid = f"orphan-{uuid.uuid4().hex}"
    # The live intake blocks on new entries too: a transaction makes the ghost read it first.
    pipe = client.redis.pipeline(transaction=True)
    pipe.xadd(keys.INTAKE, {"job": json.dumps(spec("p", "given", True, 3)), "submission_id": sid})
    pipe.xreadgroup(keys.INTAKE_GROUP, "ghost", {keys.INTAKE: ">"}, count=1)
    _, delivered = pipe.execute()
    assert delivered[0][1][0][1][b"submission_id"] == sid.encode()
    assert submission_status(client.redis, sid) is None
    # Then the live intake takes it over once idle and accepts it
    assert outcome(client, sid, timeout_s=30).state is SubmissionState.ACCEPTED
    client.wait(job_id_for(sid), timeout_s=120)


def _pending(client: JobClient) -> int:
    info = client.redis.xpending(keys.INTAKE, keys.INTAKE_GROUP)
    return int(info["pending"])


def test_handled_entries_are_deleted_from_the_intake_stream(client: JobClient, intake: subprocess.Popen[bytes]) -> None:
    big = "x" * 200_000  # the entry's bulk: a job this size would otherwise stay in Redis forever
    accepted, rejected = f"trim-{uuid.uuid4().hex}", f"trim-bad-{uuid.uuid4().hex}"
    entry_ids = [
        client.redis.xadd(keys.INTAKE, {"job": json.dumps(spec("p", "given", True, 3)), "submission_id": accepted}),
        client.redis.xadd(keys.INTAKE, {"job": '{"padding": "' + big + '"}', "submission_id": rejected}),
    ]
    assert outcome(client, accepted).state is SubmissionState.ACCEPTED
    assert outcome(client, rejected).state is SubmissionState.REJECTED

    def gone() -> bool:
        return all(not client.redis.xrange(keys.INTAKE, min=eid, max=eid) for eid in entry_ids)

    wait_until(gone, 30, "handled intake entries deleted")
    assert _pending(client) == 0
    client.wait(job_id_for(accepted), timeout_s=120)


def test_entries_older_than_the_age_bound_are_trimmed_even_if_never_handled() -> None:
    url = redis_url(12)
    store = redis.Redis.from_url(url)
    store.flushdb()
    # No live worker here: every entry is left pending for a retry, so only the age bound removes one.
    client = JobClient(ProducerSettings(redis_url=url, queue="btq-trim", intake_max_age_s=3600))
    consumer = Intake(client, consumer="trimmer")
    consumer.ensure_group()
    job = json.dumps(spec("p", "given", True, 3))
    store.xadd(keys.INTAKE, {"job": job, "submission_id": "ancient"}, id="1000-0")
    store.xadd(keys.INTAKE, {"job": job, "submission_id": "recent"})
    consumer.serve_once()
    left = [fields[b"submission_id"] for _, fields in store.xrange(keys.INTAKE)]
    assert left == [b"recent"]
    store.close()
