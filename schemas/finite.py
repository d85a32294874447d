"""Non-finite numbers in a payload: JSON has no NaN or Infinity, so a job carrying one is refused.

Python's `json` and pydantic's JSON parser both accept `NaN`, `Infinity` and overflowing literals such
as `1e999`; stored back as JSON they become `null` or invalid text that no worker can read.
"""

import math
from collections.abc import Iterator


def non_finite_paths(value: object, path: str = "") -> Iterator[str]:
    """Yield the dotted path of every float in `value` that is NaN or infinite (depth-first, iterative)."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                yield where
        elif isinstance(item, dict):
            stack.extend((_join(where, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((_join(where, str(i)), v) for i, v in reversed(list(enumerate(item))))


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
