"""A real dashboard (uvicorn on a free loopback port) in a thread, for the API and browser tests."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from btq.producer.dashboard.server import serving_in_thread
from btq.producer.dashboard.settings import DashboardSettings
from tests.conftest import Fleet


@dataclass
class Served:
    """The running dashboard's base URL and settings."""

    url: str
    settings: DashboardSettings

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)


@contextmanager
def dashboard(fleet: Fleet, token: str | None = None, **overrides: Any) -> Iterator[Served]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings = DashboardSettings(
        redis_url=fleet.url,
        queue=fleet.queue,
        dashboard_port=port,
        dashboard_token=SecretStr(token) if token else None,
        dashboard_heartbeat_s=2,
        **overrides,
    )
    with serving_in_thread(settings) as url:
        yield Served(url=url, settings=settings)
