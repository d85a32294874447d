"""Cancellation that reaches deep inside a running step: LM calls, fine-tunes, optimizer loops.

The step service installs the job's cancel check for the duration of a step; code deep inside an
optimizer or a provider calls `raise_if_cancelled()` (or `sleep`, `is_cancelled`) without knowing about
Redis. A worker process runs one step at a time, and dspy runs LM calls and fine-tunes in threads that
do not inherit context variables, so the check is process-wide. Outside a step, nothing is cancelled.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from btq.schemas.exceptions import BtqError

Check = Callable[[], bool]

_checks: list[Check] = []
_lock = threading.Lock()

SLICE_S = 0.1
"""Longest uninterrupted sleep in `sleep`: how late a cancel can land in simulated work."""


class StepCancelledError(BtqError):
    """Raised inside a running step (an LM call, a fine-tune) once its job was cancelled."""


@contextmanager
def interruptible(check: Check) -> Iterator[None]:
    """Make `raise_if_cancelled` consult `check` while the block runs, in every thread of the process."""
    with _lock:
        _checks.append(check)
    try:
        yield
    finally:
        with _lock:
            _checks.remove(check)


def is_cancelled() -> bool:
    """True when the step running in this process belongs to a cancelled job."""
    check = _checks[-1] if _checks else None
    return check is not None and check()


def raise_if_cancelled() -> None:
    """Raise StepCancelledError when the running step's job was cancelled.

    Raises:
        StepCancelledError: The job was cancelled; the optimizer or evaluation stops here.
    """
    if is_cancelled():
        raise StepCancelledError("job cancelled")


def sleep(seconds: float) -> None:
    """Sleep like `time.sleep`, in slices, raising StepCancelledError as soon as the job is cancelled."""
    deadline = time.monotonic() + seconds
    while True:
        raise_if_cancelled()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(SLICE_S, remaining))  # the simulated work itself, sliced so a cancel lands in time
