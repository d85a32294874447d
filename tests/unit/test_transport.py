"""Queue-entry checks of the poison-proof transport and the broker choice, without a broker."""

import json
from typing import Any

import pytest

from btq.schemas.broker import is_amqp, queue_arguments
from btq.worker.celery.broker import broker_conf
from btq.worker.celery.transport import broker_url, envelope_error
from btq.worker.settings import WorkerSettings


def envelope(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "body": "W10=",
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"task": "btq.step", "id": "1"},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": "tag",
            "delivery_info": {"exchange": "", "routing_key": "btq"},
        },
    }
    data.update(changes)
    return data


def test_a_kombu_envelope_passes() -> None:
    assert envelope_error(envelope()) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 2], "a JSON array"),
        (None, "a JSON null"),
        ("x", "a JSON string"),
        (3, "a JSON number"),
        ({"hello": "world"}, "no 'properties' object"),
        (envelope(headers=[1]), "'headers' is not an object"),
        (envelope(**{"content-type": 5}), "'content-type' is not a string"),
        (envelope(body=7), "'body' is not a string"),
        (envelope(body="%% not base64"), "not valid base64"),
        (envelope(properties={"delivery_tag": 1}), "delivery_tag"),
        (envelope(properties={"delivery_tag": "t", "delivery_info": {}}), "delivery_info"),
        (
            envelope(
                properties={
                    "delivery_tag": "t",
                    "body_encoding": "rot13",
                    "delivery_info": {"exchange": "", "routing_key": "q"},
                }
            ),
            "unknown body_encoding",
        ),
    ],
)
def test_wrong_shapes_are_named(payload: Any, reason: str) -> None:
    error = envelope_error(json.loads(json.dumps(payload)))
    assert error is not None and reason in error


def test_redis_urls_use_the_poison_proof_transport_and_amqp_stays() -> None:
    assert broker_url("redis://127.0.0.1:6379/0") == "btq-redis://127.0.0.1:6379/0"
    assert broker_url("amqp://guest:guest@h:5672/v") == "amqp://guest:guest@h:5672/v"
    assert is_amqp("amqp://h/v") and is_amqp("pyamqp://h") and not is_amqp("redis://h")


def test_broker_defaults_to_redis_and_rabbitmq_gets_a_consumer_timeout() -> None:
    on_redis = broker_conf(WorkerSettings(redis_url="redis://r:6379/2"))
    assert on_redis["broker_url"] == "btq-redis://r:6379/2"
    assert on_redis["broker_transport_options"]["btq_dead_letter_url"] == "redis://r:6379/2"
    on_amqp = broker_conf(WorkerSettings(redis_url="redis://r:6379/2", broker_url="amqp://h/v", queue="q"))
    assert on_amqp["broker_url"] == "amqp://h/v"


def test_every_queue_producers_and_workers_declare_on_rabbitmq_has_the_consumer_timeout() -> None:
    from btq.producer.client import celery_client
    from btq.producer.settings import ProducerSettings
    from btq.worker.celery.app import create_app

    worker = create_app(WorkerSettings(redis_url="redis://r:6379/2", broker_url="amqp://h/v", queue="q"))
    producer = celery_client(ProducerSettings(redis_url="redis://r:6379/2", broker_url="amqp://h/v", queue="q"))
    expected = queue_arguments(24 * 3600)
    # Configured (job and evaluation queue) and made on first send (a profile queue): declared alike.
    for queues, name in [(worker.amqp.queues, n) for n in ("q", "q.eval", "q.profile.x")] + [
        (producer.amqp.queues, n) for n in ("q", "q.profile.x")
    ]:
        queue = queues[name]
        assert queue.queue_arguments == expected, name
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (name, "direct", name)
    on_redis = create_app(WorkerSettings(redis_url="redis://r:6379/2", queue="q"))
    assert on_redis.amqp.queues["q.profile.x"].queue_arguments is None
