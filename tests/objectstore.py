"""A real S3-compatible server for tests: moto in server mode on a free loopback port.

`S3Server.env()` is what a worker process needs to reach it (`AWS_ENDPOINT_URL` and credentials), the
same variables a deployment sets for MinIO or AWS itself.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """`moto_server` started on 127.0.0.1 and stopped by `close()`."""

    def __init__(self, timeout_s: float = 60) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="btq-moto-", suffix=".log")[1])
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self.proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"moto_server did not answer within {timeout_s}s") from None
                time.sleep(0.2)  # poll interval of a bounded wait

    def env(self) -> dict[str, str]:
        """Environment a process (a worker, a store) uses to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "btq-test",
            "AWS_SECRET_ACCESS_KEY": "btq-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        """A boto3 S3 client on this server (to create buckets and look at objects directly)."""
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def make_bucket(self, name: str) -> str:
        """Create bucket `name` and return its s3:// URL."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in `bucket` under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def close(self) -> None:
        """Stop the server and remove its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.unlink(missing_ok=True)


def apply_env(env: dict[str, str]) -> dict[str, str | None]:
    """Set `env` in this process and return the previous values (for `restore_env`)."""
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    return previous


def restore_env(previous: dict[str, str | None]) -> None:
    """Undo `apply_env`."""
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
