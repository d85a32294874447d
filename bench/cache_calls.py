"""Section: LM calls with the shared cache: a cold run, a warm identical re-run, and a step redelivered
after its worker was SIGKILLed at 80% of an evaluation (with the cache, and without it for comparison).

The LM counts the calls it answers in Redis. Repeated calls of a crash = calls of the killed run minus
calls of the same job run undisturbed. The fleet uses a short visibility timeout so the dead worker's
step comes back within seconds.
"""

import os
import signal
import statistics
import time
from typing import Any

import redis

from bench.config import DB_CACHE
from bench.context import BenchContext
from bench.fleet import Fleet
from bench.jobs import JOB_TIMEOUT_S
from bench.redis_dbs import db_url, flush
from bench.registry import COUNTED_LM, EVAL_DATASET, LM_CALLS_KEY
from bench.report import SectionResult
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys

CRASH_ENV = {"BTQ_VISIBILITY_TIMEOUT_S": "6", "BTQ_UNACKED_RESTORE_INTERVAL_S": "1", "BTQ_STEP_LEASE_TTL_S": "3"}


LATE_EVALUATION = 5
"""BootstrapFewShotWithRandomSearch with 2 candidates evaluates 5 programs, then the step scores the winner."""


def cached_job(valset: int, cache: bool) -> dict[str, Any]:
    """A `p -> w -> p` job on the counting LM (one example at a time per process)."""
    from bench.registry import eval_splits

    val = [{"question": e.question, "answer": e.answer} for e in eval_splits()["val"][:valset]]
    p = {"optimizer": "BootstrapFewShotWithRandomSearch", "kwargs": {"num_candidate_programs": 2, "num_threads": 1}}
    return {
        "program": {"name": "demo.qa"},
        "lm": COUNTED_LM,
        "metric": "demo.exact_match",
        "strategy": "p -> w -> p",
        "optimizers": {"p": p, "w": {"optimizer": "BootstrapFinetune"}},
        "trainset": {"dataset": EVAL_DATASET, "split": "train"},
        "valset": val,
        "input_keys": ["question"],
        "num_threads": 1,
        "seed": 5,
        "cache": cache,
    }


def _calls(client: redis.Redis) -> int:
    return int(client.get(LM_CALLS_KEY) or 0)


def _forget_cache(client: redis.Redis) -> None:
    for key in client.scan_iter(f"{keys.LM_CACHE}:*"):
        client.delete(key)


def _run(client: JobClient, counter: redis.Redis, job: dict[str, Any]) -> tuple[int, float | None]:
    before = _calls(counter)
    result = client.wait(client.submit(job), JOB_TIMEOUT_S)
    return _calls(counter) - before, result.best.score if result.best else None


