"""Read-only views of the Redis layout for the dashboard: a one-off jobs list and the workers.

Everything here reads keys documented in README.md ("Redis layout"); nothing writes. Values are
returned as plain JSON-ready dicts so the HTML pages and the JSON API show the same thing.
"""

import json
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import redis

from btq.producer.dashboard.job_list import check_state, number, read_summaries
from btq.schemas import keys
from btq.schemas.event_entry import event_from_entry
from btq.schemas.events import EventType, JobEvent

Json = dict[str, Any]

logger = logging.getLogger(__name__)

_BATCH = 200

_STEP_END = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED}


def _text(value: bytes | str) -> str:
    # Records are written by anyone who can reach Redis: bytes that are not UTF-8 must not end a page.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def list_jobs(r: redis.Redis, state: str | None = None, limit: int = 200) -> list[Json]:
    """Return up to `limit` jobs newest first, only those in `state` when given (a one-off read).

    It reads the newest jobs in batches until `limit` are found, so `btq jobs` costs what it prints;
    the dashboard keeps a `JobList` instead, which remembers what never changes between requests.
    """
    check_state(state)
    rows: list[Json] = []
    start = 0
    while len(rows) < limit:
        ids = [_text(i) for i in cast(list[bytes], r.zrevrange(keys.JOBS_INDEX, start, start + _BATCH - 1))]
        if not ids:
            break
        start += len(ids)
        rows += [j for j in read_summaries(r, ids) if state is None or j["state"] == state]
    return rows[:limit]


def running_steps(events: Iterable[JobEvent]) -> dict[str, list[Json]]:
    """Return worker name -> steps it started and has not finished, from events oldest first."""
    open_steps: dict[tuple[str, int], JobEvent] = {}
    for event in events:
        if event.type is EventType.STEP_STARTED and event.step_index is not None:
            open_steps[(event.job_id, event.step_index)] = event
        elif event.type in _STEP_END and event.step_index is not None:
            open_steps.pop((event.job_id, event.step_index), None)
        elif event.type.is_terminal:
            open_steps = {k: v for k, v in open_steps.items() if k[0] != event.job_id}
    running: dict[str, list[Json]] = {}
    for (job_id, index), event in open_steps.items():
        # Events name the worker process ("name@host:pid"); manifests name the worker ("name@host").
        worker = (event.worker or "?").rsplit(":", 1)[0]
        running.setdefault(worker, []).append(
            {"job_id": job_id, "step_index": index, "strategy": event.strategy, "since": event.at}
        )
    return running


def _recent_events(r: redis.Redis, count: int) -> list[JobEvent]:
    entries = cast(list[Any], r.xrevrange(keys.GLOBAL_EVENTS, count=count))
    events = (event_from_entry(keys.GLOBAL_EVENTS, eid, data) for eid, data in reversed(entries))
    return [event for event in events if event is not None]


def _registered(info: Json) -> Json:
    return {k: info[k] for k in ("programs", "metrics", "lms", "datasets") if k in info}


def worker_entries(r: redis.Redis) -> list[Json]:
    """Return what workers published: each live worker's `btq:worker:<name>:manifest`.

    Per-worker keys may be JSON strings or hashes; whichever fields they carry (`worker`/`name`,
    `published_at`, `heartbeat_at`, registered names) are kept, so new fields need no change here.
    """
    found: dict[str, Json] = {}
    for key in cast(Iterable[bytes], r.scan_iter(match=keys.worker_key("*", "manifest"), count=500)):
        info = _read_worker_key(r, _text(key))
        if info is None:
            continue
        name = str(info.get("worker") or info.get("name") or _text(key).split(":")[2])
        found[name] = {**found.get(name, {}), "source": _text(key), **info}
    return [{"worker": name, **info} for name, info in sorted(found.items())]


def _read_worker_key(r: redis.Redis, key: str) -> Json | None:
    kind = _text(cast(bytes, r.type(key)))
    if kind == "string":
        try:
            value = json.loads(cast(bytes, r.get(key)))
        except (TypeError, ValueError):  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            logger.warning("skipping unreadable worker record %s: not JSON", key)
            return None
        if not isinstance(value, dict):
            logger.warning("skipping unreadable worker record %s: not a JSON object", key)
            return None
        return value
    if kind == "hash":
        return {_text(k): _text(v) for k, v in cast(dict[bytes, bytes], r.hgetall(key)).items()}
    return None


def list_workers(r: redis.Redis, scan_events: int = 2000, live: set[str] | None = None) -> list[Json]:
    """Return each known worker with what it registered, when it was last heard of, and what it runs.

    `live` is the set of worker names that answered a ping just now (None: not asked); workers that
    answered but published nothing readable are listed too.
    """
    running = running_steps(_recent_events(r, scan_events))
    now = time.time()
    workers = []
    entries = worker_entries(r)
    # A heartbeat record says how long it is good for; one that says nothing proves nothing either way.
    beating = {info["worker"] for info in entries if number(info.get("expires_at")) > now}
    timed = {info["worker"] for info in entries if number(info.get("expires_at")) > 0}
    alive = (live or set()) | beating
    known = {info["worker"] for info in entries}
    entries += [{"worker": name, "source": "ping"} for name in sorted(alive - known)]
    for info in entries:
        name = info["worker"]
        seen = number(info.get("heartbeat_at") or info.get("published_at"))
        workers.append(
            {
                "worker": name,
                "source": info.get("source"),
                "live": name in alive if live is not None or name in timed else None,
                "slots": int(number(info.get("pool_size"))) or None,
                "last_seen_s_ago": round(now - float(seen), 1) if seen else None,
                "registered": _registered(info),
                "running": running.pop(name, []),
            }
        )
    # Steps started by workers that published nothing we can read still show up.
    workers += [
        {
            "worker": n,
            "source": "events",
            "live": None,
            "slots": None,
            "last_seen_s_ago": None,
            "registered": {},
            "running": s,
        }
        for n, s in running.items()
    ]
    return workers
