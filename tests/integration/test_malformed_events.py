"""Every event reader skips a malformed stream entry with one warning naming the stream and entry, and goes on.

The entries are written before the job is submitted under a known id, so every reader meets them first,
in its replay; each reader must still reach the job's terminal event.
"""

import json
import logging
import subprocess
import uuid

import pytest

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType
from btq.worker.state.events import EventEmitter
from btq.worker.steps.redaction import MASK, Redactor
from tests.cli_runner import run_btq
from tests.conftest import ROOT, Fleet
from tests.integration.test_parity import spec
from tests.malformed import MALFORMED_ENTRIES, add_malformed

pytestmark = pytest.mark.integration


def job_behind_garbage(client: JobClient) -> tuple[str, list[str]]:
    """Submit a short job whose event stream starts with one malformed entry of each kind."""
    job_id = uuid.uuid4().hex
    bad = add_malformed(client.redis, keys.job_key(job_id, "events"))
    client.submit(spec("p", "given", True, 5), job_id=job_id)
    return job_id, bad


def warnings_about(caplog: pytest.LogCaptureFixture, entry_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and entry_id in r.getMessage()]


def test_wait_follow_and_events_skip_each_malformed_entry_with_one_warning(
    client: JobClient, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, bad = job_behind_garbage(client)
    stream = keys.job_key(job_id, "events")
    with caplog.at_level(logging.WARNING, logger="btq.events"):
        result = client.wait(job_id, timeout_s=120)
    assert result.state.value == "succeeded"
    for entry_id in bad:
        (warning,) = warnings_about(caplog, entry_id)
        assert stream in warning
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="btq.events"):
        followed = list(client.follow(job_id, timeout_s=30))
        replayed = client.events(job_id)
    assert followed[-1].type is EventType.JOB_SUCCEEDED
    assert [e for _, e in replayed] == followed
    assert {eid for eid, _ in replayed}.isdisjoint(bad)
    for entry_id in bad:
        assert len(warnings_about(caplog, entry_id)) == 2  # one per reader: follow, then events


def btq_watch(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BTQ_REDIS_URL": fleet.url, "BTQ_QUEUE": fleet.queue, "PYTHONPATH": str(ROOT)}
    return run_btq("watch", *args, "--timeout", "120", env=env)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_btq_watch_skips_malformed_entries_and_ends_with_the_job(
    fleet: Fleet, client: JobClient, as_json: bool
) -> None:
    job_id, bad = job_behind_garbage(client)
    done = btq_watch(fleet, job_id, *(["--json"] if as_json else []))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for entry_id in bad:
        assert done.stderr.count(entry_id) == 1, done.stderr
    assert f"of stream {keys.job_key(job_id, 'events')}" in done.stderr
    if as_json:
        events = [json.loads(line) for line in done.stdout.splitlines()]
        assert events[0]["type"] == "job.submitted" and events[-1]["type"] == "job.succeeded"
    else:
        assert "job.succeeded" in done.stdout


def test_the_worker_writes_only_entries_every_reader_can_decode(client: JobClient) -> None:
    job_id, bad = job_behind_garbage(client)
    client.wait(job_id, timeout_s=120)
    entries = client.redis.xrange(keys.job_key(job_id, "events"))
    ours = [fields for eid, fields in entries if eid.decode() not in bad]
    assert len(ours) >= 5 and len(entries) == len(ours) + len(MALFORMED_ENTRIES)
    assert all(set(fields) == {b"event"} and json.loads(fields[b"event"])["job_id"] == job_id for fields in ours)


def test_an_event_whose_masked_json_would_break_is_still_written_valid(
    client: JobClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A secret that spells a field name: masking the JSON text would rename the field and break the event.
    emitter = EventEmitter(client.redis, 100, 1000, Redactor(["steps_total", "sk-live-secret"]))
    job_id = uuid.uuid4().hex
    error = ErrorRecord(type="AuthError", message="bad key sk-live-secret for steps_total")
    with caplog.at_level(logging.WARNING, logger="btq.events"):
        emitter.emit(EventType.STEP_FAILED, job_id, 2, step_index=1, error=error)
        (entry,) = client.events(job_id)
    event = entry[1]
    assert event.steps_total == 2 and event.error is not None
    assert event.error.message == f"bad key {MASK} for {MASK}"
    assert not caplog.records
