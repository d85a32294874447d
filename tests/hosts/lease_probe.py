"""A process on a simulated host that holds or takes a lease, or an LM single-flight claim, and reports JSON.

Run inside a host by the holder-identity tests: `python -m tests.hosts.lease_probe MODE REDIS_URL KEY TTL_S`.
Modes: `hold` (take the lease, keep renewing it), `take` (try until acquired or `--for` seconds pass),
`claim` (claim an LM call's single flight and keep it), `await` (miss the same call: wait for the claim),
`sleep` (just exist, holding a pid).
"""

import argparse
import json
import time

import redis

from btq.worker.state.lease import StepLease

LIFETIME_S = 300.0
"""Bound on how long a holding probe lives if nobody kills it."""

REQUEST = {"model": "sim/probe", "messages": [{"role": "user", "content": "2+2"}]}


def say(**fields: object) -> None:
    print(json.dumps({"t": time.time(), **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["hold", "take", "claim", "await", "sleep"])
    parser.add_argument("url", nargs="?", default="")
    parser.add_argument("key", nargs="?", default="btq:probe")
    parser.add_argument("ttl", nargs="?", type=float, default=4.0)
    parser.add_argument("--for", dest="for_s", type=float, default=60.0)
    args = parser.parse_args()
    if args.mode == "sleep":
        say(ready=True)
        time.sleep(LIFETIME_S)
        return
    client = redis.Redis.from_url(args.url)
    if args.mode in ("claim", "await"):
        probe_flight(client, args.mode, args.ttl)
        return
    lease = StepLease.on_key(client, args.key, args.ttl, worker=f"probe-{args.mode}")
    if args.mode == "hold":
        assert lease.acquire(), "the key was already leased"
        say(held=True, holder=lease.value)
        time.sleep(LIFETIME_S)
        return
    say(trying=True)
    deadline = time.monotonic() + args.for_s
    while time.monotonic() < deadline:
        if lease.acquire():
            took = lease.took_over_from
            say(acquired=True, took_over_from=took.worker if took else None)
            lease.release()
            return
        time.sleep(0.05)  # poll interval of a bounded wait
    say(acquired=False)


def probe_flight(client: redis.Redis, mode: str, ttl_s: float) -> None:
    import dspy

    from btq.worker.state.lm_cache import NAMESPACE_SETTING, RedisLMCache

    cache = RedisLMCache(client, ttl_s=60, max_entries=100, max_value_bytes=10_000, flight_ttl_s=ttl_s)
    with dspy.context(**{NAMESPACE_SETTING: "probe"}):
        if mode == "claim":
            say(claimed=cache.get(REQUEST) is None)
            time.sleep(LIFETIME_S)
            return
        say(trying=True)
        value = cache.get(REQUEST)  # None: the claim lapsed and this caller claimed the call itself
        say(claimed=value is None)


if __name__ == "__main__":
    main()
