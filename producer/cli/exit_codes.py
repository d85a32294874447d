"""The exit codes of `btq`, one per kind of outcome a script may want to tell apart (docs/cli.md lists them).

Every failure prints one line on standard error (no traceback) and exits with its code here.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `btq` returns."""

    OK = 0
    """The command did what it was asked; a watched job succeeded."""
    JOB_NOT_SUCCEEDED = 1
    """The job failed or was cancelled; `cancel` of a job that already ended; an evaluation that raised."""
    BAD_INPUT = 2
    """Invalid job spec (every field error listed), bad option, or a path that cannot be read or written."""
    NOT_FOUND = 3
    """Unknown job id, or a job with no result yet."""
    NO_WORKER = 4
    """No live worker serves the queue (or none published its registry)."""
    UNREACHABLE = 5
    """Redis or the broker could not be reached within BTQ_REDIS_RECONNECT_BUDGET_S."""
    TIMEOUT = 6
    """`--timeout` passed before the job (or evaluation) ended; the job itself keeps running."""
    STEP_FAILED = 7
    """With `--strict`: the job succeeded but a step failed (`succeeded, 1 step failed`)."""
