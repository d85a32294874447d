"""A per-step lease in Redis that names its holder, renewed while the step runs.

The lease value is a JSON `Holder` (host, pid, worker, token, node). A second delivery of a step waits
while the lease is renewed, and takes over at once when the holder is a process of this host that no longer
exists (a pool child SIGKILLed, an OOM kill), instead of waiting `ttl_s` for the lease to lapse. A
holder on another host is trusted until its lease lapses; the sweeper (`worker/celery/sweeper.py`) re-drives
such steps. Each renewal also refreshes the step's heartbeat in the running-steps index.

"This host" means the same hostname *and* the same `node_id()` (kernel boot and PID namespace): containers
and pods often share a hostname (host networking, a fixed `hostname:`) while their pids are numbered
independently, so a pid is only looked up when it was numbered in this very PID namespace.

A holder also learns when it lost its lease (a renewal that finds another value, or no renewal confirmed
for a whole TTL, as after a SIGSTOP or a long GC pause): `is_lost()` answers without Redis, and the step
stops at its next cancel check instead of working on as a zombie next to the step's new holder.
"""

import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from types import TracebackType

import redis

from btq.schemas import keys
from btq.schemas.exceptions import BtqError

log = logging.getLogger(__name__)


@functools.cache
def node_id() -> str:
    """This kernel boot and PID namespace: the space in which this process's pid means something."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        return f"{boot_id}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""  # no procfs: no holder is ever judged local, leases lapse by their TTL


_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0"
)


class LeaseLostError(BtqError):
    """Raised when a step's holder lost its lease: another delivery owns the step, this one ends silently."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: enough to tell, on the same host, whether the holder process still exists."""

    host: str
    pid: int
    worker: str
    token: str
    node: str = field(default_factory=node_id)
    """`node_id()` of the holder; a value without it (an older worker's) is never judged local."""

    def encode(self) -> str:
        """Return the lease value (compact JSON)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, raw: bytes | str) -> "Holder | None":
        """Parse a lease value; None for a value this version did not write."""
        try:
            data = json.loads(raw)
            return cls(
                host=str(data["host"]),
                pid=int(data["pid"]),
                worker=str(data["worker"]),
                token=str(data["token"]),
                node=str(data.get("node", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def is_gone(self) -> bool:
        """True when the holder was a process of this host (and PID namespace) that no longer runs."""
        if self.host != socket.gethostname() or not self.node or self.node != node_id():
            return False  # another machine or container: only its lease's expiry tells
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # exists, owned by another user
        return _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    # A SIGKILLed pool child stays a zombie until its parent reaps it: dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class StepLease:
    """Exclusive right to run one step; renewed in a background thread while held."""

    def __init__(self, client: redis.Redis, job_id: str, index: int, ttl_s: float, worker: str | None = None) -> None:
        self.redis = client
        self.key = keys.lease_key(job_id, index)
        self.member: str | None = keys.running_member(job_id, index)
        self.ttl_ms = int(ttl_s * 1000)
        self.holder = Holder(host=socket.gethostname(), pid=os.getpid(), worker=worker or "", token=uuid.uuid4().hex)
        self.value = self.holder.encode()
        self.took_over_from: Holder | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost = threading.Event()
        self._confirmed_at = time.monotonic()

    @classmethod
    def on_key(cls, client: redis.Redis, key: str, ttl_s: float, worker: str | None = None) -> "StepLease":
        """A lease on any key (an evaluation shard's), with the same holder rules and no step heartbeat."""
        lease = cls(client, "", 0, ttl_s, worker)
        lease.key, lease.member = key, None
        return lease

    def acquire(self) -> bool:
        """Take the lease if nobody holds it, or if its holder process is gone; start renewing it."""
        if not self.redis.set(self.key, self.value, nx=True, px=self.ttl_ms) and not self._take_over_dead():
            return False
        self.adopt()
        return True

    def adopt(self) -> None:
        """Start holding a lease whose value was just written as ours (by a script that claimed it)."""
        self._confirmed_at = time.monotonic()
        self._beat()
        self._renewer = threading.Thread(target=self._renew, name="btq-lease", daemon=True)
        self._renewer.start()

    def _take_over_dead(self) -> bool:
        raw = self.redis.get(self.key)
        if raw is None:
            return bool(self.redis.set(self.key, self.value, nx=True, px=self.ttl_ms))
        holder = Holder.decode(raw)
        if holder is None or not holder.is_gone():
            return False
        # Compare-and-set: of several deliveries noticing the same dead holder, one takes over.
        if self.redis.eval(_TAKE_OVER, 1, self.key, raw, self.value, self.ttl_ms):
            self.took_over_from = holder
            log.warning("step lease %s: holder %s (pid %d) is gone; taking over", self.key, holder.worker, holder.pid)
            return True
        return False

    def current_holder(self) -> Holder | None:
        """Return the lease's holder, if the lease exists."""
        raw = self.redis.get(self.key)
        return Holder.decode(raw) if raw is not None else None

    def held_by_other(self) -> bool:
        """True while another holder's lease is alive."""
        owner = self.redis.get(self.key)
        return owner is not None and owner != self.value.encode()

    def _beat(self) -> None:
        # XX: only a step still in the index (no record yet) gets its heartbeat refreshed.
        if self.member is None:
            return
        self.redis.zadd(keys.RUNNING_STEPS, {self.member: time.time()}, xx=True)

    def is_lost(self) -> bool:
        """True once this holder cannot be sure it still holds the lease (no Redis call).

        Lost for good when a renewal found the lease gone or someone else's; presumed lost when no renewal
        was confirmed for a whole TTL (this process was paused or starved), since Redis let it lapse then.
        """
        if self._lost.is_set():
            return True
        if self._renewer is not None and time.monotonic() - self._confirmed_at > self.ttl_ms / 1000:
            self._lost.set()
        return self._lost.is_set()

    def confirm(self) -> bool:
        """Ask Redis whether the lease is still ours; remember a loss. Returns True while it is held."""
        if self.is_lost():
            return False
        if self.redis.get(self.key) != self.value.encode():
            self._lost.set()
        return not self._lost.is_set()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            asked_at = time.monotonic()
            try:
                if not self.redis.eval(_RENEW, 1, self.key, self.value, self.ttl_ms):
                    log.warning("step lease %s: lost to another holder; the step stops at its next check", self.key)
                    self._lost.set()
                    return
                self._confirmed_at = asked_at
                self._beat()
            except redis.RedisError as exc:  # Redis away: the lease lapses and the sweeper re-drives the step
                log.warning("step lease %s: renewal failed (%s); retrying", self.key, exc)

    def release(self) -> None:
        """Stop renewing and drop the lease if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            try:
                self.redis.eval(_RELEASE, 1, self.key, self.value)
            except redis.RedisError as exc:  # it lapses by itself within its TTL
                log.warning("step lease %s: release failed (%s)", self.key, exc)

    def __enter__(self) -> "StepLease":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def live_holder(client: redis.Redis, job_id: str, steps: int) -> Holder | None:
    """Return a live holder of any step of a job with `steps` strategy steps, or None when none runs.

    A lease whose holder is a dead process of this host does not count; one of another host counts until
    it lapses, as in `StepLease.acquire`.
    """
    raws = client.mget([keys.lease_key(job_id, index) for index in range(steps + 1)])
    for raw in raws:
        if raw is None:
            continue
        holder = Holder.decode(raw)
        if holder is None or not holder.is_gone():
            return holder or Holder(host="", pid=0, worker="unknown", token="")
    return None
