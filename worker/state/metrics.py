"""The Redis side of the worker's counters: a batch goes to the fleet's hash and the worker's own, at once."""

from collections.abc import Callable

import redis

from btq.schemas import keys
from btq.schemas.metrics import WorkerCount
from btq.worker.core.tally import Sink


def redis_sink(client: redis.Redis, node: Callable[[], str | None]) -> Sink:
    """Return a tally sink adding batches to `keys.METRICS` and to the worker `node()`'s own hash."""

    def add(batch: dict[WorkerCount, float]) -> None:
        pipe = client.pipeline(transaction=False)
        name = node()
        for count, amount in batch.items():
            pipe.hincrbyfloat(keys.METRICS, count.value, amount)
            if name:
                pipe.hincrbyfloat(keys.worker_key(name, "metrics"), count.value, amount)
        if name:
            pipe.expire(keys.worker_key(name, "metrics"), keys.METRICS_WORKER_TTL_S)
        pipe.execute()

    return add
