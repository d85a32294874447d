"""`btq`: run workers, submit, watch, read results, cancel, export schemas, run the demo."""

import argparse
import json
import os
import sys
from pathlib import Path

from btq.producer.cli.exit_codes import ExitCode
from btq.producer.cli.failures import redacted_url
from btq.producer.client import JobClient
from btq.producer.fleet.liveness import live_workers
from btq.producer.fleet.worker_command import worker_argv, worker_extra_missing
from btq.producer.reconnect import INFRA_ERRORS, with_reconnect
from btq.producer.settings import ProducerSettings
from btq.producer.terminal.render import final_line, result_table, show_live
from btq.schemas.exceptions import FleetUnavailableError, JobValidationError
from btq.schemas.export import json_schema_text
from btq.schemas.result import JobResult, JobState, JobStatus
from btq.schemas.saved_program import manifest_path, saved_program


def _client() -> JobClient:
    """Return a client whose Redis answered, retrying within BTQ_REDIS_RECONNECT_BUDGET_S (then it raises)."""
    settings = ProducerSettings()
    client = JobClient(settings)
    budget_s = settings.redis_reconnect_budget_s
    url = redacted_url(settings.redis_url)
    if sys.stderr.isatty() and budget_s > 0:  # a person waiting is told why; a script gets one line at the end
        try:
            client.redis.ping()
            return client
        except INFRA_ERRORS:
            print(f"waiting for Redis at {url} (up to {budget_s:.0f} s, BTQ_REDIS_RECONNECT_BUDGET_S)", file=sys.stderr)
    with_reconnect(client.redis.ping, f"connecting to {url}", budget_s, announce=False)
    return client


def _read_job(path: str) -> bytes:
    """Return a job file's bytes (`-`: standard input); an unreadable path raises OSError naming it."""
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


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
    text = _read_job(args.file)
    client = _client()
    if args.wait:
        require_live_worker(client)
    job_id = client.submit(text)
    if not args.wait:
        print(json.dumps({"job_id": job_id}) if args.json else job_id)
        return ExitCode.OK
    return _watch(client, job_id, args.timeout, as_json=args.json, strict=args.strict)


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a job's events live (replaying what already happened) until it ends."""
    client = _client()
    if not client.status(args.job_id).state.is_final:  # an unknown id raises JobNotFoundError here
        require_live_worker(client)
    return _watch(client, args.job_id, args.timeout, as_json=args.json, strict=args.strict)


def require_live_worker(client: JobClient) -> None:
    """Raise FleetUnavailableError unless a live worker consumes the client's queue (bounded, ~1.5 s)."""
    if not live_workers(client.celery, client.settings.queue):
        raise FleetUnavailableError(
            f"no live worker consumes queue {client.settings.queue!r} at {client.settings.redis_url}: "
            "start one with `btq worker`"
        )


def _watch(client: JobClient, job_id: str, timeout_s: float, *, as_json: bool, strict: bool) -> int:
    if as_json:
        for event in client.follow(job_id, timeout_s):
            print(event.model_dump_json(), flush=True)
    else:
        show_live(client.follow(job_id, timeout_s))
    result = client.result(job_id)
    if result is not None and not as_json:
        print()
        result_table(result)
        print(final_line(result))
    return outcome_code(result, strict=strict)


def outcome_code(result: JobResult | None, *, strict: bool) -> int:
    """Return the exit code of a job's outcome: 0 succeeded, 1 not, 7 a step failed under `--strict`."""
    if result is None or result.state is not JobState.SUCCEEDED:
        return ExitCode.JOB_NOT_SUCCEEDED
    if strict and result.failed_steps:
        return ExitCode.STEP_FAILED
    return ExitCode.OK


