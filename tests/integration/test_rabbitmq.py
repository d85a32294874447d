"""RabbitMQ as the broker: task messages on amqp://, store and events on Redis; same results, garbage survived.

The whole suite runs on RabbitMQ with BTQ_TEST_BROKER=amqp; this module keeps a representative subset
in the default run.
"""

import random
import subprocess
from collections.abc import Iterator

import pytest
from kombu import Connection

from btq.schemas import keys
from tests.conftest import Fleet, running_fleet, wait_until
from tests.integration.test_parity import CASES, assert_same, spec

pytestmark = pytest.mark.integration

SUBSET = [("p -> w -> p", "given", True, 3), ("w -> p", "ratio", False, 17), ("p -> p", "none", True, 3)]


@pytest.fixture(scope="module")
def amqp_fleet(amqp_url: str) -> Iterator[Fleet]:
    with running_fleet(8, "btq-amqp", ["ra", "rb"], broker_url=amqp_url) as fleet:
        yield fleet


def test_parity_subset_on_rabbitmq_equals_in_process(amqp_fleet: Fleet) -> None:
    assert set(SUBSET) <= set(CASES)
    client = amqp_fleet.client()
    ids = {case: client.submit(spec(*case)) for case in SUBSET}
    for case, job_id in ids.items():
        assert_same(client.wait(job_id, timeout_s=300), spec(*case))
    # Messages went through RabbitMQ: the Redis database holds the jobs but never had the task queue.
    assert not client.redis.exists(amqp_fleet.queue)
    assert client.redis.exists(keys.job_key(ids[SUBSET[0]], "result"))


def test_every_task_queue_is_declared_with_a_consumer_timeout(amqp_fleet: Fleet) -> None:
    vhost = amqp_fleet.broker_url.rsplit("/", 1)[1] if amqp_fleet.broker_url else ""
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "arguments"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    ours = [line for line in listing.splitlines() if line.startswith(amqp_fleet.queue)]
    names = {line.split("\t", 1)[0] for line in ours}
    # The job queue, its evaluation queue, and the workers' registry profile queue with its evaluation queue.
    assert {amqp_fleet.queue, keys.eval_queue(amqp_fleet.queue)} <= names
    assert any(".profile." in name and not name.endswith(".eval") for name in names), names
    assert any(".profile." in name and name.endswith(".eval") for name in names), names
    for line in ours:
        assert "x-consumer-timeout" in line and "86400000" in line, line


def test_garbage_on_rabbitmq_kills_no_worker(amqp_fleet: Fleet) -> None:
    client = amqp_fleet.client()
    client.redis.delete(keys.DEAD_LETTERS)
    rng = random.Random(6)
    bodies: list[tuple[bytes, str | None, dict[str, object]]] = [
        (b"\x00 not json {", "application/json", {}),
        (b"\xff\xfe\xfa\x80", "application/json", {}),
        (b"[1, 2, 3]", "application/json", {}),
        (b"null", "application/json", {}),
        (b'{"hello": "world"}', "application/json", {}),
        (b"null", "application/json", {"task": keys.TASK_STEP}),
        (b"[1]", "application/json", {"task": keys.TASK_STEP, "id": "x"}),
        (rng.randbytes(200), None, {}),
        (rng.randbytes(50), "application/octet-stream", {"task": keys.TASK_FINALIZE}),
    ]
    with Connection(amqp_fleet.broker_url) as conn:
        producer = conn.Producer()
        for body, content_type, headers in bodies:
            producer.publish(
                body,
                routing_key=amqp_fleet.queue,
                exchange="",
                content_type=content_type,
                content_encoding="binary",
                headers=headers,
                serializer=None,
            )

    job = spec("p", "given", True, 7)
    result = client.wait(client.submit(job), timeout_s=120)

    assert result.state.value == "succeeded"
    # Every message is dead-lettered but the last: a registered task in a refused content type, which
    # Celery's own refusal path (as for pickle) logs and drops.
    wait_until(lambda: client.redis.llen(keys.DEAD_LETTERS) >= len(bodies) - 1, 30, "bad messages handled")
    assert all(proc.poll() is None for proc in amqp_fleet.procs.values()), "both workers are alive"
    logs = "\n".join(log.read_text(errors="replace") for log in amqp_fleet.logs.values())
    assert "Unrecoverable error" not in logs
    assert client.redis.llen(keys.DEAD_LETTERS) == len(bodies) - 1
    assert logs.count("dead-lettered an unreadable message") == len(bodies) - 1, "each is logged once"
    assert "Refusing to deserialize untrusted content of type application/octet-stream" in logs
