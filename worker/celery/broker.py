"""The worker's broker configuration: Redis through our poison-proof transport, or RabbitMQ.

The store, events and leases always live in `settings.redis_url`; only task messages go through
`settings.broker_url` (the Redis URL when unset).
"""

import logging
from typing import Any

from btq.schemas.broker import is_amqp
from btq.worker.celery.transport import broker_url as redis_transport_url
from btq.worker.settings import WorkerSettings

logger = logging.getLogger("btq.broker")


def broker_conf(settings: WorkerSettings) -> dict[str, Any]:
    """Return the Celery settings that choose and tune the broker."""
    url = settings.broker_url or settings.redis_url
    if is_amqp(url):
        if settings.broker_consumer_timeout_s <= settings.step_time_limit_s:
            logger.warning(
                "broker_consumer_timeout_s (%s) does not exceed step_time_limit_s (%s): RabbitMQ may close the "
                "channel of a long step, which is then delivered again",
                settings.broker_consumer_timeout_s,
                settings.step_time_limit_s,
            )
        # RabbitMQ redelivers a dead worker's message when its connection closes: no visibility timeout.
        return {"broker_url": url}
    return {
        "broker_url": redis_transport_url(url),
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu sweeps every interval x throttle seconds (100 s by default); scan on every sweep
            # so a dead worker's step comes back visibility_timeout_s + unacked_restore_interval_s later.
            "unacked_restore_interval": settings.unacked_restore_interval_s,
            "unacked_restore_throttle": 1,
            "btq_dead_letter_url": settings.redis_url,
            "btq_dead_letter_maxlen": settings.dead_letter_maxlen,
        },
    }
