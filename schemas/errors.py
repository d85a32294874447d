"""The stored error record: what failed, as JSON (never a pickled exception)."""

import traceback as tb

from btq.schemas.version import WireModel


class ErrorRecord(WireModel):
    """A failure as data: exception type, message and formatted traceback."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, with_traceback: bool = True) -> "ErrorRecord":
        """Build a record from a caught exception."""
        text = "".join(tb.format_exception(exc)) if with_traceback else None
        return cls(type=type(exc).__name__, message=str(exc), traceback=text)
