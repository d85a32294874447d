"""LM single flight names its holder: a SIGKILLed holder is taken over at once; the in-process tier.

The claimant is a real process (`tests.hosts.lease_probe claim`) killed with SIGKILL; the waiter is this
test process, with a TTL long enough that a wait for it would time the test's bounded wait out.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import dspy
import pytest
import redis

from btq.schemas import keys
from btq.schemas.exceptions import RetryableStepError
from btq.worker.state.lease import Holder, node_id
from btq.worker.state.lm_cache import NAMESPACE_SETTING, TIER_SETTING, LocalTier, RedisLMCache
from btq.worker.state.lm_flight import flight_key
from tests.conftest import ROOT, redis_url, wait_until
from tests.hosts.lease_probe import REQUEST

pytestmark = pytest.mark.integration

LONG_TTL_S = 120.0
"""The waiter's claim TTL: taking over a dead holder must not wait for it (the test waits 30 s at most)."""


@pytest.fixture
def claimant(scratch_db: redis.Redis) -> Iterator[subprocess.Popen[str]]:
    """A process that claimed REQUEST's call in the probe namespace and keeps the claim."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hosts.lease_probe", "claim", redis_url(6), "-", str(LONG_TTL_S)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["claimed"] is True
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def _flight_holder(scratch_db: redis.Redis, cache: RedisLMCache) -> Holder | None:
    with dspy.context(**{NAMESPACE_SETTING: "probe"}):
        key = cache._key(REQUEST, None)
    assert key is not None
    raw = scratch_db.get(flight_key(key))
    return Holder.decode(raw) if raw is not None else None


def _cache(scratch_db: redis.Redis, flight_ttl_s: float = LONG_TTL_S, max_value_bytes: int = 10_000) -> RedisLMCache:
    return RedisLMCache(
        scratch_db, ttl_s=60, max_entries=100, max_value_bytes=max_value_bytes, flight_ttl_s=flight_ttl_s
    )


def test_a_sigkilled_holder_s_claim_is_taken_over_without_waiting_for_its_ttl(
    scratch_db: redis.Redis, claimant: subprocess.Popen[str]
) -> None:
    cache = _cache(scratch_db)
    holder = _flight_holder(scratch_db, cache)
    assert holder is not None and holder.pid == claimant.pid  # the claim names its holder

    os.kill(claimant.pid, signal.SIGKILL)
    claimant.wait(timeout=30)
    got: dict[str, Any] = {}

    def miss() -> None:
        with dspy.context(**{NAMESPACE_SETTING: "probe"}):
            got["value"] = cache.get(REQUEST)

    waiter = threading.Thread(target=miss, daemon=True)
    waiter.start()
    wait_until(lambda: "value" in got, 30, "the dead holder's claim taken over (its TTL is 120 s)")
    assert got["value"] is None  # a miss: this process now makes the call
    taker = _flight_holder(scratch_db, cache)
    assert taker is not None and taker.pid == os.getpid()


def test_a_live_holder_keeps_its_claim_and_its_value_reaches_the_waiter(
    scratch_db: redis.Redis, claimant: subprocess.Popen[str]
) -> None:
    cache = _cache(scratch_db, flight_ttl_s=0.3)
    with dspy.context(**{NAMESPACE_SETTING: "probe"}):
        assert cache.get(REQUEST) is None  # waited its own bound, then makes the call unclaimed
    holder = _flight_holder(scratch_db, cache)
    assert holder is not None and holder.pid == claimant.pid  # never taken from a live holder

    other = _cache(scratch_db)  # the holder's value, written by another cache, is what the waiter reads
    with dspy.context(**{NAMESPACE_SETTING: "probe"}):
        other.put(REQUEST, {"answer": "4"})
        other.flush()
        assert cache.get(REQUEST) == {"answer": "4"}


def _commands(scratch_db: redis.Redis) -> int:
    stats = scratch_db.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def test_the_in_process_tier_serves_only_what_the_shared_cache_holds(scratch_db: redis.Redis) -> None:
    cache = _cache(scratch_db, max_value_bytes=100)
    big = {"model": "m", "messages": [{"role": "user", "content": "big"}]}
    with dspy.context(**{NAMESPACE_SETTING: "ns", TIER_SETTING: LocalTier()}):
        assert cache.get(REQUEST) is None
        cache.put(REQUEST, {"answer": "4"})
        cache.flush()  # written behind the call: the tier keeps it once Redis has it
        before = _commands(scratch_db)
        assert cache.get(REQUEST) == {"answer": "4"}
        assert _commands(scratch_db) == before, "a repeated request inside a context costs no round trip"

        assert cache.get(big) is None
        cache.put(big, {"answer": "x" * 500})  # too large for the shared cache: nobody else can read it
        cache.flush()
        assert cache.get(big) is None, "the tier kept a value the shared cache does not hold"

    scratch_db.delete(*scratch_db.scan_iter(f"{keys.LM_CACHE}:*"))  # the shared cache cleared
    with dspy.context(**{NAMESPACE_SETTING: "ns", TIER_SETTING: LocalTier()}):
        assert cache.get(REQUEST) is None  # the next context is cold, as on every other worker


def _first_calls_of_a_forked_process(cache: RedisLMCache, threads: int) -> int:
    """In a child just forked (as a pool process is), miss the cache from `threads` threads at once.

    Returns the child's exit code: how many lookups raised instead of answering a miss. A tiny switch
    interval makes the threads interleave inside the process's first claim, where a race would show.
    """
    pid = os.fork()
    if pid == 0:  # the child: its exit code is its count of failed lookups
        errors = 0
        try:
            node_id.cache_clear()  # as in a pool process that never asked: its first claim reads procfs
            sys.setswitchinterval(1e-6)
            start = threading.Barrier(threads)
            failed: list[BaseException] = []

            def miss(n: int) -> None:
                request = {**REQUEST, "messages": [{"role": "user", "content": f"fork {os.getpid()} call {n}"}]}
                start.wait(timeout=30)
                with dspy.context(**{NAMESPACE_SETTING: "fork"}):
                    try:
                        if cache.get(request) is not None:
                            failed.append(AssertionError("a request never made was a hit"))
                    except BaseException as exc:  # what dspy would count as the example's failure
                        failed.append(exc)

            workers = [threading.Thread(target=miss, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=60)
            errors = len(failed) + sum(worker.is_alive() for worker in workers)
        except BaseException:
            errors = 255
        os._exit(min(errors, 255))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_process_s_first_concurrent_misses_all_answer(scratch_db: redis.Redis) -> None:
    # A pool process starts its first evaluation with several dspy threads missing the cache at once:
    # each must get a miss (and make its call), never an exception dspy would score as a failed example.
    cache = _cache(scratch_db)  # made in the parent, as a worker's main process installs it, and never used there
    failures = [_first_calls_of_a_forked_process(cache, threads=8) for _ in range(20)]
    assert failures == [0] * 20


def test_writes_that_do_not_land_end_the_context_retryable() -> None:
    # Redis away: the lookup is a miss (the call is made), but the value cannot be stored, so whatever the
    # context would store as done (a step's record, a shard's result) must not be: flush raises.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    away = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    cache = RedisLMCache(away, ttl_s=60, max_entries=100, max_value_bytes=10_000, flight_ttl_s=LONG_TTL_S)
    with dspy.context(**{NAMESPACE_SETTING: "away"}):
        assert cache.get(REQUEST) is None
        cache.put(REQUEST, {"answer": "4"})
        with pytest.raises(RetryableStepError):
            cache.flush()
    cache.flush()  # reported once: the next context starts with nothing owed
