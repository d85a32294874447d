"""The soak's fault injector: real signals to real worker processes, a real Redis restart, lost messages.

Each injection returns a `Fault` naming the steps it hit (those whose lease holder was a target process,
or whose message was dropped), so recovery times can be read afterwards from the jobs' event streams.
"""

import base64
import contextlib
import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from btq.schemas import keys
from tests.chaos.test_redis_restart import AofRedis
from tests.conftest import Fleet

KINDS = ("child_kill", "node_kill", "sigstop", "redis_restart", "message_drop")


@dataclass
class Fault:
    """One injected fault: its kind, when, what it hit, and (filled in at the end) how long recovery took."""

    kind: str
    at: float
    target: str
    affected: list[tuple[str, int]] = field(default_factory=list)
    recovery_s: float | None = None


def children(pid: int) -> list[int]:
    """Direct child pids of `pid` (the prefork pool of a worker node)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class FaultInjector:
    """Injects faults of `KINDS` into one fleet and its Redis, at random among what is running."""

    def __init__(self, fleet: Fleet, server: AofRedis, rng: random.Random, lease_ttl_s: float) -> None:
        self.fleet = fleet
        self.server = server
        self.rng = rng
        self.lease_ttl_s = lease_ttl_s
        self.redis = redis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=2)
        self._timers: list[threading.Timer] = []
        self._stopped: set[str] = set()

    def inject(self, kind: str) -> Fault | None:
        """Inject one fault of `kind`; None when there was nothing to hit (no message queued)."""
        return getattr(self, f"_{kind}")()  # type: ignore[no-any-return]

    def _holders(self) -> dict[int, list[tuple[str, int]]]:
        """Steps held right now, by holder pid."""
        held: dict[int, list[tuple[str, int]]] = {}
        for key in self.redis.scan_iter(match=f"{keys.PREFIX}:job:*:lease:*", count=1000):
            raw = self.redis.get(key)
            parts = key.decode().split(":")
            if raw is None or len(parts) != 5:
                continue
            try:
                pid = int(json.loads(raw)["pid"])
            except (ValueError, KeyError, TypeError):
                continue
            held.setdefault(pid, []).append((parts[2], int(parts[4])))
        return held

    def _node_of(self, pid: int) -> str | None:
        for name, proc in self.fleet.procs.items():
            if proc.poll() is None and (pid == proc.pid or pid in children(proc.pid)):
                return name
        return None

    def _pick_node(self) -> tuple[str, list[tuple[str, int]]]:
        """A node running a step when there is one (the interesting case), else any live node."""
        held = self._holders()
        busy = [(self._node_of(pid), steps) for pid, steps in held.items()]
        busy = [(n, s) for n, s in busy if n is not None and n not in self._stopped]
        if busy:
            name, _ = self.rng.choice(busy)
            assert name is not None
            pids = {self.fleet.procs[name].pid, *children(self.fleet.procs[name].pid)}
            return name, [s for pid, steps in held.items() if pid in pids for s in steps]
        live = [n for n, p in self.fleet.procs.items() if p.poll() is None and n not in self._stopped]
        return self.rng.choice(live), []

    def _child_kill(self) -> Fault:
        name, affected = self._pick_node()
        pool = children(self.fleet.procs[name].pid)
        for pid in pool:
            _signal(pid, signal.SIGKILL)
        return Fault("child_kill", time.time(), f"{name} pool {pool}", affected)

    def _node_kill(self) -> Fault:
        name, affected = self._pick_node()
        proc = self.fleet.procs[name]
        for pid in [proc.pid, *children(proc.pid)]:
            _signal(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        at = time.time()
        self._later(self.rng.uniform(1, 3), lambda: self.fleet.start(name))  # the node comes back, cold
        return Fault("node_kill", at, name, affected)

    def _sigstop(self) -> Fault:
        name, affected = self._pick_node()
        pids = [self.fleet.procs[name].pid, *children(self.fleet.procs[name].pid)]
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        self._stopped.add(name)
        pause_s = self.rng.uniform(0.5, 2.5) * self.lease_ttl_s  # shorter and longer than the lease

        def resume() -> None:
            for pid in pids:
                _signal(pid, signal.SIGCONT)
            self._stopped.discard(name)

        self._later(pause_s, resume)
        return Fault("sigstop", time.time(), f"{name} for {pause_s:.1f} s", affected)

    def _redis_restart(self) -> Fault:
        at = time.time()
        self.server.stop()
        time.sleep(self.rng.uniform(1, 4))  # the outage itself
        self.server.start()
        return Fault("redis_restart", at, "redis")

    def _message_drop(self) -> Fault | None:
        # The fleet's queues: its own, the profile queues jobs are routed to, and their `.eval` shard queues.
        lists = [
            k.decode() for k in self.redis.scan_iter(match=f"{self.fleet.queue}*") if self.redis.type(k) == b"list"
        ]
        self.rng.shuffle(lists)
        for queue in sorted(lists, key=lambda q: q.endswith(keys.EVAL_QUEUE_SUFFIX)):  # step messages first
            raw = self.redis.rpop(queue)  # the next message kombu would deliver
            if isinstance(raw, bytes):
                return Fault("message_drop", time.time(), queue, _message_step(raw))
        return None

    def _later(self, delay_s: float, action: Any) -> None:
        timer = threading.Timer(delay_s, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def settle(self) -> None:
        """Let pending resumes and restarts happen, then make sure every node and Redis run again."""
        for timer in self._timers:
            timer.join(timeout=30)
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.server.start()
        for name, proc in list(self.fleet.procs.items()):
            for pid in [proc.pid, *children(proc.pid)]:
                _signal(pid, signal.SIGCONT)
            if proc.poll() is not None:
                self.fleet.start(name)


def _message_step(raw: bytes) -> list[tuple[str, int]]:
    """The (job, step) a dropped step message was for; [] for a shard task or an unreadable message."""
    try:
        message = json.loads(raw)
        headers = message.get("headers", {})
        if headers.get("task") != keys.TASK_STEP:
            return []
        body = json.loads(base64.b64decode(message["body"]))
        job_id, index = body[0]
        return [(str(job_id), int(index))]
    except (ValueError, KeyError, TypeError):
        return []
