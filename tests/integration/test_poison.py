"""Poison on the queue: no message kills the worker that reads it; each goes to the dead-letter list."""

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from btq.schemas import keys
from tests.conftest import Fleet, running_fleet, wait_until
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

RANDOM_MESSAGES = 5


@pytest.fixture(scope="module")
def lone_worker() -> Iterator[Fleet]:
    """One worker process, so every message on the queue is read by it."""
    with running_fleet(7, "btq-poison", ["pa"]) as fleet:
        yield fleet


def real_envelope(fleet: Fleet) -> dict[str, Any]:
    """A genuine kombu envelope of a task message, captured from a queue nobody reads."""
    sender = Celery("probe", broker=fleet.url, set_as_current=False)
    sender.conf.update(task_serializer="json")
    sender.send_task(keys.TASK_STEP, args=("nojob", 0), queue="btq-poison-probe")
    client = fleet.client().redis
    raw = client.rpop("btq-poison-probe")
    assert raw is not None
    envelope: dict[str, Any] = json.loads(raw)
    envelope["properties"]["delivery_info"]["routing_key"] = fleet.queue
    return envelope


def mutated(envelope: dict[str, Any], body: bytes | None = None, **changes: Any) -> bytes:
    """A copy of `envelope` with its body replaced (base64, as kombu sends it) and fields changed."""
    data = json.loads(json.dumps(envelope))
    if body is not None:
        data["body"] = base64.b64encode(body).decode()
    for key, value in changes.items():
        if key == "body_":
            data["body"] = value
            continue
        target, _, name = key.partition("__")
        if name:
            data[target][name] = value
        else:
            data[key] = value
    return json.dumps(data).encode()


def poison(envelope: dict[str, Any]) -> dict[str, bytes]:
    rng = random.Random(8)
    messages = {
        "non-JSON bytes": b"\x00\x01 this is not JSON {",
        "non-UTF-8 bytes": b"\xff\xfe\xfa\x80 caf\xe9",
        "JSON array": b"[1, 2, 3]",
        "JSON null": b"null",
        "JSON string": b'"hello"',
        "JSON object, not a message": b'{"hello": "world"}',
        "properties not an object": b'{"properties": [1], "body": ""}',
        "delivery tag an object": mutated(envelope, properties__delivery_tag={"x": 1}),
        "no delivery info": mutated(envelope, properties__delivery_info=None),
        "body not base64": mutated(envelope, body=None, body_="%%% not base64 %%%"),
        "headers a list": mutated(envelope, headers=[1, 2]),
        "task header without an id": mutated(envelope, headers={"task": keys.TASK_STEP}, body=b"null"),
        "unknown task without an id": mutated(envelope, headers={"task": "os.system"}),
        "body of the wrong shape": mutated(envelope, body=b'{"not": "args"}'),
    }
    for i in range(RANDOM_MESSAGES):
        messages[f"random bytes {i}"] = rng.randbytes(rng.randint(1, 512))
    return messages


def test_every_poison_message_is_dead_lettered_and_the_worker_serves_the_next_job(lone_worker: Fleet) -> None:
    client = lone_worker.client()
    client.redis.delete(keys.DEAD_LETTERS)
    messages = poison(real_envelope(lone_worker))
    for raw in messages.values():
        client.redis.lpush(lone_worker.queue, raw)
    # Jobs go to the queue of their registry profile: read the poison first, then serve a job.
    wait_until(lambda: client.redis.llen(lone_worker.queue) == 0, 60, "every poison message read")

    job_id = client.submit(spec("p", "given", True, 5))
    result = client.wait(job_id, timeout_s=120)

    assert result.state.value == "succeeded"
    assert lone_worker.procs["pa"].poll() is None, "the worker that read every poison message is alive"
    log = lone_worker.logs["pa"].read_text()
    assert "Unrecoverable error" not in log
    # Entries that are not kombu messages are kept byte for byte; the others keep at least their body.
    entries = [json.loads(e) for e in client.redis.lrange(keys.DEAD_LETTERS, 0, -1)]
    kept = {base64.b64decode(e["raw_b64"]) for e in entries}
    envelope_level = [
        raw for name, raw in messages.items() if not name.startswith(("task header", "unknown task", "body of"))
    ]
    assert set(envelope_level) <= kept
    assert len(entries) >= len(messages) - 1, [e["reason"] for e in entries]
    assert all(e["reason"] and e["queue"] == lone_worker.queue and e["at"] > 0 for e in entries)
    assert log.count("dead-lettered an unreadable message") == len(entries), "each message is logged once"
    assert client.redis.llen(lone_worker.queue) == 0


