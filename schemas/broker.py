"""The message broker's side of the wire contract: which URLs are RabbitMQ and how its queues are declared.

Producers and workers (and services in other languages that enqueue) must declare a RabbitMQ queue
with the same arguments, or the broker refuses the second declaration.
"""

from urllib.parse import urlsplit

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
