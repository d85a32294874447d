"""Section: what metering costs per LM call, and how close a rate-limited fleet runs to its limit.

Per-call overhead: one process makes LM calls on the simulated LM at 0 ms latency (cache off) with and
without the meter (accounting; paired, interleaved repetitions), then times the gate alone per call: a
budget (atomic Redis reservations of a few calls) and a fleet rate limit too high to ever wait (Redis
hands out the request slots due within 50 ms). Their sum is the per-call overhead.

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


def _gate_ms(client: redis.Redis, settings: WorkerSettings, budget: Budget | None, calls: int, tag: str) -> float:
    """Per-call cost of the gate alone (budget reservation, rate-limit admission) and the meter's counting."""
    metering_ = FleetMetering(client, settings)
    with metering_.metered(f"bench-money-{tag}", 1, budget) as meter:
        assert meter.gate is not None
        started = time.perf_counter()
        for _ in range(calls):
            meter.gate.before_request("sim/bench-money")
            meter.add(calls=1, prompt_tokens=120, completion_tokens=12, unpriced_calls=1)
        return (time.perf_counter() - started) / calls * 1000


def _accounting_ms(calls: int) -> float:
    """Per-call work the metering wrappers add around dspy's call: find the meter, read usage, count."""
    from dspy.clients import execution

    from btq.worker.core import metering as metering_module

    captured: list[Any] = []
    lm = simulated_lm("sim/bench-money")
    original = execution.execute

    def capture(lm_: Any, call: Any) -> Any:
        captured.append(original(lm_, call))
        return captured[-1]

    execution.execute = capture
    try:
        lm("What is 1 + 1?")
    finally:
        execution.execute = original
    result, meter = captured[0], Meter()
    with metering(meter):
        started = time.perf_counter()
        for _ in range(calls):
            metering_module.active()  # once in the attempt wrapper, once in the execute wrapper
            meter.add(calls=1)
            found = metering_module.active()
            assert found is not None
            metering_module._account(found, result)
        return (time.perf_counter() - started) / calls * 1000


def _overhead(section: SectionResult, calls: int, reps: int) -> None:
    """Accounting inside dspy (metered vs unmetered calls, interleaved), then each gate's own cost."""
    client = redis.Redis.from_url(db_url(DB_OVERHEAD))
    predict = dspy.Predict("question -> answer")
    plain: list[float] = []
    metered: list[float] = []
    with dspy.context(lm=simulated_lm("sim/bench-money"), disable_history=True):
        _calls(predict, 50, -1000)  # warm-up: dspy's and pydantic's first-use costs
        for rep in range(reps):
            plain.append(_calls(predict, calls, rep * 100_000))
            with metering(Meter()):
                metered.append(_calls(predict, calls, rep * 100_000 + 50_000))
    section.add("LM call, unmetered (0 ms LM)", "ms", summarize(plain))
    section.add("LM call, metered (accounting)", "ms", summarize(metered), note="noisy on a loaded machine")
    accounting = [_accounting_ms(calls * 10) for _ in range(reps)]
    section.add("overhead per call: accounting", "ms", summarize(accounting), note="the wrappers' own work per call")
    budget = Budget(max_lm_calls=10**9, max_tokens=10**12)
    limits = {"sim": LMRateLimit(rpm=10**9, tpm=10**12)}
    gate_calls = calls * 4
    budget_ms = [_gate_ms(client, WorkerSettings(), budget, gate_calls, f"b{rep}") for rep in range(reps)]
    limit_ms = [
        _gate_ms(client, WorkerSettings(lm_rate_limits=limits), None, gate_calls, f"r{rep}") for rep in range(reps)
    ]
    both_ms = [
        _gate_ms(client, WorkerSettings(lm_rate_limits=limits), budget, gate_calls, f"a{rep}") for rep in range(reps)
    ]
    section.add("overhead per call: budget check", "ms", summarize(budget_ms), note="Redis: one reservation / 8 calls")
    section.add("overhead per call: rate-limit check", "ms", summarize(limit_ms), note="Redis: slots due in 50 ms")
    total = [a + b for a, b in zip(sorted(accounting), sorted(both_ms), strict=True)]
    section.add("overhead per call: accounting + budget + rate limit", "ms", summarize(total), note="target <= 0.2 ms")
    for key in client.scan_iter("btq:job:bench-money-*"):
        client.delete(key)
    client.delete("btq:ratelimit:sim:requests", "btq:ratelimit:sim:tokens")
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
