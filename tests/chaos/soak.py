"""The chaos soak: jobs run for minutes on a fleet while faults are injected; only invariants are checked.

A redis-server of its own (AOF, own port and directory) and `BTQ_SOAK_WORKERS` worker nodes run jobs
(`BTQ_SOAK_INFLIGHT` at a time, at most `BTQ_SOAK_JOBS`) for `BTQ_SOAK_MINUTES`, while a fault injector
(`tests/chaos/soak_faults.py`, seeded by `BTQ_SOAK_SEED`) SIGKILLs pool children and whole nodes,
SIGSTOPs and resumes nodes, restarts Redis and drops queued messages every few seconds. Then faults stop,
every job is awaited, and the invariants of `tests/chaos/soak_invariants.py` are checked. A table is
printed and the figures are written as JSON to `bench/results/`.

Run it with `make chaos-soak` (30 minutes by default) or `python -m tests.chaos.soak`; a bounded run
is part of the default test suite (`tests/chaos/test_soak.py`).
"""

import contextlib
import io
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.events import EventType, JobEvent
from btq.schemas.result import JobResult
from tests.chaos.soak_faults import KINDS, Fault, FaultInjector
from tests.chaos.soak_invariants import Violation, check_job, check_writes
from tests.chaos.test_redis_restart import AofRedis
from tests.conftest import ROOT, Fleet, wait_until
from tests.integration.test_parity import spec
from tests.reference import Reference, canonical, run_reference

LEASE_TTL_S = 4.0
SOAK_ENV = {
    # Recovery in seconds rather than the defaults' half minute, so a soak of minutes sees many faults.
    "BTQ_STEP_LEASE_TTL_S": str(LEASE_TTL_S),
    "BTQ_SWEEP_INTERVAL_S": "1",
    "BTQ_SHARD_LEASE_TTL_S": "4",
    "BTQ_JOB_STALL_TIMEOUT_S": "20",
    # Faults hit the same step again and again by chance; the cap would fail it and change the result.
    "BTQ_MAX_DELIVERIES_PER_STEP": "50",
}
STRATEGIES = ["p -> p", "p -> w -> p", "w -> p", "p"]
_STEP_EVENTS = {EventType.STEP_STARTED, EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED}


@dataclass(frozen=True)
class SoakConfig:
    """What to run; every field from a `BTQ_SOAK_*` variable."""

    minutes: float = 30.0
    jobs: int = 10_000
    seed: int = 1
    workers: int = 3
    inflight: int = 5
    fault_every_s: tuple[float, float] = (4.0, 10.0)

    @classmethod
    def from_env(cls, minutes: float = 30.0) -> "SoakConfig":
        """Read `BTQ_SOAK_MINUTES`, `_JOBS`, `_SEED`, `_WORKERS`, `_INFLIGHT`, `_FAULT_EVERY_S` ("4,10")."""
        env = os.environ.get
        low, high = (float(x) for x in env("BTQ_SOAK_FAULT_EVERY_S", "4,10").split(","))
        return cls(
            minutes=float(env("BTQ_SOAK_MINUTES", str(minutes))),
            jobs=int(env("BTQ_SOAK_JOBS", "10000")),
            seed=int(env("BTQ_SOAK_SEED", str(int(time.time())))),
            workers=int(env("BTQ_SOAK_WORKERS", "3")),
            inflight=int(env("BTQ_SOAK_INFLIGHT", "5")),
            fault_every_s=(low, high),
        )


