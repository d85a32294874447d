"""The `btq` command as a person runs it, for the CLI tests: a real process started from the repository root."""

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.conftest import ROOT


def run_btq(
    *args: str, env: Mapping[str, str | None], stdin: str | None = None, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run `btq ARGS` (`python -m btq.producer.cli`) and return its exit code and what it printed.

    `env` is laid over this process's environment; a None value removes that variable (a broker URL the
    test must not inherit, say). A non-zero exit is returned, not raised: the tests read the exit code and
    stderr. `timeout_s` bounds the whole run (subprocess.TimeoutExpired past it).
    """
    merged = dict(os.environ)
    for name, value in env.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return subprocess.run(
        [sys.executable, "-m", "btq.producer.cli", *args],
        cwd=ROOT,
        env=merged,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
