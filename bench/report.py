"""Figures, the printed table and the JSON file: the same numbers in both places."""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Summary


@dataclass
class Figure:
    """One reported number: a summary of repeated samples, or a single value (a count, a verdict)."""

    section: str
    name: str
    unit: str
    summary: Summary | None = None
    value: float | int | str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the figure as a JSON object."""
        out: dict[str, Any] = {"section": self.section, "name": self.name, "unit": self.unit, "note": self.note}
        if self.summary is not None:
            out["summary"] = self.summary.to_json()
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass
class SectionResult:
    """What one section measured: its figures, notes printed under the table, and raw data for JSON."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, name: str, unit: str, summary: Summary | None = None, **kwargs: Any) -> Figure:
        """Append and return a figure of this section."""
        figure = Figure(self.name, name, unit, summary, **kwargs)
        self.figures.append(figure)
        return figure


def fmt(value: float | int | str | None) -> str:
    """Format a number with about three significant digits (tables must scan, not impress)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


HEADERS = ("section", "figure", "unit", "median", "min .. max", "IQR", "n", "note")


def _row(fig: Figure) -> tuple[str, ...]:
    if fig.summary is not None:
        s = fig.summary
        spread = f"{fmt(s.min)} .. {fmt(s.max)}"
        iqr = f"{fmt(s.p25)} .. {fmt(s.p75)}"
        return (fig.section, fig.name, fig.unit, fmt(s.median), spread, iqr, str(s.n), fig.note)
    return (fig.section, fig.name, fig.unit, fmt(fig.value), "", "", "1", fig.note)


def render_table(sections: Sequence[SectionResult]) -> str:
    """Return every figure as one aligned text table, sections separated by a blank line."""
    rows = [_row(f) for section in sections for f in section.figures]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))
    out = [line, "-" * len(line)]
    for index, section in enumerate(s for s in sections if s.figures):
        if index:
            out.append("")  # a blank line between sections keeps the table scannable
        for fig in section.figures:
            out.append("  ".join(c.ljust(w) for c, w in zip(_row(fig), widths, strict=True)).rstrip())
    return "\n".join(out)


def render_notes(sections: Sequence[SectionResult]) -> str:
    """Return each section's notes and failures as indented lines."""
    lines = []
    for section in sections:
        for note in section.notes:
            lines.append(f"  [{section.name}] {note}")
        for failure in section.failures:
            lines.append(f"  [{section.name}] FAILED: {failure}")
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], sections: Sequence[SectionResult]) -> None:
    """Write the run's metadata, every figure and each section's raw data to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "figures": [f.to_json() for s in sections for f in s.figures],
        "sections": {s.name: {"notes": s.notes, "failures": s.failures, "data": s.data} for s in sections},
    }
    # allow_nan=False: a NaN must have been turned into null by `_clean`, never written as invalid JSON.
    path.write_text(json.dumps(_clean(document), indent=2, allow_nan=False) + "\n")


def _clean(value: Any) -> Any:
    """Return `value` with summaries expanded, tuples as lists and NaN/inf as null (strict JSON)."""
    if isinstance(value, Summary):
        return _clean(value.to_json())
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
