"""Section 2: jobs per minute with 1, 2 and 4 worker processes, many jobs at once, I/O-bound LM.

All four workers are started once (each alone, so start-up stays out of the figures) and each
fleet size gets its own queue: worker i consumes the queues of every size larger than i. A batch for
size n is sent to queue n, so exactly n workers serve it, and sizes can be interleaved within a
repetition instead of growing the fleet once, which would put each size in a different phase of the
shared machine's load.
"""

import time
from dataclasses import dataclass

from bench.config import DB_SCALE
from bench.context import BenchContext
from bench.fleet import Fleet
from bench.jobs import three_step_job, wait_all
from bench.redis_dbs import db_url, flush
from bench.report import SectionResult
from bench.stats import summarize
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings


def queue_for(size: int) -> str:
    """Return the queue that exactly `size` workers consume."""
    return f"bench-scale-{size}"


@dataclass
class Batch:
    """One batch of jobs on `workers` workers."""

    workers: int
    rep: int
    jobs: int
    makespan_s: float
    worker_cpu_s: float

    @property
    def jobs_per_min(self) -> float:
        """Throughput of the batch: jobs divided by first submission to last result."""
        return self.jobs / self.makespan_s * 60

    @property
    def cores_used(self) -> float:
        """Average cores the workers kept busy: near the worker count means CPU-bound, not I/O-bound."""
        return self.worker_cpu_s / self.makespan_s


def _run_batch(fleet: Fleet, size: int, rep: int, jobs: int, latency_ms: int) -> Batch:
    client = JobClient(ProducerSettings(redis_url=db_url(DB_SCALE), queue=queue_for(size)))
    cpu_before = sum(w.cpu_s() for w in fleet.workers)
    started = time.time()
    ids = [client.submit(three_step_job(latency_ms)) for _ in range(jobs)]
    results = wait_all(client, ids)
    failed = [r.job_id for r in results if r.state.value != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} scale jobs did not succeed, e.g. {failed[0]}")
    # The stored results carry the finish time, so the figure does not include our polling delay.
    makespan = max(r.finished_at for r in results) - started
    return Batch(size, rep, jobs, makespan, sum(w.cpu_s() for w in fleet.workers) - cpu_before)


def run_scale(ctx: BenchContext) -> SectionResult:
    """Measure section 2 on database DB_SCALE."""
    plan = ctx.plan
    section = SectionResult("scale")
    sizes = sorted(plan.scale_workers)
    flush(DB_SCALE)
    batches: list[Batch] = []
    try:
        with ctx.fleet(DB_SCALE, "scale") as fleet:
            for i in range(max(sizes)):
                fleet.start(f"bench-scale-{i}", queues=[queue_for(n) for n in sizes if i < n])
            # Warm-up, untimed: two jobs per worker, so every pool child has imported and run once.
            warm = JobClient(ProducerSettings(redis_url=db_url(DB_SCALE), queue=queue_for(max(sizes))))
            wait_all(warm, [warm.submit(three_step_job(0)) for _ in range(2 * max(sizes))])
            for rep in range(plan.scale_reps):
                order = sizes if rep % 2 == 0 else sizes[::-1]
                for size in order:
                    batches.append(_run_batch(fleet, size, rep, plan.scale_jobs, plan.scale_latency_ms))
    finally:
        flush(DB_SCALE)
    _figures(section, batches, sizes)
    section.data = {"batches": [{**vars(b), "jobs_per_min": b.jobs_per_min} for b in batches]}
    section.notes.append(
        f"{plan.scale_jobs} p -> w -> p jobs submitted at once per batch, LM latency {plan.scale_latency_ms} ms "
        f"per call; jobs/min = jobs / (first submit -> last result.finished_at); speedup is paired within a "
        f"repetition; cores used = worker CPU seconds / makespan ({ctx.plan.scale_reps} repetitions)"
    )
    return section


def _figures(section: SectionResult, batches: list[Batch], sizes: list[int]) -> None:
    by_rep = {(b.rep, b.workers): b for b in batches}
    for size in sizes:
        mine = [b for b in batches if b.workers == size]
        note = f"{mine[0].jobs} jobs" if mine else ""
        section.add(f"jobs/min, {size} worker(s)", "jobs/min", summarize([b.jobs_per_min for b in mine]), note=note)
        if size != sizes[0]:
            speedups = [b.jobs_per_min / by_rep[(b.rep, sizes[0])].jobs_per_min for b in mine]
            section.add(f"  speedup vs {sizes[0]}, {size} workers", "x", summarize(speedups), note=f"ideal {size}")
        section.add(
            f"  cores used, {size} worker(s)",
            "cores",
            summarize([b.cores_used for b in mine]),
            note="worker CPU / wall",
        )
