"""Running the dashboard with uvicorn: in the foreground (`btq dashboard`) or in a thread (`btq demo`).

Event streams never end on their own; on shutdown the app is told first, so each stream closes within
a second and uvicorn's graceful shutdown completes instead of cancelling them.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from btq.producer.dashboard.app import create_app
from btq.producer.dashboard.settings import DashboardSettings

_GRACE_S = 3  # longer than a stream's blocking read (1 s): streams end by themselves within it


class DashboardServer(uvicorn.Server):
    """A uvicorn server that ends the dashboard's event streams before it stops."""

    def __init__(self, settings: DashboardSettings, log_level: str = "warning") -> None:
        if problem := settings.exposure_problem():
            raise ValueError(problem)
        self.stopping = threading.Event()
        config = uvicorn.Config(
            create_app(settings, self.stopping),
            host=settings.dashboard_host,
            port=settings.dashboard_port,
            log_level=log_level,
            timeout_graceful_shutdown=_GRACE_S,
        )
        super().__init__(config)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """On Ctrl+C or SIGTERM: end the streams, then stop as uvicorn does."""
        self.stopping.set()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Ask a server running in another thread to stop."""
        self.stopping.set()
        self.should_exit = True


@contextmanager
def serving_in_thread(settings: DashboardSettings, timeout_s: float = 20) -> Iterator[str]:
    """Serve the dashboard from a background thread during the block; yield its base URL."""
    server = DashboardServer(settings, log_level="error")
    thread = threading.Thread(target=server.run, name="btq-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the dashboard could not listen on {settings.dashboard_host}:{settings.dashboard_port}")
        time.sleep(0.05)  # poll interval of a bounded wait
    try:
        yield f"http://{settings.dashboard_host}:{settings.dashboard_port}"
    finally:
        server.stop()
        thread.join(timeout=_GRACE_S + 5)


def serve(settings: DashboardSettings) -> None:
    """Run the dashboard in the foreground until interrupted."""
    DashboardServer(settings).run()
