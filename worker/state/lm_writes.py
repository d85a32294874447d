"""The LM cache's writes, sent by a background thread in batches, off the path of the call that made them.

A call that missed the cache returns as soon as its value is queued: the writer sends every write queued
meanwhile (value, index entry, release of the single-flight claim) in one round trip, so writes cost no
round trip of their own on the caller's path. The writer lingers `LINGER_S` after the first write of a
batch, so calls made one after another (an evaluation's examples) share a round trip too, not only calls
made at the same time; a `flush` cuts that short. A waiter for one of these calls reads the value as soon
as its batch lands; if the process dies first, its claims name a dead holder and are taken over at once.

A caching context waits for its writes when it ends (`flush`), before the step's record or the shard's
result is stored, so whatever a step computed is in the shared cache once anyone can see the step
finished. A write that could not be sent (Redis away or failing) is not dropped silently: `flush` then
reports it, like writes still queued at its deadline, and the context ends with an error that makes its
step or shard run again instead of finishing on values a re-run could not replay.

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

LINGER_S = 0.002
"""How long the writer collects writes after the first of a batch (a waiter elsewhere waits that much more)."""

MAX_BATCH = 256
"""A batch this large is sent at once, lingering or not."""


@dataclass(frozen=True)
class Write:
    """One call's write: its value's JSON (None: not cacheable, only the claim is released)."""

    key: str
    text: str | None
    on_stored: Callable[[], None] | None = None
    """Called once the value is in Redis (the context's tier keeps it then)."""


Send = Callable[[list[Write]], None]
"""Send a batch of writes to Redis (raises redis.RedisError when they did not land)."""


class WriteBehind:
    """A queue of writes and the thread of this process that sends them to Redis in batches."""

    def __init__(self, send: Send, after_batch: Callable[[int], None]) -> None:
        self.send = send
        self.after_batch = after_batch
        self._cond = threading.Condition()
        self._pending: list[Write] = []
        self._sending = 0
        self._lost = 0
        self._flushing = 0
        self._pid = -1

    def put(self, write: Write) -> None:
        """Queue `write`; the writer thread sends it with whatever else is queued."""
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
                self._pid, self._pending, self._sending, self._lost, self._flushing = os.getpid(), [], 0, 0, 0
                threading.Thread(target=self._run, name="btq-lm-cache-writes", daemon=True).start()
            self._pending.append(write)
            if len(self._pending) == 1 or len(self._pending) >= MAX_BATCH:  # else the lingering writer has it
                self._cond.notify_all()

    def flush(self, timeout_s: float) -> int:
        """Wait (bounded) until every write queued so far is sent; return how many did not land.

        Counts the writes still queued at the deadline and those lost since the last flush (whose count
        it resets): 0 means everything this process computed so far is in Redis.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self._pid != os.getpid():
                return 0  # nothing was queued in this process
            self._flushing += 1
            self._cond.notify_all()  # a lingering writer sends at once
            try:
                while self._pending or self._sending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
            missing, self._lost = len(self._pending) + self._sending + self._lost, 0
            return missing

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                send_by = time.monotonic() + LINGER_S
                while not self._flushing and len(self._pending) < MAX_BATCH:
                    remaining = send_by - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, self._pending = self._pending, []
                self._sending = len(batch)
            stored = self._send(batch)
            with self._cond:
                self._sending = 0
                if stored < 0:
                    self._lost += len(batch)
                self._cond.notify_all()
            if stored > 0:
                self.after_batch(stored)

    def _send(self, batch: list[Write]) -> int:
        """Send `batch`; return the values stored, or -1 when the batch did not land."""
        try:
            self.send(batch)
        except redis.RedisError as exc:
            logger.warning("LM cache: %d writes not stored: %r", len(batch), exc)
            return -1
        for write in batch:
            if write.on_stored is not None and write.text is not None:
                write.on_stored()
        return sum(1 for write in batch if write.text is not None)
