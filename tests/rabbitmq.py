"""A throwaway RabbitMQ vhost for a test session, made and removed with rabbitmqctl.

RabbitMQ absent (no rabbitmqctl, or the server does not answer): tests that need it are skipped
locally and fail in CI (CI=true), like the Redis ones.
"""

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

AMQP_HOST = os.environ.get("BTQ_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQCTL_TIMEOUT_S = 30


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise FileNotFoundError("rabbitmqctl is not installed")
    return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT_S, check=True)


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"RabbitMQ is required in CI: {reason}")
    pytest.skip(f"RabbitMQ unavailable: {reason}")


@contextmanager
def throwaway_vhost() -> Iterator[str]:
    """Create a vhost that `guest` may use, yield its broker URL, and delete it (and its queues) after."""
    name = f"btq-test-{uuid.uuid4().hex[:10]}"
    try:
        _ctl("add_vhost", name)
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        unavailable(f"rabbitmqctl could not create a vhost: {detail.strip()[:300]}")
    try:
        yield f"{AMQP_HOST}/{name}"
    finally:
        _ctl("delete_vhost", name)