def cmd_result(args: argparse.Namespace) -> int:
    """Print a job's result (table, or the JobResult JSON with --json)."""
    result = _client().result(args.job_id)
    if result is None:
        print(f"job {args.job_id} has no result yet", file=sys.stderr)
        return ExitCode.NOT_FOUND
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        result_table(result)
        print(final_line(result))
    return outcome_code(result, strict=True) if args.strict else ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print a job's state and progress (`succeeded, 1 step failed` when a step failed)."""
    client = _client()
    status = client.status(args.job_id)
    result = client.result(args.job_id) if status.state.is_final else None
    if args.json:
        data = status.model_dump(mode="json")
        if result is not None:  # the same words `btq jobs` and the dashboard show
            data.update(state_label=result.state_label, failed_steps=result.failed_steps)
        print(json.dumps(data, indent=2))
    else:
        print(status_line(status, result))
    if args.strict and status.state.is_final:
        return outcome_code(result, strict=True)
    return ExitCode.OK


def status_line(status: JobStatus, result: JobResult | None) -> str:
    """Return `btq status`'s line: `<id>: succeeded, 1 step failed, 2/3 steps`."""
    label = result.state_label if result is not None else status.state.value
    return f"{status.job_id}: {label}, {status.steps_done}/{status.steps_total} steps"


def cmd_cancel(args: argparse.Namespace) -> int:
    """Request cancellation of a job."""
    accepted = _client().cancel(args.job_id)
    print("cancel requested" if accepted else "job already ended")
    return ExitCode.OK if accepted else ExitCode.JOB_NOT_SUCCEEDED


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a finished job's candidates on a registered dataset split (a held-out test set)."""
    client = _client()
    evaluation = client.evaluate(args.job_id, args.dataset, args.split, timeout_s=args.timeout)
    if args.json:
        print(evaluation.model_dump_json(indent=2))
    else:
        result = client.result(args.job_id)
        assert result is not None  # evaluate() refuses jobs without a result
        result_table(result, held_out=evaluation)
    if evaluation.error:
        print(f"evaluation failed: {evaluation.error.type}: {evaluation.error.message}", file=sys.stderr)
        return ExitCode.JOB_NOT_SUCCEEDED
    return ExitCode.OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write a finished job's program as dspy's saved-program JSON (Module.load reads it), a manifest beside it."""
    client = _client()
    result = client.result(args.job_id)
    if result is None:
        print(f"job {args.job_id} has no result yet", file=sys.stderr)
        return ExitCode.NOT_FOUND
    count = len(result.candidates)
    if args.rank is not None and not 1 <= args.rank <= count:
        print(f"cannot export: --rank {args.rank}: job {args.job_id} has ranks 1..{count}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    rank = None if args.rank is None else args.rank - 1  # `btq result` numbers ranks from 1
    try:
        saved = saved_program(result, client.spec(args.job_id), rank=rank, strategy=args.strategy)
    except JobValidationError as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.output == "-":
        sys.stdout.write(saved.program_json())
        return ExitCode.OK
    path = Path(args.output or f"{args.job_id}.json")
    if path.suffix != ".json":
        print(f"cannot use {path}: dspy's Module.load reads a .json path", file=sys.stderr)
        return ExitCode.BAD_INPUT
    manifest = manifest_path(path)
    path.write_text(saved.program_json())
    manifest.write_text(saved.manifest_json())
    m = saved.manifest
    score = "-" if m.score is None else f"{m.score:.2f}"
    print(f"wrote {path} and {manifest}: {m.strategy or '(baseline)'}, score {score}, program {m.program}")
    return ExitCode.OK


def cmd_intake(args: argparse.Namespace) -> int:
    """Serve the intake stream: submissions from services in any language (runs until stopped)."""
    from btq.producer.intake import run_intake

    return run_intake(_client())


def cmd_workers(args: argparse.Namespace) -> int:
    """List the live workers, what each registered and what each is running."""
    from btq.producer.cli.workers import print_workers

    print_workers(_client().fleet.workers(with_running=True), sys.stdout, as_json=args.json)
    return ExitCode.OK


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs newest first (`--state` filters; `--json` for JSON)."""
    from btq.producer.cli.jobs_table import print_jobs

    return print_jobs(_client().redis, state=args.state, limit=args.limit, as_json=args.json, strict=args.strict)


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
