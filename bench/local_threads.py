"""How llama.cpp server threads should be split between pool processes on one machine.

    python -m bench.local_threads [--n 12] [--processes 2]

Runs `--processes` evaluators at once, each with its own llama.cpp server of the base model (as each pool
process of a worker has), once with every server on all cores and once with the cores split between them,
and prints seconds per call of each layout and their ratio. Needs the `local` extra.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import dspy

from btq.worker.artifacts.store import store_from_url
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.registry import SMOLLM2
from btq.worker.lm.local.tasks.travel import program, trip_splits


def one(n: int) -> float:
    """Evaluate the demo program with 4 demos on `n` validation examples; return seconds per call."""
    provider = LlamaCppProvider(store_from_url(tempfile.mkdtemp(prefix="btq-threads-")))
    lm = provider.lm(SMOLLM2, temperature=0.0, max_tokens=64, stop=["\n\n"])
    splits = trip_splits()
    student = program()
    student.set_lm(lm)
    student.demos = splits["train"][:4]
    try:
        lm.launch()
        began = time.monotonic()
        with dspy.context(adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
            for example in splits["val"][:n]:
                with contextlib.suppress(Exception):  # an unparsable answer still cost its call
                    student(**example.inputs())
        return (time.monotonic() - began) / n
    finally:
        provider.pool.stop_all()


def layout(processes: int, threads: int, n: int) -> float:
    """Run `processes` evaluators at once with `threads` server threads each; return mean s/call."""
    env = {**os.environ, "BTQ_LOCAL_SERVER_N_THREADS": str(threads)}
    argv = [sys.executable, "-m", "bench.local_threads", "--child", "--n", str(n)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    times = [float(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in procs]
    return sum(times) / len(times)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(one(args.n))
        return
    cores = os.cpu_count() or 1
    split = max(1, cores // args.processes)
    baseline = layout(args.processes, cores, args.n)
    shared = layout(args.processes, split, args.n)
    print(
        json.dumps(
            {
                "processes": args.processes,
                "cores": cores,
                f"s_per_call_{cores}_threads_each": round(baseline, 3),
                f"s_per_call_{split}_threads_each": round(shared, 3),
                "ratio_all_cores_over_split": round(baseline / shared, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
