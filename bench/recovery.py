"""`python -m bench.recovery`: seconds from a SIGKILL mid-step to the step running again, default settings.

Two worker nodes (prefork, one child each) serve a `p -> w -> p` job on the simulated LM with 50 ms per
call. When step 1 starts, either its pool child (`child`) or its whole node, main process and child
(`node`), is SIGKILLed; the figure is the time from the kill to the next `step.started` of step 1.
Workers run with default recovery settings (nothing `BTQ_*` but the Redis URL, imports and artifacts).

`BTQ_BENCH_WORKER_ROOT` runs the workers from another checkout (e.g. an export of main) to measure the
behaviour before a change; a recovery slower than `--timeout-s` is printed as `> timeout`.
"""

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

from bench import fleet as bench_fleet
from bench.config import DB_RECOVERY
from bench.fleet import Fleet, children
from bench.jobs import three_step_job
from bench.redis_dbs import db_url, flush
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.schemas.events import EventType

KILL_AFTER_S = 1.0
"""How long into step 1 the kill lands: mid-step, after some LM calls were made."""


def _restart_time(client: JobClient, job_id: str, killed_at: float, timeout_s: float) -> float | None:
    """Return seconds from `killed_at` to step 1's next `step.started`, or None within `timeout_s`."""
    try:
        for event in client.follow(job_id, timeout_s=timeout_s):
            if event.type is EventType.STEP_STARTED and event.step_index == 1 and event.at > killed_at:
                return event.at - killed_at
            if event.type.is_terminal:
                return None
    except TimeoutError:
        return None
    return None


def measure(mode: str, timeout_s: float) -> float | None:
    """Run one trial of `mode` (`child` or `node`); return the recovery time in seconds or None."""
    flush(DB_RECOVERY)
    worker_root = os.environ.get("BTQ_BENCH_WORKER_ROOT")
    if worker_root:  # the workers import another checkout's code; the bench's own code stays the producer
        bench_fleet.ROOT = Path(worker_root)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="btq-recovery-") as tmp, Fleet(DB_RECOVERY, Path(tmp), Path(tmp)) as fleet:
        nodes = [fleet.start("ra"), fleet.start("rb")]
        client = JobClient(ProducerSettings(redis_url=db_url(DB_RECOVERY)))
        job = three_step_job(50)
        job["optimizers"]["p"]["kwargs"]["num_candidate_programs"] = 8  # a step of tens of seconds
        job_id = client.submit(job)
        started = next(
            e for e in client.follow(job_id, timeout_s=120) if e.type is EventType.STEP_STARTED and e.step_index == 1
        )
        assert started.worker is not None
        time.sleep(KILL_AFTER_S)  # let the step make some LM calls before it dies
        node_name = started.worker.split("@")[0]
        node = next(n for n in nodes if n.name == node_name)
        child = int(started.worker.rpartition(":")[2])
        killed_at = time.time()
        os.kill(child, signal.SIGKILL)
        if mode == "node":
            os.kill(node.proc.pid, signal.SIGKILL)
            for pid in children(node.proc.pid):
                os.kill(pid, signal.SIGKILL)
        if client.redis.exists(keys.step_key(job_id, 1)):
            raise RuntimeError("step 1 ended before the kill: make it longer")
        recovered = _restart_time(client, job_id, killed_at, timeout_s)
        if recovered is not None:
            client.wait(job_id, timeout_s=120)
        return recovered


def main() -> int:
    """Print one line per trial: mode, trial, seconds from SIGKILL to the step running again."""
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--mode", action="append", choices=["child", "node"], help="default: both")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=150.0)
    args = parser.parse_args()
    for mode in args.mode or ["child", "node"]:
        for trial in range(args.trials):
            seconds = measure(mode, args.timeout_s)
            shown = f"{seconds:.1f} s" if seconds is not None else f"> {args.timeout_s:.0f} s (not recovered)"
            print(f"recovery {mode:5s} trial {trial + 1}: SIGKILL -> step running again: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
