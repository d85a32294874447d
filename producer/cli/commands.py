"""`btq`: run workers, submit, watch, read results, cancel, export schemas, run the demo."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from btq.producer.client import JobClient
from btq.producer.fleet.liveness import live_workers
from btq.producer.fleet.worker_command import worker_argv, worker_extra_missing
from btq.producer.settings import ProducerSettings
from btq.producer.terminal.render import result_table, show_live
from btq.schemas.exceptions import BtqError, FleetUnavailableError, JobNotFoundError, JobValidationError
from btq.schemas.export import EXPORTED, json_schema_text


def _client() -> JobClient:
    return JobClient(ProducerSettings())


def cmd_worker(args: argparse.Namespace) -> int:
    """Replace this process with a Celery worker for the btq tasks (settings from BTQ_ env)."""
    if missing := worker_extra_missing():
        print(missing, file=sys.stderr)
        return 2
    argv = worker_argv(
        queue=ProducerSettings().queue,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        pool=args.pool,
        name=args.name,
        events=args.events,
    )
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a job file (JSON); with --wait, watch it and print the result."""
    text = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
    client = _client()
    if args.wait:
        require_live_worker(client)
    job_id = client.submit(text)
    if not args.wait:
        print(job_id)
        return 0
    return _watch(client, job_id, args.timeout, as_json=args.json)


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a job's events live (replaying what already happened) until it ends."""
    client = _client()
    if not client.status(args.job_id).state.is_final:  # an unknown id raises JobNotFoundError here
        require_live_worker(client)
    return _watch(client, args.job_id, args.timeout, as_json=args.json)


def require_live_worker(client: JobClient) -> None:
    """Raise FleetUnavailableError unless a live worker consumes the client's queue (bounded, ~1.5 s)."""
    if not live_workers(client.celery, client.settings.queue):
        raise FleetUnavailableError(
            f"no live worker consumes queue {client.settings.queue!r} at {client.settings.redis_url}: "
            "start one with `btq worker`"
        )


def _watch(client: JobClient, job_id: str, timeout_s: float, *, as_json: bool) -> int:
    if as_json:
        for event in client.follow(job_id, timeout_s):
            print(event.model_dump_json(), flush=True)
    else:
        show_live(client.follow(job_id, timeout_s))
    result = client.result(job_id)
    if result is not None and not as_json:
        print()
        result_table(result)
    return 0 if result is not None and result.state.value == "succeeded" else 1


