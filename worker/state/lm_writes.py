"""The LM cache's writes, sent by a background thread in pipelines, off the path of the call that made them.

A call that missed the cache returns as soon as its value is queued: the writer sends every write queued
meanwhile (value, index entry, release of the single-flight claim) in one pipeline, so writes cost no
round trip of their own on the caller's path and share one under load. A caching context waits for its
writes when it ends (`flush`), before the step's record or the shard's result is stored, so whatever a
step computed is in the shared cache once anyone can see the step finished. A waiter for one of these
calls reads the value as soon as its pipeline lands; if the process dies first, its claims name a dead
holder and are taken over at once.

The in-process tier of a context learns a value only once Redis confirmed it: it never holds a value
the shared cache does not.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Write:
    """One call's write: its value's JSON (None: not cacheable, only the claim is released)."""

    key: str
    text: str | None
    on_stored: Callable[[], None] | None = None
    """Called once the value is in Redis (the context's tier keeps it then)."""


Send = Callable[["redis.client.Pipeline", Write], None]
"""Queue one write's commands in a pipeline."""


class WriteBehind:
    """A queue of writes and the thread of this process that pipelines them to Redis."""

    def __init__(self, client: redis.Redis, send: Send, after_batch: Callable[[int], None]) -> None:
        self.redis = client
        self.send = send
        self.after_batch = after_batch
        self._cond = threading.Condition()
        self._pending: list[Write] = []
        self._sending = 0
        self._pid = -1

    def put(self, write: Write) -> None:
        """Queue `write`; the writer thread sends it with whatever else is queued."""
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
                self._pid, self._pending, self._sending = os.getpid(), [], 0
                threading.Thread(target=self._run, name="btq-lm-cache-writes", daemon=True).start()
            self._pending.append(write)
            self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) until every write queued so far is sent; return False if some were not."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._pending or self._sending) and self._pid == os.getpid():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                self._sending = len(batch)
            stored = self._send(batch)
            with self._cond:
                self._sending = 0
                self._cond.notify_all()
            if stored:
                self.after_batch(stored)

    def _send(self, batch: list[Write]) -> int:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for write in batch:
                self.send(pipe, write)
            pipe.execute()
        except redis.RedisError as exc:  # a cache that cannot be written is a cache that misses
            logger.warning("LM cache: %d writes lost: %r", len(batch), exc)
            return 0
        for write in batch:
            if write.on_stored is not None and write.text is not None:
                write.on_stored()
        return sum(1 for write in batch if write.text is not None)
