"""The event subscriber of the events section, run as its own process (`python -m bench.subscriber`).

A separate process so its receive times are not delayed by the bench process's own work (submitting
jobs holds the GIL) and so it reads the stream exactly as an outside service would. It imports only
redis and the standard library, reads `btq:events` with blocking XREAD from the start of the (freshly
flushed) database, and stops after a given number of terminal job events or at a deadline.
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import redis

GLOBAL_EVENTS = "btq:events"  # btq.schemas.keys.GLOBAL_EVENTS, spelled out to keep this process light
TERMINAL = {"job.succeeded", "job.failed", "job.cancelled"}


def payload_id(payload: bytes) -> str:
    """Return a short identity of one event payload (the same bytes go to the job and global streams)."""
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def subscribe(url: str, terminal_events: int, deadline_s: float) -> dict[str, object]:
    """Read events until `terminal_events` jobs ended or `deadline_s` passed; return what arrived."""
    client = redis.Redis.from_url(url)
    cursor = "0-0"
    received: list[list[object]] = []
    ended = 0
    deadline = time.monotonic() + deadline_s
    print("ready", flush=True)  # the parent waits for this line before submitting anything
    while ended < terminal_events and time.monotonic() < deadline:
        batches: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = (
            client.xread({GLOBAL_EVENTS: cursor}, block=200, count=1000) or []  # type: ignore[assignment]
        )
        now = time.time()  # one receive time per batch: every entry in it arrived by now
        for _, entries in batches:
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                payload = fields[b"event"]
                event = json.loads(payload)
                received.append([payload_id(payload), event["job_id"], event["type"], event["at"], now])
                ended += event["type"] in TERMINAL
    client.close()
    return {"received": received, "terminal_seen": ended, "timed_out": ended < terminal_events}


def main() -> int:
    """Parse arguments, subscribe, write the received events as JSON to `--out`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--terminal-events", type=int, required=True)
    parser.add_argument("--deadline-s", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = subscribe(args.url, args.terminal_events, args.deadline_s)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
