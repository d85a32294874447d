"""Section 4: the resident memory of the process doing the work, after 1, 100 and 500 small jobs.

One worker (prefork, concurrency 1, the production setting) runs tiny jobs in batches; between
batches the worker is idle and the VmRSS of its pool child is read from /proc. Growth is relative to
the reading after the first job, which already includes the registry, dspy and the first program.
"""

import time

from bench.config import DB_MEMORY
from bench.context import BenchContext
from bench.fleet import rss_kb
from bench.jobs import tiny_job, wait_all
from bench.redis_dbs import db_url, flush
from bench.report import SectionResult
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings

SETTLE_S = 0.2
"""Pause after a batch: the child finishes acking and freeing the last task before RSS is read."""


def run_memory(ctx: BenchContext) -> SectionResult:
    """Measure section 4 on database DB_MEMORY."""
    plan = ctx.plan
    section = SectionResult("memory")
    curve: list[dict[str, int]] = []
    flush(DB_MEMORY)
    try:
        with ctx.fleet(DB_MEMORY, "memory") as fleet:
            worker = fleet.start("bench-memory-0")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_MEMORY)))
            done = 0
            for checkpoint in plan.memory_checkpoints:
                ids = [client.submit(tiny_job(seed)) for seed in range(done, checkpoint)]
                wait_all(client, ids)
                done = checkpoint
                time.sleep(SETTLE_S)
                pid = worker.pool_pid()
                curve.append(
                    {"jobs": done, "pool_pid": pid, "rss_kb": rss_kb(pid), "parent_rss_kb": rss_kb(worker.proc.pid)}
                )
    finally:
        flush(DB_MEMORY)
    _figures(section, curve, plan.memory_report)
    section.data["curve"] = curve
    section.notes.append(
        "VmRSS of the prefork pool child (the process running the tasks), one worker, tiny jobs; one run "
        "(n=1): RSS is a reading, not a timing; the full curve is in the JSON"
    )
    if len({point["pool_pid"] for point in curve}) > 1:
        section.notes.append("the pool child was replaced during the run: growth compares different processes")
    return section


def _figures(section: SectionResult, curve: list[dict[str, int]], shown: tuple[int, ...]) -> None:
    first = curve[0]
    for point in curve:
        if point["jobs"] not in shown:
            continue
        section.add(f"worker RSS after {point['jobs']} job(s)", "MB", value=point["rss_kb"] / 1024)
        if point is not first:
            growth = (point["rss_kb"] - first["rss_kb"]) / first["rss_kb"] * 100
            section.add(f"  growth 1 -> {point['jobs']} jobs", "%", value=growth)
    last, middle = curve[-1], next((p for p in curve if p["jobs"] >= curve[-1]["jobs"] // 5), curve[0])
    if last["jobs"] > middle["jobs"]:
        per_job = (last["rss_kb"] - middle["rss_kb"]) / (last["jobs"] - middle["jobs"])
        section.add(
            f"  growth per job, {middle['jobs']} -> {last['jobs']}", "kB/job", value=per_job, note="leak indicator"
        )
