"""Run a command in a pseudo-terminal of a fixed size and return what it drew, as visible lines."""

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_pty(argv: list[str], *, columns: int, rows: int = 40, env: dict[str, str], timeout_s: float) -> str:
    """Run `argv` with a terminal of `columns` x `rows` on stdout/stderr; return its raw output."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in {"COLUMNS", "LINES", "NO_COLOR", "TERM"}} | {"TERM": "xterm"}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the follower side closed: the program ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"{argv} did not end within {timeout_s}s")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def visible_lines(output: str) -> list[str]:
    """Return the text segments a terminal would draw on one row each (escapes removed)."""
    plain = _CSI.sub("", output)
    return [piece for line in plain.split("\n") for piece in line.split("\r")]
