"""Task queues as every party declares them, in Celery's and kombu's terms (see `btq.schemas.broker`).

Apart from `broker` so that what only needs to know which URL is RabbitMQ (settings, the core through
them) does not import Celery.
"""

from typing import Any

from celery.app.amqp import AMQP, Queues
from kombu.entity import Exchange, Queue
from kombu.transport.redis import Channel as RedisChannel

from btq.schemas.broker import is_amqp, queue_arguments


def task_queue(name: str, broker_url: str, consumer_timeout_s: float) -> Queue:
    """Return the queue `name` as every party declares it.

    A direct exchange and routing key named after the queue (what Celery makes for a queue it was not
    configured with), and on RabbitMQ the `queue_arguments` above: the job queue, its evaluation queue
    and every registry profile's queues alike, so a long step or shard on any of them keeps its channel.
    """
    arguments = queue_arguments(consumer_timeout_s) if is_amqp(broker_url) else None
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments=arguments)  # type: ignore[no-untyped-call]


HELD_OUT_PRIORITY = 9
"""Priority of held-out scoring requests (`btq evaluate`) on a Redis broker: after every step waiting.

kombu's Redis transport keeps a queue's messages of priority p > 0 in the list `<queue>` + `PRIORITY_SEP` +
p and pops the lists of lower numbers first (0, the default, before 9). A held-out scoring of a finished
job then never delays the next step of a running one: in a real-model comparison, the last step of
`p -> w -> p` waited 136 s behind the scorings of the shorter strategies that had finished.
RabbitMQ queues are declared without `x-max-priority`, so there every message keeps arrival order.
"""

PRIORITY_SEP: str = RedisChannel.sep
"""kombu's separator between a Redis queue's name and a priority."""


def held_out_priority(broker_url: str) -> int | None:
    """Return the priority a held-out scoring request is sent with on `broker_url` (None: the default)."""
    return None if is_amqp(broker_url) else HELD_OUT_PRIORITY


def priority_lists(queue: str) -> list[str]:
    """Return the Redis lists that hold `queue`'s waiting messages: the queue's own, then the held-out one."""
    return [queue, f"{queue}{PRIORITY_SEP}{HELD_OUT_PRIORITY}"]


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
