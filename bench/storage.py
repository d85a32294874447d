"""Section: what a finished job keeps in Redis, and what a SIGKILL mid-step costs.

Storage: a `p -> w -> p` job (BootstrapFewShotWithRandomSearch with 2 candidates and 3 demos, trainset 100,
valset 200, the simulated LM at 0 ms, seed 7) runs on two workers; once it ended, `MEMORY USAGE` of every
key of the job is summed, grouped by kind (evaluation ids and step numbers folded), and the step records
are measured with and without their program state.

Crash: the same job on the counted LM (20 ms per call, shared cache on) runs twice at the same time on two
fleets (so both see the same machine load), one with step 1's pool child SIGKILLed a few seconds into the step
while it holds a single-flight claim on an LM call. Added seconds = wall of the killed run minus the
undisturbed one; repeated calls = LM calls of the killed run minus the undisturbed one. What the crash costs
beyond re-running its unfinished calls is the added seconds minus the repeated calls' LM time.
"""

import json
import os
import re
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import redis

from bench.config import DB_CACHE, DB_RECOVERY, lm_name
from bench.context import BenchContext
from bench.fleet import READY_TIMEOUT_S
from bench.jobs import JOB_TIMEOUT_S, P_KWARGS, SEED
from bench.redis_dbs import connect, db_url, flush
from bench.registry import COUNTED_LM, LM_CALLS_KEY, STORAGE_DATASET
from bench.report import SectionResult
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.events import EventType

KILL_AFTER_S = 2.0
"""How long into step 1 the kill lands: mid-step, after some LM calls were made."""

COUNTED_LATENCY_S = 0.02


def storage_job(lm: str) -> dict[str, Any]:
    """Return the `p -> w -> p` job of this section on LM `lm` (num_threads 1)."""
    return {
        "program": {"name": "demo.qa"},
        "lm": lm,
        "metric": "demo.exact_match",
        "strategy": "p -> w -> p",
        "optimizers": {
            "p": {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": dict(P_KWARGS)},
            "w": {"optimizer": "BootstrapFinetune", "kwargs": {}},
        },
        "trainset": {"dataset": STORAGE_DATASET, "split": "train"},
        "valset": {"dataset": STORAGE_DATASET, "split": "val"},
        "seed": SEED,
        "num_threads": 1,
    }


def _kind(key: str, job_id: str) -> str:
    """Fold a job key into its kind: `eval:*:results`, `step:*`, `events`..."""
    rest = key.removeprefix(keys.job_key(job_id, ""))
    rest = re.sub(r"^eval:[0-9a-f]+:", "eval:*:", rest)
    return re.sub(r":\d+$", ":*", rest)


def job_bytes(client: redis.Redis, job_id: str) -> dict[str, int]:
    """Return `MEMORY USAGE` of every key of `job_id`, summed by kind."""
    grouped: dict[str, int] = defaultdict(int)
    for raw in client.scan_iter(match=keys.job_key(job_id, "*"), count=1000):
        key = raw.decode()
        grouped[_kind(key, job_id)] += int(client.memory_usage(key, samples=0) or 0)
    return dict(sorted(grouped.items(), key=lambda item: -item[1]))


def _record_sizes(client: redis.Redis, job_id: str) -> list[tuple[int, int]]:
    """Return (bytes, bytes without the program state) of each stored step record."""
    sizes = []
    for index in range(4):
        raw = client.get(keys.step_key(job_id, index))
        if raw is not None:
            record = json.loads(raw)
            record["program_state"] = None
            sizes.append((len(raw), len(json.dumps(record, separators=(",", ":")))))
    return sizes


def run_storage(ctx: BenchContext) -> SectionResult:
    """Measure the bytes a finished job keeps and the cost of a SIGKILL mid-step (database DB_RECOVERY)."""
    section = SectionResult("storage")
    _storage(ctx, section)
    _crash(ctx, section)
    return section


def _storage(ctx: BenchContext, section: SectionResult) -> None:
    flush(DB_RECOVERY)
    counter = connect(DB_RECOVERY)
    try:
        with ctx.fleet(DB_RECOVERY, "storage") as fleet:
            fleet.start("bench-storage-a")
            fleet.start("bench-storage-b")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_RECOVERY)))
            job_id = client.submit(storage_job(lm_name(0)))
            client.wait(job_id, JOB_TIMEOUT_S * 3)
            time.sleep(1.0)  # late shard tasks and the finalizer's last writes
            grouped = job_bytes(counter, job_id)
            kinds: dict[str, int] = defaultdict(int)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = counter.xrange(keys.job_key(job_id, "events"))  # type: ignore[assignment]
            for _, entry in entries:
                event = json.loads(entry[b"event"])
                kinds[f"{event['type']} {event.get('detail', {}).get('phase', '')}".strip()] += 1
            section.data["events_by_type"] = dict(kinds)
            records = _record_sizes(counter, job_id)
    finally:
        flush(DB_RECOVERY)
    total = sum(grouped.values())
    section.add("bytes kept by a finished 3-step job", "KB", value=total / 1024, note="target <= 40 KB")
    evals = sum(size for kind, size in grouped.items() if kind.startswith("eval:"))
    section.add("  of which evaluation keys", "KB", value=evals / 1024)
    largest = max(records, key=lambda pair: pair[0])
    section.add("step record, largest", "KB", value=largest[0] / 1024)
    section.add(
        "step record without program state, largest",
        "KB",
        value=max(without for _, without in records) / 1024,
        note="target <= 2 KB",
    )
    section.data["storage_bytes_by_kind"] = grouped
    section.data["step_record_bytes"] = [{"bytes": whole, "without_program_state": rest} for whole, rest in records]
    section.notes.append(
        "p -> w -> p, trainset 100, valset 200, simulated LM 0 ms, 2 workers; MEMORY USAGE of every key of the "
        "job after it ended, grouped by kind in the JSON"
    )