@dataclass
class SoakReport:
    """What a soak did and found."""

    config: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    terminal: int = 0
    duration_s: float = 0.0

    def table(self) -> str:
        """The human-readable summary: faults and recovery per kind, jobs, violations."""
        lines = [f"{'fault kind':14s} {'injected':>8s} {'hit steps':>9s} {'p50 s':>7s} {'p95 s':>7s} {'max s':>7s}"]
        for kind in KINDS:
            of_kind = [f for f in self.faults if f.kind == kind]
            times = sorted(f.recovery_s for f in of_kind if f.recovery_s is not None)
            cells = [f"{_pct(times, q):7.1f}" if times else f"{'-':>7s}" for q in (50, 95, 100)]
            hit = sum(1 for f in of_kind if f.affected)
            lines.append(f"{kind:14s} {len(of_kind):8d} {hit:9d} {' '.join(cells)}")
        lines.append(f"{'total':14s} {len(self.faults):8d}")
        lines.append(
            f"jobs: {len(self.jobs)} submitted, {self.terminal} terminal; invariant violations: {len(self.violations)}"
        )
        lines += [f"  VIOLATION {v.job_id}: {v.invariant}: {v.detail}" for v in self.violations[:20]]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """The figures for bench/results/ (per-kind summary and every fault)."""
        kinds = {}
        for kind in KINDS:
            times = sorted(f.recovery_s for f in self.faults if f.kind == kind and f.recovery_s is not None)
            kinds[kind] = {
                "injected": sum(1 for f in self.faults if f.kind == kind),
                "recovery_s": {q: round(_pct(times, p), 2) for q, p in (("p50", 50), ("p95", 95), ("max", 100))}
                if times
                else None,
            }
        return {
            "config": self.config,
            "duration_s": round(self.duration_s, 1),
            "jobs": len(self.jobs),
            "terminal": self.terminal,
            "violations": [asdict(v) for v in self.violations],
            "faults_by_kind": kinds,
            "faults": [asdict(f) for f in self.faults],
        }


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[rank]


class RecordWrites:
    """Counts successful SETs of step records through keyspace notifications (reconnecting across restarts)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.writes: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="soak-writes", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            # No retries inside redis-py: a pubsub that reconnects by itself would subscribe again next to
            # the one made here, and every write would be counted twice.
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                # A restarted Redis accepts PSUBSCRIBE while it replays its AOF, and the replay's SETs are
                # notified like new writes: subscribe only once it has loaded (a write in between is missed,
                # which can only hide a double write, never invent one).
                while client.info("persistence").get("loading") and not self._stop.is_set():
                    self._stop.wait(0.1)
                pubsub.psubscribe("__keyspace@0__:btq:job:*:step:*")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1)
                    if message and message["type"] == "pmessage" and message["data"] == b"set":
                        key = message["channel"].decode().split(":", 1)[1]
                        self.writes[key] += 1
                        self.times.setdefault(key, []).append(time.time())
            except redis.RedisError:
                self._stop.wait(0.2)  # Redis restarting: subscribe again once it answers
            finally:
                pubsub.close()
                client.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Undisturbed:
    """In-process dspy.BetterTogether results of the soak's specs, computed once per distinct spec."""

    def __init__(self) -> None:
        self._refs: dict[str, Reference] = {}

    def assert_same(self, result: JobResult, job: dict[str, Any]) -> None:
        key = json.dumps(job, sort_keys=True)
        if key not in self._refs:
            quiet = logging.getLogger("dspy")
            level, quiet.level = quiet.level, logging.WARNING  # dspy's progress, not the soak's table
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    self._refs[key] = run_reference(job)
            finally:
                quiet.setLevel(level)
        ref = self._refs[key]
        got = [(c.strategy, c.score, canonical(c.program_state)) for c in result.candidates]
        assert [g[:2] for g in got] == [r[:2] for r in ref.candidates], f"scores {got} != {ref.candidates}"
        assert got == ref.candidates, "program states differ"
        assert result.best is not None
        assert (result.best.strategy, result.best.score, canonical(result.best.program_state)) == ref.best
        assert result.flag_compilation_error_occurred is ref.flag


def soak_spec(rng: random.Random) -> dict[str, Any]:
    """One job: a strategy and seed drawn from a small set (the undisturbed results are reused)."""
    job = spec(rng.choice(STRATEGIES), "given", True, rng.randint(1, 4), lm="t.sim_slow")
    job["optimizers"]["p"] = {
        "optimizer": "BootstrapFewShotWithRandomSearch",
        "kwargs": {"num_candidate_programs": 3, "max_bootstrapped_demos": 2, "max_labeled_demos": 3},
    }
    return job


def run_soak(config: SoakConfig, log: Any = print) -> SoakReport:
    """Run one soak and return its report (the caller decides whether violations fail)."""
    report = SoakReport(config={**asdict(config), "lease_ttl_s": LEASE_TTL_S})
    rng = random.Random(config.seed)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="btq-soak-") as tmp:
        server = AofRedis(Path(tmp), ["--notify-keyspace-events", "K$"])
        server.start()
        fleet = Fleet(url=server.url, queue="btq-soak", artifact_dir=tmp, extra_env=SOAK_ENV)
        writes = RecordWrites(server.url)
        try:
            names = [f"soak{i}" for i in range(config.workers)]
            for name in names:
                fleet.start(name)
            fleet.wait_ready(names, timeout_s=180)
            live = redis.Redis.from_url(server.url)
            wait_until(lambda: live.zcard("btq:workers") >= len(names), 60, "every worker's manifest")
            injector = FaultInjector(fleet, server, rng, LEASE_TTL_S)
            specs = _drive(config, fleet, injector, rng, report, log)
            log(f"soak: faults stop after {time.time() - started:.0f} s; waiting for every job")
            injector.settle()
            fleet.wait_ready(names, timeout_s=180)
            _finish(fleet.client(), specs, report, writes)
        finally:
            writes.stop()
            fleet.stop()
            server.stop()
    report.duration_s = time.time() - started
    return report


