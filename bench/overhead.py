"""Section 1: what running the three-step job through one worker adds over running it in process.

Each repetition runs the job both ways back to back (the order alternates, so drift on the shared
machine does not always favour one side) and the ratio is taken per pair. The added time per step is
then split into parts measured three ways: event timestamps (enqueue to start, finalize), the step
records' own timings (program load), and microbenchmarks of the real store and emitter.
"""

from dataclasses import dataclass
from pathlib import Path

import redis

from bench.config import DB_OVERHEAD
from bench.context import BenchContext
from bench.inprocess import parity, run_in_process
from bench.jobs import STRATEGY, DistributedRun, event_times, run_job, step_records, three_step_job
from bench.micro import bench_emit, bench_put_step, bench_reads
from bench.redis_dbs import connect, db_url, flush
from bench.report import SectionResult
from bench.stats import Summary, summarize
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.events import EventType
from btq.schemas.result import StepRecord

STEPS = len(STRATEGY.split(" -> "))
TASKS = STEPS + 1
"""Step tasks per job: the baseline evaluation plus one per strategy key; per-step figures divide by it."""


@dataclass
class Rep:
    """One paired repetition: in-process and distributed wall times and the distributed run's parts."""

    in_process_s: float
    distributed_s: float
    enqueue_to_start_s: float
    load_s: float
    finalize_s: float
    in_process_copies_s: float
    parity: str

    @property
    def added_per_step_s(self) -> float:
        """Distributed minus in-process wall time, per step task."""
        return (self.distributed_s - self.in_process_s) / TASKS


def _parts(run: DistributedRun, records: list[StepRecord]) -> tuple[float, float, float]:
    """Return (sum of enqueue-to-start gaps, sum of program loads, finalize gap) of one job, seconds."""
    at = event_times(run.events)
    gaps = at[(EventType.STEP_STARTED, 0)] - at[(EventType.JOB_SUBMITTED, None)]
    for k in range(1, TASKS):
        gaps += at[(EventType.STEP_STARTED, k)] - at[(EventType.STEP_SUCCEEDED, k - 1)]
    finalize = at[(EventType.JOB_SUCCEEDED, None)] - at[(EventType.STEP_SUCCEEDED, TASKS - 1)]
    loads = sum(r.timings_s.get("load_s", 0.0) for r in records)
    return gaps, loads, finalize


def _one_rep(
    client: JobClient, store: "redis.Redis", latency_ms: int, artifacts: Path, rep: int
) -> tuple[Rep, DistributedRun]:
    def distributed() -> DistributedRun:
        return run_job(client, three_step_job(latency_ms))

    # Alternate which side runs first, so a slow phase of the shared machine hits both sides.
    if rep % 2 == 0:
        local, run = run_in_process(latency_ms, artifacts), distributed()
    else:
        run = distributed()
        local = run_in_process(latency_ms, artifacts)
    gaps, loads, finalize = _parts(run, step_records(store, run.job_id, STEPS))
    sample = Rep(local.wall_s, run.wall_s, gaps, loads, finalize, local.deepcopy_s, parity(local, run.result))
    return sample, run


@dataclass
class Micro:
    """Per-call microbenchmarks (ms) and the size of the record used."""

    put_step: Summary
    reads: Summary
    emit: Summary
    record_bytes: int


def _micro(store: "redis.Redis", run: DistributedRun, calls: int) -> Micro:
    record = step_records(store, run.job_id, STEPS)[-1]  # the last candidate: the largest program state
    return Micro(
        put_step=bench_put_step(store, record, calls),
        reads=bench_reads(store, run.job_id, record.index, calls),
        emit=bench_emit(store, calls),
        record_bytes=len(record.model_dump_json()),
    )


