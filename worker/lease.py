"""A per-step lease in Redis, renewed while the step runs, so duplicate deliveries wait instead of re-running.

Celery redelivers a message whose visibility timeout passed even when its worker is alive and busy (a
long fine-tune), and a chain may send a step twice if a worker dies between sending the next step and
acknowledging its own. The lease tells a second delivery that the step is in hand; it expires within
`ttl_s` when its holder dies, and the next delivery takes over.
"""

import threading
import uuid
from types import TracebackType

import redis

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class StepLease:
    """Exclusive right to run one step; renewed in a background thread while held."""

    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self.redis = client
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; start renewing it."""
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._renewer = threading.Thread(target=self._renew, name="btq-lease", daemon=True)
        self._renewer.start()
        return True

    def held_by_other(self) -> bool:
        """True while another holder's lease is alive."""
        owner = self.redis.get(self.key)
        return owner is not None and owner != self.token.encode()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)

    def release(self) -> None:
        """Stop renewing and drop the lease if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self.redis.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> "StepLease":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
