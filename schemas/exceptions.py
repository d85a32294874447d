"""The project's error tree. Retry-worthy and permanent failures are different types."""


class BtqError(Exception):
    """Root of every error bettertogether-queue raises on purpose."""


class JobValidationError(BtqError, ValueError):
    """Raised when a submitted job is refused; nothing was enqueued. `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


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
