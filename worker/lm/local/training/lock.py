"""One fine-tune per content name at a time on this machine: a second request waits, then finds it published.

Strategies that fine-tune on the same data (`w` and `w -> p` in `btq compare`) ask for the same
content-addressed model at the same moment; without the lock both worker processes would train it.
The lock is an `flock` on a file in the per-machine cache: the OS releases it when its holder dies.
Workers on other machines are not covered (they train their own copy; publishing is idempotent).
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def training_lock(cache_dir: Path, name: str) -> Iterator[None]:
    """Hold the machine-wide lock of fine-tune `name` while the block runs (blocks until it is free)."""
    locks = cache_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    safe = name.replace("/", "_").replace(":", "_")
    with (locks / f"{safe}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