def run_overhead(ctx: BenchContext) -> SectionResult:
    """Measure section 1 on database DB_OVERHEAD with one worker."""
    section = SectionResult("overhead")
    flush(DB_OVERHEAD)
    artifacts = ctx.workdir / "overhead" / "in-process-artifacts"
    store = connect(DB_OVERHEAD)
    try:
        with ctx.fleet(DB_OVERHEAD, "overhead") as fleet:
            fleet.start("bench-overhead-0")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_OVERHEAD)))
            # Warm-up, untimed: the worker's pool child imports the registry and dspy paths on first use.
            run_in_process(0, artifacts)
            last = run_job(client, three_step_job(0))
            reps: dict[int, list[Rep]] = {}
            for latency_ms in ctx.plan.overhead_latencies_ms:
                reps[latency_ms] = []
                for rep in range(ctx.plan.overhead_reps):
                    sample, last = _one_rep(client, store, latency_ms, artifacts, rep)
                    reps[latency_ms].append(sample)
        micro = _micro(store, last, ctx.plan.micro_calls)
    finally:
        store.close()
        flush(DB_OVERHEAD)
    for latency_ms, samples in reps.items():
        _figures(section, latency_ms, samples, micro)
    _micro_figures(section, micro)
    section.data = {
        "reps": {str(k): [vars(r) for r in v] for k, v in reps.items()},
        "micro_ms": {"put_step": micro.put_step, "reads": micro.reads, "emit": micro.emit},
        "record_bytes": micro.record_bytes,
    }
    section.notes += [
        "per step = per step task (baseline + 3 strategy steps = 4); added = (distributed - in-process) / 4",
        "enqueue->start = step.started.at - previous step.succeeded.at (baseline: - job.submitted.at); it "
        "includes the step's own Redis reads (the 'reads' row) and the previous succeeded-event XADD",
        "store/reads/emit rows are microbenchmarks of the real JobStore/EventEmitter on this Redis; a step "
        "emits 2 events; 'copies' = one Module.deepcopy per candidate, which BetterTogether does in process "
        "and a worker does not (it dumps state), so it is subtracted; 'other' = added - sum of measured "
        "parts: per-step job resolution, program dump, submit-side validation, result observation, and the "
        "noise of two wall times on a shared machine",
    ]
    section.failures += [
        f"parity {r.parity} at {k} ms (distributed candidates differ from in-process)"
        for k, v in reps.items()
        for r in v
        if r.parity != "ok"
    ]
    return section


def _figures(section: SectionResult, latency_ms: int, reps: list[Rep], micro: Micro) -> None:
    """Add one latency's block: wall times, their ratio, and the added time per step split in parts."""
    label = f"{latency_ms} ms LM"
    ok = sum(r.parity == "ok" for r in reps)
    verdict = f"parity {'ok' if ok == len(reps) else 'MISMATCH'} {ok}/{len(reps)}"
    section.add(f"in-process wall, {label}", "s", summarize([r.in_process_s for r in reps]))
    section.add(f"distributed wall, {label}", "s", summarize([r.distributed_s for r in reps]), note="1 worker")
    ratios = summarize([r.distributed_s / r.in_process_s for r in reps])
    section.add(f"ratio distributed/in-process, {label}", "x", ratios, note=verdict)

    def per_step(values_s: list[float]) -> Summary:
        return summarize([v / TASKS * 1000 for v in values_s])

    # Parts outside the event gaps: one put_step and one emit per step. The other emit (step.succeeded)
    # is stamped before its XADD, so its XADD already falls inside the next enqueue->start gap.
    # BetterTogether's candidate deepcopies happen only in process, so they count against the added time.
    outside_gaps_ms = micro.put_step.median + micro.emit.median
    measured = [
        (r.enqueue_to_start_s + r.load_s + r.finalize_s - r.in_process_copies_s) / TASKS * 1000 + outside_gaps_ms
        for r in reps
    ]
    other = [r.added_per_step_s * 1000 - m for r, m in zip(reps, measured, strict=True)]
    section.add(
        f"added per step, {label}",
        "ms/step",
        summarize([r.added_per_step_s * 1000 for r in reps]),
        note="wall-time difference / 4",
    )
    section.add("  sum of measured parts", "ms/step", summarize(measured), note="rows below; emit once, copies minus")
    section.add("  enqueue->start", "ms/step", per_step([r.enqueue_to_start_s for r in reps]), note="events")
    section.add("  program load", "ms/step", per_step([r.load_s for r in reps]), note="timings_s.load_s")
    section.add("  candidate store", "ms/step", micro.put_step, note=f"micro put_step, {micro.record_bytes} B")
    section.add("  event emit x2", "ms/step", micro.emit.scaled(2), note="micro emit")
    section.add("  finalize", "ms/step", per_step([r.finalize_s for r in reps]), note="events, per job / 4")
    section.add(
        "  in-process only: copies",
        "ms/step",
        per_step([r.in_process_copies_s for r in reps]),
        note="BetterTogether deepcopies candidates",
    )
    section.add("  other (residual)", "ms/step", summarize(other), note="added - sum; see notes")


def _micro_figures(section: SectionResult, micro: Micro) -> None:
    """Add the microbenchmarks that are not already a row of the per-step split."""
    section.add("step reads (part of enq->start)", "ms/step", micro.reads, note="micro: spec, records, attempt, cancel")
