"""The command line that starts a worker process, shared by `btq worker`, `btq demo` and the tests.

Workers are started as a separate program (`celery -A btq.worker.main worker`), so the producer never
imports worker code.
"""

import importlib.util
import sys

# What `bettertogether-queue[worker]` adds to the client install: a worker cannot start without them.
WORKER_EXTRA_MODULES = ("dspy", "optuna", "numpy")


def worker_extra_missing() -> str | None:
    """Return a message naming what a worker needs and this environment lacks (None: a worker can start).

    The client install (`pip install bettertogether-queue`) submits, watches and reads results; starting
    a worker here needs the `worker` extra.
    """
    missing = [name for name in WORKER_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"a worker needs the `worker` extra ({', '.join(missing)} not installed): "
        "pip install 'bettertogether-queue[worker]'"
    )


def worker_argv(
    *,
    queue: str | None = None,
    concurrency: int = 1,
    loglevel: str = "info",
    pool: str = "prefork",
    name: str | None = None,
    events: bool = False,
) -> list[str]:
    """Return the argv of a Celery worker for the btq tasks (settings come from BTQ_ env variables)."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "btq.worker.main",
        "worker",
        "-l",
        loglevel,
        "-c",
        str(concurrency),
        "--pool",
        pool,
    ]
    # Mingle and gossip sync state between workers at start and by broadcast; nothing here uses them,
    # and without them a worker is ready in about half the time.
    argv += ["--without-mingle", "--without-gossip"]
    if queue:
        argv += ["-Q", f"{queue},{queue}.eval"]  # steps, and evaluation shards (btq.schemas.keys.eval_queue)
    if name:
        argv += ["-n", name]
    if events:
        argv += ["--task-events"]  # Celery task events, what Flower and `celery events` read
    return argv
