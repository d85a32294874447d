"""Live workers and their pool sizes: a heartbeat per worker, read to size evaluation shards.

Each worker's main process writes `<pool size>:<expires at>` into one hash field every
`heartbeat_interval_s`; readers count only unexpired fields and drop the others, so a worker that died
stops counting within three intervals.
"""

import contextlib
import logging
import threading
import time

import redis

from btq.schemas import keys

logger = logging.getLogger(__name__)


def live_slots(client: redis.Redis) -> int:
    """Return the number of worker processes in live workers (0 when none said it is alive)."""
    now = time.time()
    total = 0
    stale = []
    for name, raw in client.hgetall(keys.FLEET_SLOTS).items():
        size, _, expires = (raw.decode() if isinstance(raw, bytes) else raw).partition(":")
        if float(expires or 0) > now:
            total += int(size)
        else:
            stale.append(name)
    if stale:
        client.hdel(keys.FLEET_SLOTS, *stale)
    return total


class Heartbeat:
    """Says every `interval_s` that worker `name` is alive with `slots` pool processes."""

    def __init__(self, url: str, name: str, slots: int, interval_s: float) -> None:
        self.url = url
        self.name = name
        self.slots = slots
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="btq-heartbeat", daemon=True)

    def start(self) -> None:
        """Start beating in a daemon thread."""
        self._thread.start()

    def _run(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=max(1.0, self.interval_s))
        while True:
            try:
                expires = time.time() + 3 * self.interval_s
                client.hset(keys.FLEET_SLOTS, self.name, f"{self.slots}:{expires}")
            except redis.RedisError as exc:  # Redis away: try again next beat, say so once a beat
                logger.warning("heartbeat of %s failed: %r", self.name, exc)
            if self._stop.wait(self.interval_s):
                break
        with contextlib.suppress(redis.RedisError):  # the field expires by itself anyway
            client.hdel(keys.FLEET_SLOTS, self.name)
        client.close()

    def stop(self) -> None:
        """Stop beating and remove this worker from the fleet."""
        self._stop.set()
        self._thread.join(timeout=5)
