"""The dead-letter list: queue messages no worker can read, kept with their raw bytes for inspection.

A message that cannot be decoded or has the wrong shape would otherwise kill the consumer that reads
it (celery#4308, kombu#2421). It is moved here instead, logged once, and the worker goes on.
"""

import base64
import json
import logging
import time

import redis

from btq.schemas import keys

logger = logging.getLogger("btq.dead_letter")

RAW_PREVIEW_BYTES = 64
"""How much of a dead message the log line shows (the whole message is in the list)."""


class DeadLetterBox:
    """Appends unreadable messages to a capped Redis list; never raises (a failure here is only logged)."""

    def __init__(self, client: redis.Redis, maxlen: int) -> None:
        self.redis = client
        self.maxlen = maxlen

    def put(self, raw: bytes | str, reason: str, queue: str) -> None:
        """Keep `raw` with `reason`, trim the list to `maxlen`, and log the message once."""
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        entry = {
            "at": time.time(),
            "queue": queue,
            "reason": reason,
            "raw_b64": base64.b64encode(data).decode("ascii"),
        }
        try:
            pipe = self.redis.pipeline()
            pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry))
            pipe.ltrim(keys.DEAD_LETTERS, 0, self.maxlen - 1)
            pipe.execute()
        except redis.RedisError as exc:
            # Keeping a copy is best effort: the message is already off the queue and must not come back.
            logger.error("could not store the dead-lettered message in Redis: %s", exc)
        # After the copy is stored: whoever reads this line finds the message in the list.
        logger.error(
            "dead-lettered an unreadable message on queue %r (%d bytes, %s): %r",
            queue,
            len(data),
            reason,
            data[:RAW_PREVIEW_BYTES],
        )