def cmd_result(args: argparse.Namespace) -> int:
    """Print a job's result (table, or the JobResult JSON with --json)."""
    result = _client().result(args.job_id)
    if result is None:
        print(f"job {args.job_id} has no result yet", file=sys.stderr)
        return 3
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        result_table(result)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print a job's state and progress."""
    status = _client().status(args.job_id)
    print(
        status.model_dump_json(indent=2)
        if args.json
        else f"{status.job_id}: {status.state.value}, {status.steps_done}/{status.steps_total} steps"
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Request cancellation of a job."""
    accepted = _client().cancel(args.job_id)
    print("cancel requested" if accepted else "job already ended")
    return 0 if accepted else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a finished job's candidates on a registered dataset split (a held-out test set)."""
    client = _client()
    report = client.evaluate(args.job_id, args.dataset, args.split, timeout_s=args.timeout)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        result = client.result(args.job_id)
        assert result is not None  # evaluate() refuses jobs without a result
        result_table(result, held_out=report)
    if report.error:
        print(f"evaluation failed: {report.error.type}: {report.error.message}", file=sys.stderr)
        return 1
    return 0


def cmd_intake(args: argparse.Namespace) -> int:
    """Serve the intake stream: submissions from services in any language (runs until stopped)."""
    from btq.producer.intake import run_intake

    return run_intake(_client())


def cmd_workers(args: argparse.Namespace) -> int:
    """List the live workers, what each registered and what each is running."""
    from btq.producer.cli.workers import print_workers

    print_workers(_client().fleet.workers(with_running=True), sys.stdout, as_json=args.json)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs newest first (`--state` filters; `--json` for JSON)."""
    from btq.producer.cli.jobs_table import print_jobs

    return print_jobs(_client().redis, state=args.state, limit=args.limit, as_json=args.json)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the web dashboard (jobs, live job timelines, workers) until interrupted."""
    from btq.producer.dashboard.server import serve
    from btq.producer.dashboard.settings import DashboardSettings

    settings = DashboardSettings()
    update = {k: v for k, v in {"dashboard_host": args.host, "dashboard_port": args.port}.items() if v is not None}
    settings = settings.model_copy(update=update)
    if problem := settings.exposure_problem():
        print(problem, file=sys.stderr)
        return 2
    print(f"dashboard on http://{settings.dashboard_host}:{settings.dashboard_port}/", flush=True)
    serve(settings)
    return 0


def cmd_mlflow(args: argparse.Namespace) -> int:
    """Log every job as an MLflow run (nested runs per step), following the event stream until stopped."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        print("btq mlflow needs the mlflow extra: pip install 'bettertogether-queue[mlflow]'", file=sys.stderr)
        return 2
    from btq.producer.mlflow.exporter import serve

    logged = serve(_client().redis, args.tracking_uri, args.experiment, once=args.once)
    print(f"mlflow: {logged} events logged", flush=True)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the wire models (job, event, result, status)."""
    print(json_schema_text(args.name))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the embedded demo job end to end (starts Redis and a worker when needed)."""
    from btq.producer.demo.run import run_demo

    port = None if args.no_dashboard else args.dashboard_port
    return run_demo(timeout_s=args.timeout, strategy=args.strategy, model=args.model, dashboard_port=port)


def cmd_compare(args: argparse.Namespace) -> int:
    """Run one job per strategy concurrently, score each final program on held-out data, chart them."""
    from btq.producer.cli.compare_command import run_compare

    return run_compare(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `btq`."""
    parser = argparse.ArgumentParser(prog="btq", description="Distributed dspy.BetterTogether on Celery + Redis")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        p.set_defaults(fn=fn)
        return p

    w = add("worker", cmd_worker)
    w.add_argument("--concurrency", "-c", type=int, default=1)
    w.add_argument("--loglevel", "-l", default="info")
    w.add_argument("--pool", default="prefork")
    w.add_argument("--name", "-n", default=None)
    w.add_argument(
        "--events", "-E", action="store_true", help="send Celery task events (for Flower); or BTQ_WORKER_SEND_EVENTS"
    )
    s = add("submit", cmd_submit)
    s.add_argument("file", help="job JSON file, or - for standard input")
    s.add_argument("--wait", action="store_true")
    for name, fn in (
        ("watch", cmd_watch),
        ("result", cmd_result),
        ("status", cmd_status),
        ("cancel", cmd_cancel),
    ):
        p = add(name, fn)
        p.add_argument("job_id")
        if name != "cancel":
            p.add_argument("--json", action="store_true")
    for p in (s, sub.choices["watch"]):
        p.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait at most")
    s.add_argument("--json", action="store_true", help="print events as JSON lines")
    ev = add("evaluate", cmd_evaluate)
    ev.add_argument("job_id")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--split", required=True)
    ev.add_argument("--timeout", type=float, default=3600)
    ev.add_argument("--json", action="store_true")
    add("intake", cmd_intake)
    add("workers", cmd_workers).add_argument("--json", action="store_true")
    j = add("jobs", cmd_jobs)
    j.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    j.add_argument("--limit", type=int, default=50)
    j.add_argument("--json", action="store_true")
    db = add("dashboard", cmd_dashboard)
    db.add_argument("--host", default=None, help="bind address (default BTQ_DASHBOARD_HOST, 127.0.0.1)")
    db.add_argument("--port", type=int, default=None, help="port (default BTQ_DASHBOARD_PORT, 8750)")
    ml = add("mlflow", cmd_mlflow)
    ml.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="default MLFLOW_TRACKING_URI")
    ml.add_argument("--experiment", default="btq", help="MLflow experiment the job runs go to")
    ml.add_argument("--once", action="store_true", help="log the events in the stream now, then exit")
    sc = add("schema", cmd_schema)
    sc.add_argument("name", nargs="?", choices=sorted(EXPORTED))
    d = add("demo", cmd_demo)
    d.add_argument("--timeout", type=float, default=3600)
    d.add_argument("--strategy", default="p -> w -> p")
    d.add_argument(
        "--model",
        choices=["local", "simulated"],
        default="local",
        help="local: SmolLM2-135M on llama.cpp, fine-tuned on CPU; simulated: the deterministic LM",
    )
    d.add_argument("--dashboard-port", type=int, default=8750, help="serve the dashboard here during the demo (0: any)")
    d.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard during the demo")
    from btq.producer.cli.compare_command import add_arguments as add_compare_arguments

    add_compare_arguments(add("compare", cmd_compare))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `btq` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except JobValidationError as exc:
        print(f"invalid job: {exc}", file=sys.stderr)
        return 2
    except JobNotFoundError as exc:
        print(f"unknown job id: {exc}", file=sys.stderr)
        return 3
    except FleetUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except BtqError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code