def test_dead_letter_list_is_bounded() -> None:
    # Its own database: the module's lone worker (database 7) is still running.
    with running_fleet(14, "btq-poison-cap", ["pb"], {"BTQ_DEAD_LETTER_MAXLEN": "3"}) as fleet:
        client = fleet.client()
        for i in range(6):
            client.redis.lpush(fleet.queue, f"garbage {i}".encode())
        wait_until(lambda: client.redis.llen(fleet.queue) == 0, 30, "the queue drained")
        wait_until(lambda: fleet.logs["pb"].read_text().count("dead-lettered") == 6, 30, "six dead letters logged")
        # Each line is logged after its copy is stored, so the list is final here.
        entries = [json.loads(e) for e in client.redis.lrange(keys.DEAD_LETTERS, 0, -1)]
        assert [base64.b64decode(e["raw_b64"]) for e in entries] == [b"garbage 5", b"garbage 4", b"garbage 3"]
        assert fleet.procs["pb"].poll() is None


def test_garbage_on_broadcast_channels_kills_no_worker(lone_worker: Fleet) -> None:
    client = lone_worker.client()
    db = lone_worker.url.rsplit("/", 1)[1]
    client.redis.delete(keys.DEAD_LETTERS)
    # The worker's remote-control (pidbox) and gossip subscriptions: Redis pub/sub patterns on this database.
    receivers = 0
    for channel in (f"/{db}.celery.pidbox", f"/{db}.celeryev/worker.poison"):
        for raw in (b"[1, 2]", b"null", b'{"hello": "world"}', b"\xff not json"):
            receivers += int(client.redis.publish(channel, raw))
    assert receivers > 0, "the worker listens on broadcast channels"

    result = client.wait(client.submit(spec("p", "given", True, 6)), timeout_s=120)

    assert result.state.value == "succeeded"
    assert lone_worker.procs["pa"].poll() is None
    reasons = [json.loads(e)["reason"] for e in client.redis.lrange(keys.DEAD_LETTERS, 0, -1)]
    assert any("not a message object" in r for r in reasons), reasons


def test_yaml_and_unregistered_tasks_are_still_refused_as_before(lone_worker: Fleet) -> None:
    client = lone_worker.client()
    client.redis.delete(keys.DEAD_LETTERS)
    sender = Celery("attacker", broker=lone_worker.url, set_as_current=False)
    sender.conf.update(task_serializer="yaml", accept_content=["yaml", "json"])
    forged = "forged-yaml"
    client.redis.set(keys.job_key(forged, "spec"), json.dumps(spec("p", "given", True, 1)))
    sender.send_task(keys.TASK_STEP, args=(forged, 0), queue=lone_worker.queue, serializer="yaml")
    sender.send_task("os.system", args=("true",), queue=lone_worker.queue, serializer="json")

    result = client.wait(client.submit(spec("p", "given", True, 8)), timeout_s=120)

    assert result.state.value == "succeeded"
    assert client.redis.get(keys.step_key(forged, 0)) is None, "the YAML message ran nothing"
    log = lone_worker.logs["pa"].read_text()
    assert "Refusing to deserialize untrusted content of type yaml" in log
    assert "Received unregistered task of type 'os.system'" in log
    assert lone_worker.procs["pa"].poll() is None