def _calls(client: redis.Redis) -> int:
    return int(client.get(LM_CALLS_KEY) or 0)


def _one_run(
    ctx: BenchContext, name: str, db: int, kill: bool, together: threading.Barrier
) -> tuple[float, int, float | None, float | None]:
    """Run the crash job on two fresh workers of `db`; return wall s, LM calls, best score, restart s."""
    flush(db)
    counter = connect(db)
    restart: float | None = None
    with ctx.fleet(db, name) as fleet:
        fleet.start(f"bench-{name}-a")
        fleet.start(f"bench-{name}-b")
        client = JobClient(ProducerSettings(redis_url=db_url(db)))
        together.wait(timeout=READY_TIMEOUT_S * 2)  # both jobs run under the same machine load
        started = time.perf_counter()
        job_id = client.submit(storage_job(COUNTED_LM))
        if kill:
            events = client.follow(job_id, timeout_s=JOB_TIMEOUT_S * 4)
            step = next(e for e in events if e.type is EventType.STEP_STARTED and e.step_index == 1)
            time.sleep(KILL_AFTER_S)
            _await_claim(counter)
            assert step.worker is not None
            killed_at = time.time()
            os.kill(int(step.worker.rpartition(":")[2]), signal.SIGKILL)
            if counter.exists(keys.step_key(job_id, 1)):
                raise RuntimeError("step 1 ended before the kill: make it longer")
            again = next(e for e in events if e.type is EventType.STEP_STARTED and e.step_index == 1)
            restart = again.at - killed_at
        result = client.wait(job_id, JOB_TIMEOUT_S * 4)
        wall = time.perf_counter() - started
    calls = _calls(counter)
    flush(db)
    return wall, calls, result.best.score if result.best else None, restart


def _await_claim(client: redis.Redis, timeout_s: float = 10.0) -> None:
    """Wait (bounded) until an LM call is claimed: in step 1's bootstrapping only the step's process calls."""
    deadline = time.monotonic() + timeout_s
    while not any(True for _ in client.scan_iter(f"{keys.LM_CACHE_FLIGHT}:*", count=1000)):
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)  # the kill lands while the child holds a claim: what a crash mid-call leaves


def _crash(ctx: BenchContext, section: SectionResult) -> None:
    together = threading.Barrier(2)
    runs: dict[str, tuple[float, int, float | None, float | None]] = {}

    def run(name: str, db: int, kill: bool) -> None:
        try:
            runs[name] = _one_run(ctx, f"crash-{name}", db, kill, together)
        except BaseException:
            together.abort()  # the other run must not wait for this one
            raise

    threads = [
        threading.Thread(target=run, args=("clean", DB_CACHE, False)),
        threading.Thread(target=run, args=("killed", DB_RECOVERY, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOB_TIMEOUT_S * 8)
    if set(runs) != {"clean", "killed"}:
        section.failures.append(f"crash runs did not finish: {sorted(runs)}")
        return
    (clean_s, clean_calls, clean_best, _), (killed_s, killed_calls, killed_best, restart) = (
        runs["clean"],
        runs["killed"],
    )
    if clean_best != killed_best:
        section.failures.append(f"best score differs after the crash: {clean_best} vs {killed_best}")
    added = killed_s - clean_s
    repeated = killed_calls - clean_calls
    section.add("job wall, undisturbed", "s", value=clean_s)
    section.add("SIGKILL of step 1's pool child: added seconds", "s", value=added)
    section.add("  SIGKILL -> step 1 running again", "s", value=restart)
    section.add("  LM calls repeated", "calls", value=repeated)
    section.add(
        "  added beyond re-running repeated calls",
        "s",
        value=added - repeated * COUNTED_LATENCY_S,
        note="target <= 8 s",
    )
    section.data["crash"] = {
        "clean": {"wall_s": clean_s, "calls": clean_calls, "best": clean_best},
        "killed": {"wall_s": killed_s, "calls": killed_calls, "best": killed_best, "restart_s": restart},
        "kill_after_s": KILL_AFTER_S,
    }
    section.notes.append(
        f"crash: the same job on the counted LM (20 ms, cache on) twice at the same time on two fleets of two "
        f"workers, one with step 1's pool child SIGKILLed {KILL_AFTER_S:.0f} s into the step while it holds an LM claim; "
        "one pair (n=1): "
        "wall times move with the machine's load"
    )
