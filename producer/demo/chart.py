"""A grouped bar chart as SVG, written with plain string formatting (no plotting library needed)."""

from collections.abc import Sequence
from html import escape

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")
_WIDTH_PER_GROUP = 110
_PLOT_HEIGHT = 220
_TOP, _LEFT, _BOTTOM = 40, 50, 70


def bar_chart_svg(
    title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]], y_max: float = 100.0
) -> str:
    """Return an SVG document with one group of bars per entry of `groups`, one bar per series.

    Args:
        title: The caption on top.
        groups: Group labels along the x axis (e.g. strategies).
        series: Series name -> one value per group (None draws no bar and prints `-`).
        y_max: The value at the top of the y axis.
    """
    names = list(series)
    bar_w = (_WIDTH_PER_GROUP - 20) / max(1, len(names))
    width = _LEFT + _WIDTH_PER_GROUP * len(groups) + 20
    height = _TOP + _PLOT_HEIGHT + _BOTTOM
    base_y = _TOP + _PLOT_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for tick in range(0, 101, 25):
        y = base_y - _PLOT_HEIGHT * tick / 100
        parts.append(f'<line x1="{_LEFT}" x2="{width - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4}" text-anchor="end">{y_max * tick / 100:g}</text>')
    for g, group in enumerate(groups):
        x0 = _LEFT + g * _WIDTH_PER_GROUP + 10
        for s, name in enumerate(names):
            value = series[name][g]
            x = x0 + s * bar_w
            label = "-" if value is None else f"{value:g}"
            bar_h = 0.0 if value is None else _PLOT_HEIGHT * min(value, y_max) / y_max
            color = _COLORS[s % len(_COLORS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{base_y - bar_h:.1f}" width="{bar_w - 2:.1f}" height="{bar_h:.1f}" '
                f'fill="{color}"/>'
            )
            parts.append(
                f'<text x="{x + bar_w / 2 - 1:.1f}" y="{base_y - bar_h - 3:.1f}" text-anchor="middle">{label}</text>'
            )
        parts.append(
            f'<text x="{x0 + (_WIDTH_PER_GROUP - 20) / 2:.1f}" y="{base_y + 16}" text-anchor="middle">'
            f"{escape(group)}</text>"
        )
    for s, name in enumerate(names):
        x = _LEFT + s * 90
        parts.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{_COLORS[s % len(_COLORS)]}"/>')
        parts.append(f'<text x="{x + 16}" y="{height - 12}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