def _drive(
    config: SoakConfig, fleet: Fleet, injector: FaultInjector, rng: random.Random, report: SoakReport, log: Any
) -> dict[str, dict[str, Any]]:
    """Submit jobs and inject faults until the soak's time is up; return the submitted specs by job id."""
    client = fleet.client()
    specs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + config.minutes * 60
    next_fault = time.monotonic() + rng.uniform(*config.fault_every_s)
    while time.monotonic() < deadline:
        try:
            running = [j for j in specs if not client.redis.exists(f"btq:job:{j}:result")]
            while len(running) < config.inflight and len(specs) < config.jobs:
                job = soak_spec(rng)
                job_id = client.submit(job)
                specs[job_id] = job
                running.append(job_id)
            if time.monotonic() >= next_fault:
                fault = injector.inject(rng.choice(KINDS))
                if fault is not None:
                    report.faults.append(fault)
                    log(f"soak: {len(report.faults):4d} {fault.kind:13s} {fault.target} hit {fault.affected}")
                next_fault = time.monotonic() + rng.uniform(*config.fault_every_s)
        except redis.RedisError:
            pass  # Redis restarting under the harness too: try again
        time.sleep(0.5)  # the harness's own pace between submissions and faults
    return specs


def _finish(client: JobClient, specs: dict[str, dict[str, Any]], report: SoakReport, writes: RecordWrites) -> None:
    """Await every job (bounded), then check every invariant and read recovery times from the streams."""
    deadline = time.monotonic() + 600
    pending = set(specs)
    while pending and time.monotonic() < deadline:
        # A job is done once its result AND its terminal event are out: the finalizer appends the event just
        # after storing the result, and a finalizer killed or stopped in between leaves it to the redelivered
        # task (seconds later). Checking the stream as soon as the result exists once read 0 terminal events
        # of a job whose event came moments later; one that never comes is still a violation after the bound.
        pending = {
            j
            for j in pending
            if client.redis.exists(f"btq:job:{j}:result", keys.terminal_marker(j)) < 2  # both keys, or wait
        }
        time.sleep(0.5)  # poll interval of the bounded wait above
    undisturbed = Undisturbed()
    events: dict[str, list[JobEvent]] = {}
    for job_id, job in specs.items():
        report.violations += check_job(client, job_id, job, undisturbed.assert_same)
        events[job_id] = [e for _, e in client.events(job_id)]
        report.jobs[job_id] = {"strategy": job["strategy"], "seed": job["seed"]}
    report.terminal = sum(1 for j in specs if client.redis.exists(f"btq:job:{j}:result"))
    report.violations += check_writes(writes.writes, writes.times)
    for fault in report.faults:
        fault.recovery_s = _recovery_s(fault, events)


def _recovery_s(fault: Fault, events: dict[str, list[JobEvent]]) -> float | None:
    """Time from the fault to the next start or outcome of every step it hit (any step, for a Redis restart)."""
    if fault.kind == "redis_restart":
        after = [e.at for stream in events.values() for e in stream if e.type in _STEP_EVENTS and e.at > fault.at]
        return min(after) - fault.at if after else None
    waits = []
    for job_id, index in fault.affected:
        after = [
            e.at
            for e in events.get(job_id, [])
            if e.at > fault.at and ((e.type in _STEP_EVENTS and e.step_index == index) or e.type.is_terminal)
        ]
        if after:
            waits.append(min(after) - fault.at)
    return max(waits) if waits else None


def write_results(report: SoakReport) -> Path:
    """Write the report's JSON to bench/results/chaos-soak-<time>.json and return the path."""
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"chaos-soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report.as_json(), indent=2))
    return path


def main() -> int:
    """`make chaos-soak`: run, print the table, write the JSON; exit 1 on any invariant violation."""
    report = run_soak(SoakConfig.from_env())
    print(report.table())
    print(f"results: {write_results(report)}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
