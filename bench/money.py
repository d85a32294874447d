"""Section: what metering costs per LM call, and how close a rate-limited fleet runs to its limit.

Per-call overhead: one process makes LM calls on the simulated LM at 0 ms latency (cache off), with no
meter, with the meter alone (accounting), with a budget (atomic Redis reservations), and with a budget
plus a fleet rate limit too high to ever wait (one Redis round trip per call). The difference to the
unmetered run, per call, is the overhead.

Throughput: four worker processes call a stub OpenAI-compatible provider that allows `STUB_RPM`
requests per minute (checked over 2-second windows) and answers 429 above it. With a fleet limit of 90 %
of that, the provider should see no 429 and the requests per minute should come close to the limit;
without it, the same fleet runs into the provider's limit (429s counted).
"""

import json
import time
from typing import Any

import dspy
import redis

from bench.config import DB_OVERHEAD
from bench.context import BenchContext
from bench.redis_dbs import db_url, flush
from bench.report import SectionResult
from bench.stats import summarize
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas.usage import Budget
from btq.worker.core.metering import Meter, metering
from btq.worker.lm.simulated import simulated_lm
from btq.worker.settings import LMRateLimit, WorkerSettings
from btq.worker.state.fleet_gate import FleetMetering

STUB_RPM = 600
FLEET_RPM = 540
STUB_KEY = "sk-bench"


def _calls(predict: dspy.Module, calls: int, offset: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        predict(question=f"What is {offset + i} + 1?")
    return (time.perf_counter() - started) / calls * 1000


def _overhead(section: SectionResult, calls: int, reps: int) -> None:
    client = redis.Redis.from_url(db_url(DB_OVERHEAD))
    predict = dspy.Predict("question -> answer")
    budget = Budget(max_lm_calls=10**9, max_tokens=10**12)
    modes: dict[str, Any] = {
        "none": None,
        "accounting": WorkerSettings(),
        "accounting + budget": WorkerSettings(),
        "accounting + budget + rate limit": WorkerSettings(lm_rate_limits={"sim": LMRateLimit(rpm=10**9, tpm=10**12)}),
    }
    samples: dict[str, list[float]] = {name: [] for name in modes}
    with dspy.context(lm=simulated_lm("sim/bench-money"), disable_history=True):
        _calls(predict, 50, -1000)  # warm-up: dspy's and pydantic's first-use costs
        for rep in range(reps):
            for name, settings in modes.items():
                offset = rep * 100_000
                if settings is None:
                    samples[name].append(_calls(predict, calls, offset))
                    continue
                fleet = FleetMetering(client, settings)
                job_budget = budget if "budget" in name else None
                with fleet.metered(f"bench-money-{rep}-{len(name)}", 1, job_budget):
                    samples[name].append(_calls(predict, calls, offset))
    base = summarize(samples["none"]).median
    section.add("LM call, unmetered (0 ms LM)", "ms", summarize(samples["none"]))
    for name in list(modes)[1:]:
        extra = [s - base for s in samples[name]]
        section.add(f"overhead per call: {name}", "ms", summarize(extra), note="target <= 0.2 ms")
    # The meter alone, without dspy around it: its own cost per call.
    meter = Meter()
    started = time.perf_counter()
    with metering(meter):
        for _ in range(calls):
            meter.add(calls=1, prompt_tokens=100, completion_tokens=10, unpriced_calls=1)
    section.add("meter.add alone", "ms", summarize([(time.perf_counter() - started) / calls * 1000]))
    client.close()


def _stub_job(seed: int) -> dict[str, Any]:
    return {
        "program": {"name": "demo.qa"},
        "lm": {"model": "openai/gpt-4o-mini", "kwargs": {"cache": False, "temperature": 0.0}},
        "metric": "demo.exact_match",
        "optimizers": {"p": {"optimizer": "LabeledFewShot", "kwargs": {"k": 2}}},
        "strategy": "p",
        "trainset": {"dataset": "bench.eval", "split": "train"},
        "valset": {"dataset": "bench.eval", "split": "val"},
        "seed": seed,
        "cache": False,
    }


def _throughput(ctx: BenchContext, section: SectionResult, limited: bool) -> None:
    from tests.stub_openai import StubOpenAI

    stub = StubOpenAI()
    stub.rpm_limit = STUB_RPM
    env = {
        "BTQ_LM_API_BASES": json.dumps({"openai": stub.url}),
        "BTQ_LM_API_KEYS": json.dumps({"openai": STUB_KEY}),
        "BTQ_SHARD_MIN_EXAMPLES": "2",
    }
    if limited:
        env["BTQ_LM_RATE_LIMITS"] = json.dumps({"openai": {"rpm": FLEET_RPM}})
    flush(DB_OVERHEAD)
    label = "fleet limit" if limited else "no fleet limit"
    try:
        with ctx.fleet(DB_OVERHEAD, f"money-{'limited' if limited else 'free'}", env) as fleet:
            for i in range(4):
                fleet.start(f"m{i}")
            client = JobClient(ProducerSettings(redis_url=db_url(DB_OVERHEAD)))
            started = time.monotonic()
            result = client.wait(client.submit(_stub_job(3)), timeout_s=600)
            elapsed = time.monotonic() - started
    finally:
        stub.close()
    answered, _, _, rejected = stub.counts()
    rpm = 60 * answered / elapsed
    section.add(
        f"4 workers, {label}: requests/min",
        "rpm",
        summarize([rpm]),
        note=f"provider allows {STUB_RPM}/min; fleet limit {FLEET_RPM if limited else 'none'}; "
        f"{answered} requests in {elapsed:.1f} s ({100 * rpm / FLEET_RPM:.0f}% of {FLEET_RPM})",
    )
    section.add(f"4 workers, {label}: 429s from the provider", "count", summarize([float(rejected)]))
    section.data[f"throughput_{'limited' if limited else 'free'}"] = {
        "requests": answered,
        "rejected_429": rejected,
        "elapsed_s": elapsed,
        "state": result.state.value,
        "scores": [c.score for c in result.candidates],
    }


def run_money(ctx: BenchContext) -> SectionResult:
    """Per-call metering overhead and rate-limited throughput (see module docstring)."""
    section = SectionResult("money")
    _overhead(section, calls=200 if ctx.quick else 1000, reps=2 if ctx.quick else 5)
    _throughput(ctx, section, limited=True)
    _throughput(ctx, section, limited=False)
    flush(DB_OVERHEAD)
    return section
