"""Summaries of repeated measurements: median and spread (min/max and interquartile range)."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the `q`-th percentile (0-100) of `samples`, linearly interpolated (numpy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """The median of `n` samples and how far they spread."""

    n: int
    median: float
    p25: float
    p75: float
    min: float
    max: float

    def scaled(self, factor: float) -> "Summary":
        """Return the same summary in another unit (e.g. seconds to milliseconds)."""
        return Summary(
            self.n,
            self.median * factor,
            self.p25 * factor,
            self.p75 * factor,
            self.min * factor,
            self.max * factor,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the summary as a JSON object (NaN becomes null)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def summarize(samples: Sequence[float]) -> Summary:
    """Summarize `samples` (an empty list gives NaNs and n=0 rather than an error)."""
    values = [float(s) for s in samples]
    return Summary(
        n=len(values),
        median=percentile(values, 50),
        p25=percentile(values, 25),
        p75=percentile(values, 75),
        min=min(values, default=math.nan),
        max=max(values, default=math.nan),
    )
