"""SIGHUP to a worker is logged and ignored, instead of Celery's restart-by-re-exec.

Celery answers SIGHUP (when not on a terminal) by re-executing `sys.argv`. Started as
`python -m celery ...` (as `btq worker` does), `sys.argv[0]` is celery's `__main__.py`, the re-exec fails
and the worker dies. Log rotation and process supervisors send SIGHUP routinely, so a worker ignores it;
restarting is SIGTERM (a warm shutdown that finishes the running steps) and starting again.
"""

import logging
import signal
from typing import Any

from celery import platforms
from celery.signals import celeryd_after_setup, worker_process_init

log = logging.getLogger(__name__)


def _ignore_hangup(*_: Any) -> None:
    log.warning("SIGHUP ignored: to restart a worker, stop it with SIGTERM and start it again")


def connect_hangup_handler() -> None:
    """Make every worker started in this process, and its pool children, ignore SIGHUP."""

    @celeryd_after_setup.connect(weak=False)  # type: ignore[untyped-decorator]
    def _setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        if instance is None:
            return
        install_tweaks = instance.install_platform_tweaks

        # Celery installs its SIGHUP handler in `install_platform_tweaks`, right after this signal: ours
        # replaces it as soon as it is installed, so there is no moment a SIGHUP could re-exec the worker.
        def tweaks_then_ignore_hangup(worker: Any) -> None:
            install_tweaks(worker)
            platforms.signals["SIGHUP"] = _ignore_hangup

        instance.install_platform_tweaks = tweaks_then_ignore_hangup

    # Pool children reset SIGHUP to its default (terminate): a hangup sent to the whole process group
    # would kill each one mid-step.
    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _child(**_: Any) -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
