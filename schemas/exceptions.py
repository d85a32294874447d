"""The project's error tree. Retry-worthy and permanent failures are different types."""

from collections.abc import Sequence


class BtqError(Exception):
    """Root of every error bettertogether-queue raises on purpose."""


class JobValidationError(BtqError, ValueError):
    """Raised when a submitted job is refused; nothing was enqueued. `field` names the culprit.

    A spec wrong in several places is refused once with all of them: `errors` lists every
    (field, message) pair, `field` is the first and `message` carries the others after it, so
    `f"{field}: {message}"` (what the CLI and the intake's submission status show) reads them all.
    """

    def __init__(self, field: str, message: str, more: Sequence[tuple[str, str]] = ()) -> None:
        self.errors = [(field, message), *more]
        rest = "; ".join(f"{f}: {m}" if f else m for f, m in more)
        full = f"{message}; {rest}" if rest else message
        super().__init__(f"{field}: {full}" if field else full)
        self.field = field
        self.message = full

    @classmethod
    def of(cls, errors: Sequence[tuple[str, str]]) -> "JobValidationError":
        """Return one error carrying every (field, message) pair of `errors` (at least one)."""
        (field, message), *more = errors
        return cls(field, message, more)


class DecodeError(BtqError, ValueError):
    """Raised when stored or received JSON does not match the wire schema."""


class JobNotFoundError(BtqError, KeyError):
    """Raised when a job id is unknown (never submitted, or expired)."""


class JobVanishedError(JobNotFoundError):
    """Raised when a job being waited for disappears from Redis (restarted without its data, or expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} vanished: its keys are gone from Redis (restarted empty, or expired)")
        self.job_id = job_id

    def __str__(self) -> str:
        return str(self.args[0])


class JobTimeoutError(BtqError, TimeoutError):
    """Raised when a bounded wait for a job ends before the job does."""


class RegistryError(BtqError, LookupError):
    """Raised when a message names something no worker registered."""


class ProgramStateError(BtqError, ValueError):
    """Raised when a program state cannot be loaded into its registered program (permanent)."""


class RetryableStepError(BtqError):
    """Raised for transient step failures worth another delivery (broker or store hiccups)."""


class FleetUnavailableError(BtqError):
    """Raised when no worker has published what it can run (start a worker first)."""


class JobExistsError(BtqError):
    """Raised when a job is submitted under an id that already holds a job (a repeated submission)."""
