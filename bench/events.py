"""Section 3: event delivery from XADD to an outside subscriber, and events lost, over real jobs.

Real jobs (tiny ones: strategy "p" with LabeledFewShot and a valset of 2) run on real workers while a
separate subscriber process reads the global stream. Latency is the subscriber's receive time minus
the event's `at`, which the emitter stamps just before its XADD pipeline (same host, same clock). An
event counts as lost when it is in a job's own stream but never reached the subscriber.
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.config import DB_EVENTS, ROOT
from bench.context import BenchContext
from bench.jobs import JOB_TIMEOUT_S, TINY_JOB_EVENTS, tiny_job, wait_all
from bench.redis_dbs import connect, db_url, flush
from bench.report import SectionResult
from bench.stats import percentile, summarize
from bench.subscriber import payload_id
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys

CHUNKS = 10
"""Jobs are split in this many consecutive groups; p50/p99 per group give the spread of the figure."""


def _start_subscriber(jobs: int, out: Path) -> "subprocess.Popen[str]":
    argv = [sys.executable, "-m", "bench.subscriber", "--url", db_url(DB_EVENTS)]
    argv += ["--terminal-events", str(jobs), "--deadline-s", str(JOB_TIMEOUT_S), "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the subscriber prints "ready" or exits (EOF) on error
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the subscriber did not start (said {line!r})")
    return proc


def _emitted(store: "redis.Redis", job_ids: list[str]) -> dict[str, set[str]]:
    """Return, per job, the identities of the events in its own stream (the record of what was sent)."""
    pipe = store.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.xrange(keys.job_key(job_id, "events"))
    return {
        job_id: {payload_id(fields[b"event"]) for _, fields in entries}
        for job_id, entries in zip(job_ids, pipe.execute(), strict=True)
    }


def run_events(ctx: BenchContext, jobs: int | None = None, workers: int | None = None) -> SectionResult:
    """Measure section 3 on database DB_EVENTS (`jobs`/`workers` override the plan, for the smoke test)."""
    jobs = jobs or ctx.plan.events_jobs
    workers = workers or ctx.plan.events_workers
    section = SectionResult("events")
    out = ctx.workdir / "events-received.json"
    flush(DB_EVENTS)
    store = connect(DB_EVENTS)
    try:
        with ctx.fleet(DB_EVENTS, "events") as fleet:
            for i in range(workers):
                fleet.start(f"bench-events-{i}")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_EVENTS)))
            subscriber = _start_subscriber(jobs, out)
            try:
                started = time.time()
                job_ids = [client.submit(tiny_job(seed)) for seed in range(jobs)]
                results = wait_all(client, job_ids)
                elapsed = max(r.finished_at for r in results) - started
                subscriber.wait(timeout=JOB_TIMEOUT_S)
            finally:
                if subscriber.poll() is None:
                    subscriber.kill()
        emitted = _emitted(store, job_ids)
    finally:
        store.close()
        flush(DB_EVENTS)
    received: dict[str, Any] = json.loads(out.read_text())
    _figures(section, job_ids, emitted, received, succeeded=sum(r.state.value == "succeeded" for r in results))
    section.data["jobs_per_s"] = jobs / elapsed
    section.notes.append(
        f"{jobs} real jobs (strategy 'p', LabeledFewShot, valset 2, 0 ms LM) on {workers} workers, "
        f"{jobs / elapsed:.0f} jobs/s; subscriber = separate process, XREAD BLOCK on {keys.GLOBAL_EVENTS}; "
        f"latency = receive time - event.at; p50/p99 spread over {CHUNKS} consecutive groups of jobs"
    )
    return section


def _figures(
    section: SectionResult,
    job_ids: list[str],
    emitted: dict[str, set[str]],
    received: dict[str, Any],
    succeeded: int,
) -> None:
    rows = received["received"]
    got = {row[0] for row in rows}
    sent = set().union(*emitted.values()) if emitted else set()
    lost = len(sent - got)
    expected = TINY_JOB_EVENTS * len(job_ids)
    latency_by_job: dict[str, list[float]] = {}
    for _, job_id, _, at, now in rows:
        latency_by_job.setdefault(job_id, []).append((now - at) * 1000)
    size = max(1, len(job_ids) // CHUNKS)
    groups = [job_ids[i : i + size] for i in range(0, len(job_ids), size)]
    samples = [[v for j in group for v in latency_by_job.get(j, [])] for group in groups]
    everything = [v for group in samples for v in group]
    for q in (50, 99):
        overall = percentile(everything, q)
        section.add(
            f"delivery latency p{q}",
            "ms",
            summarize([percentile(g, q) for g in samples if g]),
            note=f"all {len(everything)} events: {overall:.2f} ms",
        )
    section.add("events expected", "events", value=expected, note=f"{TINY_JOB_EVENTS} per job x {len(job_ids)} jobs")
    section.add("events in per-job streams", "events", value=len(sent))
    section.add("events received by subscriber", "events", value=len(got), note=f"{len(rows) - len(got)} duplicates")
    verdict = "ok" if lost == 0 and len(sent) == expected else "LOST EVENTS"
    section.add("events lost", "events", value=max(lost, expected - len(got)), note=f"must be 0: {verdict}")
    section.add("jobs succeeded", "jobs", value=succeeded, note=f"of {len(job_ids)}")
    section.data.update(
        {
            "expected": expected,
            "sent": len(sent),
            "received": len(got),
            "lost": lost,
            "timed_out": received["timed_out"],
            "latency_ms_all": summarize(everything),
        }
    )
    if verdict != "ok" or received["timed_out"]:
        section.failures.append(f"events: expected {expected}, sent {len(sent)}, received {len(got)}, lost {lost}")
