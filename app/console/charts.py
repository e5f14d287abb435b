"""Small SVG charts for the console, in the evaluation report's style (its CSS classes and escaping,
evaluations.report_svg): numbers are written as labels and `data-*` attributes, so a chart reads as text."""
from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from evaluations.report_svg import _e, _general

_W, _H, _TOP, _BOTTOM, _LEFT = 760, 180, 16, 34, 48


def bar_chart(points: Sequence[tuple[str, float]], *, label: str, unit: str = "") -> Markup:
    """Vertical bars, one per (x label, value); `label` is the chart's accessible name."""
    if not points:
        return Markup(f'<p class="muted">{_e(label)}: no data.</p>')
    top = max(value for _, value in points) or 1.0
    plot_h = _H - _TOP - _BOTTOM
    step = (_W - _LEFT) / len(points)
    width = max(2.0, step * 0.7)
    parts = [f'<svg role="img" aria-label="{_e(label)}" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
             f'class="chart">',
             f'<line class="grid" x1="{_LEFT}" y1="{_TOP}" x2="{_W}" y2="{_TOP}"/>',
             f'<line class="zero" x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W}" y2="{_H - _BOTTOM}"/>',
             f'<text x="0" y="{_TOP + 4}" class="small">{_e(_general(top))}{_e(unit)}</text>',
             f'<text x="0" y="{_H - _BOTTOM}" class="small">0</text>']
    every = max(1, len(points) // 10)
    for i, (name, value) in enumerate(points):
        h = plot_h * (value / top) if top else 0
        x = _LEFT + i * step + (step - width) / 2
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{_H - _BOTTOM - h:.1f}" width="{width:.1f}" '
                     f'height="{h:.1f}" data-label="{_e(name)}" data-value="{value}">'
                     f'<title>{_e(name)}: {_e(_general(value))}{_e(unit)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{_H - _BOTTOM + 14}" class="small">{_e(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
