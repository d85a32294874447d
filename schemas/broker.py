"""The message broker's side of the wire contract: which URLs are RabbitMQ and how its queues are declared.

Producers and workers (and services in other languages that enqueue) must declare a RabbitMQ queue
with the same arguments, or the broker refuses the second declaration.
"""

from typing import Any
from urllib.parse import urlsplit

from celery.app.amqp import AMQP, Queues
from kombu.entity import Exchange, Queue

AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})

DEFAULT_CONSUMER_TIMEOUT_S = 24 * 3600.0
"""How long RabbitMQ lets a delivered step stay unacknowledged (it must exceed the longest step)."""


def is_amqp(url: str) -> bool:
    """True when `url` names a RabbitMQ (AMQP 0-9-1) broker."""
    return urlsplit(url).scheme in AMQP_SCHEMES


def queue_arguments(consumer_timeout_s: float) -> dict[str, int]:
    """Return the RabbitMQ arguments our task queues are declared with.

    `x-consumer-timeout` (RabbitMQ 3.12 and later; older servers ignore it and apply their global
    `consumer_timeout`, 30 minutes by default) keeps the broker from closing the channel of a worker
    whose step runs longer than the server's default.
    """
    return {"x-consumer-timeout": int(consumer_timeout_s * 1000)}


def task_queue(name: str, broker_url: str, consumer_timeout_s: float) -> Queue:
    """Return the queue `name` as every party declares it.

    A direct exchange and routing key named after the queue (what Celery makes for a queue it was not
    configured with), and on RabbitMQ the `queue_arguments` above: the job queue, its evaluation queue
    and every registry profile's queues alike, so a long step or shard on any of them keeps its channel.
    """
    arguments = queue_arguments(consumer_timeout_s) if is_amqp(broker_url) else None
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments=arguments)  # type: ignore[no-untyped-call]


def amqp_class(broker_url: str, consumer_timeout_s: float) -> type[AMQP]:
    """Return Celery's AMQP class whose queues made on first use are declared by `task_queue`.

    Steps and shards are sent to queues a process was not configured with (a job's profile queue and
    its evaluation queue): Celery declares those on first publish, without arguments, which RabbitMQ
    would refuse once a worker declared them with `x-consumer-timeout` (and vice versa).
    """

    class _Queues(Queues):  # type: ignore[misc]
        def new_missing(self, name: str) -> Queue:
            return task_queue(name, broker_url, consumer_timeout_s)

    class _AMQP(AMQP):  # type: ignore[misc]
        queues_cls: Any = _Queues

    return _AMQP
