"""The `btq` parser and entry point: every command, every option with its help, the exit codes."""

import argparse
import os
from collections.abc import Callable, Sequence

from btq.producer.cli.commands import (
    cmd_cancel,
    cmd_compare,
    cmd_dashboard,
    cmd_demo,
    cmd_evaluate,
    cmd_export,
    cmd_intake,
    cmd_jobs,
    cmd_mlflow,
    cmd_result,
    cmd_schema,
    cmd_status,
    cmd_submit,
    cmd_watch,
    cmd_worker,
    cmd_workers,
)
from btq.producer.cli.failures import report
from btq.schemas.export import EXPORTED
from btq.schemas.result import JobState

JSON_LINES = "JSON: one object per line (JSON Lines), for lists and streams alike"
JSON_DOCUMENT = "JSON: one document (the object the table shows)"
STRICT = "exit 7 when the job succeeded but a step failed (default: exit 0)"
JOB_ID = "the job's id (what `btq submit` printed)"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `btq`."""
    parser = argparse.ArgumentParser(
        prog="btq",
        description="Distributed dspy.BetterTogether on Celery + Redis",
        epilog="exit codes: 0 ok, 1 job did not succeed, 2 bad input or path, 3 unknown job or no result yet, "
        "4 no live worker, 5 Redis or broker unreachable, 6 timeout, 7 a step failed (--strict)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        p.set_defaults(fn=fn)
        return p

    _worker_commands(add)
    _job_commands(add)
    _service_commands(add)
    return parser


Add = Callable[[str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def _worker_commands(add: Add) -> None:
    w = add("worker", cmd_worker)
    w.add_argument("--concurrency", "-c", type=int, default=1, help="pool processes (steps and shards run at once)")
    w.add_argument("--loglevel", "-l", default="info", help="Celery log level: debug, info, warning, error")
    w.add_argument("--pool", default="prefork", help="Celery pool: prefork (default), threads or solo")
    w.add_argument("--name", "-n", default=None, help="worker node name (default: Celery's, name@host)")
    w.add_argument(
        "--events", "-E", action="store_true", help="send Celery task events (for Flower); or BTQ_WORKER_SEND_EVENTS"
    )
    add("workers", cmd_workers).add_argument("--json", action="store_true", help=f"print the workers as {JSON_LINES}")


def _job_commands(add: Add) -> None:
    s = add("submit", cmd_submit)
    s.add_argument("file", help="job JSON file, or - for standard input")
    s.add_argument("--wait", action="store_true", help="watch the job until it ends and print its result")
    s.add_argument(
        "--json", action="store_true", help=f'print events as {JSON_LINES} (with --wait), else {{"job_id": ...}}'
    )
    s.add_argument("--strict", action="store_true", help=f"with --wait, {STRICT}")
    wa = add("watch", cmd_watch)
    wa.add_argument("job_id", help=JOB_ID)
    wa.add_argument("--json", action="store_true", help=f"print events as {JSON_LINES}")
    wa.add_argument("--strict", action="store_true", help=STRICT)
    for p in (s, wa):
        p.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait at most (exit 6 after)")
    r = add("result", cmd_result)
    r.add_argument("job_id", help=JOB_ID)
    r.add_argument("--json", action="store_true", help=f"print the JobResult as {JSON_DOCUMENT}, program states too")
    r.add_argument("--strict", action="store_true", help="exit 1 unless the job succeeded, 7 when a step failed")
    st = add("status", cmd_status)
    st.add_argument("job_id", help=JOB_ID)
    st.add_argument("--json", action="store_true", help=f"print the JobStatus as {JSON_DOCUMENT}")
    st.add_argument(
        "--strict", action="store_true", help="for an ended job: exit 1 unless it succeeded, 7 when a step failed"
    )
    add("cancel", cmd_cancel).add_argument("job_id", help=JOB_ID)
    ex = add("export", cmd_export)
    ex.add_argument("job_id", help=JOB_ID)
    pick = ex.add_mutually_exclusive_group()
    pick.add_argument("--rank", type=int, default=None, help="the candidate at this rank of `btq result` (1: the top)")
    pick.add_argument(
        "--strategy", default=None, help="the candidate of this strategy, e.g. 'p -> w' ('baseline': step 0)"
    )
    ex.add_argument(
        "-o",
        "--output",
        default=None,
        help="file to write (default JOB_ID.json; the manifest goes to NAME.manifest.json; -: stdout)",
    )
    ev = add("evaluate", cmd_evaluate)
    ev.add_argument("job_id", help=JOB_ID)
    ev.add_argument("--dataset", required=True, help="a dataset the workers registered (`btq workers` lists them)")
    ev.add_argument("--split", required=True, help="the split to score on, e.g. test")
    ev.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a worker's scores (exit 6 after)")
    ev.add_argument("--json", action="store_true", help=f"print the EvaluationReport as {JSON_DOCUMENT}")
    j = add("jobs", cmd_jobs)
    j.add_argument("--state", choices=[state.value for state in JobState], help="only jobs in this state")
    j.add_argument("--limit", type=int, default=50, help="newest jobs to show at most (the total is printed below)")
    j.add_argument("--json", action="store_true", help=f"print the jobs as {JSON_LINES}")
    j.add_argument(
        "--strict", action="store_true", help="exit 7 when a listed job had a failed step, 1 when one failed"
    )


def _service_commands(add: Add) -> None:
    add("intake", cmd_intake)
    db = add("dashboard", cmd_dashboard)
    db.add_argument("--host", default=None, help="bind address (default BTQ_DASHBOARD_HOST, 127.0.0.1)")
    db.add_argument("--port", type=int, default=None, help="port (default BTQ_DASHBOARD_PORT, 8750)")
    ml = add("mlflow", cmd_mlflow)
    ml.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="default MLFLOW_TRACKING_URI")
    ml.add_argument("--experiment", default="btq", help="MLflow experiment the job runs go to")
    ml.add_argument("--once", action="store_true", help="log the events in the stream now, then exit")
    sc = add("schema", cmd_schema)
    sc.add_argument("name", nargs="?", choices=sorted(EXPORTED), help="one model's schema (default: all, by name)")
    d = add("demo", cmd_demo)
    d.add_argument("--timeout", type=float, default=3600, help="seconds the demo job may take at most")
    d.add_argument("--strategy", default="p -> w -> p", help="the demo job's strategy")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `btq` console script: a failure prints one line and exits with its code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except Exception as exc:  # one line and a documented code; an unexpected error still raises
        return report(exc)