def _run_killed(fleet: Fleet, client: JobClient, counter: redis.Redis, job: dict[str, Any]) -> tuple[int, float | None]:
    """Run `job`, SIGKILL the node running step 1 at 80% of its last candidate evaluation, let it be recovered."""
    before = _calls(counter)
    job_id = client.submit(job)
    victim = None
    for event in client.follow(job_id, JOB_TIMEOUT_S):
        detail = event.detail or {}
        total, done = detail.get("shards_total"), detail.get("shards_done")
        # The last candidate's evaluation of step 1: bootstrapping and the earlier evaluations are done.
        seq = detail.get("evaluation")
        late = isinstance(seq, int) and seq >= LATE_EVALUATION
        evaluating = event.step_index == 1 and detail.get("phase") == "evaluate" and late
        if evaluating and isinstance(total, int) and isinstance(done, int) and total and done >= 0.8 * total:
            victim = (event.worker or "").split("@")[0]
            break
    worker = next(w for w in fleet.workers if w.name == victim)
    for pid in worker.pids():
        os.kill(pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    fleet.start(f"{victim}-again")  # the fleet keeps its size
    result = client.wait(job_id, JOB_TIMEOUT_S * 2)
    return _calls(counter) - before, result.best.score if result.best else None


CALL_COST_CALLS = 300
"""Distinct LM calls per timed pass of the in-process cache cost."""

CALL_COST_ROUNDS = 5
"""Rounds of (off, cold, warm) passes, interleaved so machine load weighs on each alike; medians are kept."""


def cache_cost_ms(calls: int = CALL_COST_CALLS, rounds: int = CALL_COST_ROUNDS) -> dict[str, float]:
    """Return ms per LM call (wall and CPU) at 0 ms LM latency: cache off, cold and warm, in this process.

    The shared cache is installed as in a worker, on bench database DB_CACHE; the calls go through a
    `dspy.Predict` on the simulated LM, each with a distinct question, so a cold pass misses every time and
    the warm pass after it (a new context: no in-process tier) reads every value from Redis. CPU is the
    process's (the cache's writer thread included). Each figure is the median of `rounds` rounds.
    """
    import dspy

    from bench.registry import MODEL
    from btq.worker.lm.simulated import simulated_lm
    from btq.worker.state import lm_cache

    flush(DB_CACHE)
    client = redis.Redis.from_url(db_url(DB_CACHE))
    lm_cache.install_cache(client, 3600, 1_000_000, 1_000_000)
    program = dspy.Predict("question -> answer")
    lm = simulated_lm(MODEL, task="arith", latency_ms=0, cache=True)

    def timed(namespace: str | None, questions: list[str]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with dspy.context(lm=lm, disable_history=True, **{lm_cache.NAMESPACE_SETTING: namespace}):
            for question in questions:
                program(question=question)
            flush = getattr(dspy.cache, "flush", None)
            if namespace is not None and flush is not None:
                flush()  # a caching context ends with its writes in Redis, as a step or shard does
        return (time.perf_counter() - wall) * 1000 / calls, (time.process_time() - cpu) * 1000 / calls

    try:
        timed(None, [f"What is {n} + 1?" for n in range(calls)])  # warm-up: imports, adapters, first calls
        passes: dict[str, list[tuple[float, float]]] = {"off": [], "cold": [], "warm": []}
        for round_ in range(rounds):
            # Fresh questions every round: nothing the cache holds is ever asked again by a cold pass.
            questions = [f"What is {n} + {n % 7}? ({round_})" for n in range(calls)]
            passes["off"].append(timed(None, questions))
            passes["cold"].append(timed("bench-cache-cost", questions))
            passes["warm"].append(timed("bench-cache-cost", questions))
        out: dict[str, float] = {"rounds": rounds, "calls": calls}
        for name, figures in passes.items():
            out[f"{name}_ms"] = statistics.median(wall for wall, _ in figures)
            out[f"{name}_cpu_ms"] = statistics.median(cpu for _, cpu in figures)
        return out
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        client.close()
        flush(DB_CACHE)


def run_cache(ctx: BenchContext) -> SectionResult:
    """Count LM calls: cold, warm, and repeated by a crash with and without the cache."""
    section = SectionResult("cache")
    cost = cache_cost_ms()
    for name in ("cold", "warm"):
        section.add(
            f"cache cost per call, {name} (vs off)",
            "ms",
            value=cost[f"{name}_ms"] - cost["off_ms"],
            note=f"CPU {cost[f'{name}_cpu_ms'] - cost['off_cpu_ms']:.3f} ms; target <= 0.5 ms",
        )
    flush(DB_CACHE)
    counter = redis.Redis.from_url(db_url(DB_CACHE))
    figures: dict[str, tuple[int, float | None]] = {}
    try:
        with ctx.fleet(DB_CACHE, "cache", env={**CRASH_ENV, "BTQ_SHARD_MIN_EXAMPLES": "4"}) as fleet:
            for name in ("bench-cache-a", "bench-cache-b"):
                fleet.start(name)
            client = JobClient(ProducerSettings(redis_url=db_url(DB_CACHE)))
            job = cached_job(ctx.plan.cache_valset, cache=True)
            figures["cold"] = _run(client, counter, job)
            figures["warm"] = _run(client, counter, job)
            _forget_cache(counter)
            figures["killed"] = _run_killed(fleet, client, counter, job)
            off = cached_job(ctx.plan.cache_valset, cache=False)
            figures["off"] = _run(client, counter, off)
            figures["off_killed"] = _run_killed(fleet, client, counter, off)
    finally:
        flush(DB_CACHE)
    scores = {score for _, score in figures.values()}
    if len(scores) != 1:
        section.failures.append(f"scores differ between runs: {figures}")
    cold, warm = figures["cold"][0], figures["warm"][0]
    section.add("LM calls, cold run", "calls", value=cold)
    section.add("LM calls, warm identical re-run", "calls", value=warm, note="target 0")
    section.add("calls repeated after SIGKILL at 80%, cache on", "calls", value=figures["killed"][0] - cold)
    section.add(
        "calls repeated after SIGKILL at 80%, cache off",
        "calls",
        value=figures["off_killed"][0] - figures["off"][0],
        note="shard results still resume evaluations",
    )
    section.data = {name: {"calls": calls, "best": score} for name, (calls, score) in figures.items()}
    section.data["cost_ms_per_call"] = cost
    section.notes.append(
        f"p -> w -> p on a {ctx.plan.cache_valset}-example valset, 2 workers; the killed node runs step 1 and "
        "dies once 80% of its fifth evaluation's shards are done (after bootstrapping); a fresh worker replaces it"
    )
    return section
