"""The SVG pieces of the HTML report (evaluations.report_html): metric bars with CI whiskers and
thresholds, score histograms, run-vs-run delta charts, and the escaping and number formatting they share.
Numbers are written as labels and as ``data-*`` attributes, so a chart reads (and is tested) as text.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from evaluations.reports import HIST_BINS, _finite, _text

_LABEL_W = 170
_PLOT_W = 400
_CHART_W = 780
_ROW_H = 30
_BAR_H = 16
_AXIS_H = 26

# Layout of one histogram.
_HIST_W, _HIST_H = 320, 150
_HIST_X, _HIST_TOP, _HIST_BOTTOM = 30, 18, 112



def _e(value: Any) -> str:
    """Escaped text for element content and quoted attributes alike (quotes escaped too)."""
    return escape(_text(value), quote=True)


def _fmt(value: Any, digits: int = 3, *, signed: bool = False) -> str:
    """A number for people, "—" when there is none."""
    v = _finite(value)
    if v is None:
        return "—"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _general(value: Any) -> str:
    """Counts and money without trailing noise (``12``, ``0.0031``), "—" when absent."""
    v = _finite(value)
    if v is None:
        return "—"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def _attr(value: float | None) -> str:
    """A number as a ``data-*`` value: full precision (``repr``) so tests and scripts read it back exactly."""
    return "" if value is None else repr(value)


def _c(value: float) -> str:
    """An SVG coordinate."""
    return f"{value:.2f}"


def _domain(values: Iterable[float | None]) -> tuple[float, float]:
    """Axis range of a bar: [0, 1] when every value lies in it (most metrics, and then their bars are
    comparable), else from min(0, lowest) to max(0, highest) so the bar still grows from 0. A value
    outside [0, 1] makes the range non-empty."""
    vals = [v for v in values if v is not None]
    if all(0.0 <= v <= 1.0 for v in vals):
        return 0.0, 1.0
    return min(0.0, *vals), max(0.0, *vals)


def _scale(value: float, lo: float, hi: float, x0: float = _LABEL_W, width: float = _PLOT_W) -> float:
    """SVG x of ``value`` on an axis from ``lo`` (at ``x0``) to ``hi`` (at ``x0 + width``), clamped."""
    frac = (value - lo) / (hi - lo)
    return x0 + min(max(frac, 0.0), 1.0) * width


def _metric_chart(run: Mapping[str, Any]) -> str:
    """Horizontal bars of the scores with 95% CI whiskers and, where set, the threshold as a dashed mark.
    Rows whose values leave [0, 1] get their own axis, stated next to the value."""
    metrics = run.get("metrics") or {}
    thresholds = run.get("thresholds") or {}
    names = sorted(metrics)
    height = _AXIS_H + _ROW_H * len(names) + 4
    rows = [_metric_row(i, name, metrics[name] or {}, thresholds.get(name) or {}) for i, name in enumerate(names)]
    return (f'<svg class="chart metric-chart" width="{_CHART_W}" height="{height}" '
            f'viewBox="0 0 {_CHART_W} {height}" role="img" aria-label="Metric scores with 95% confidence intervals" '
            f'data-plot-x="{_LABEL_W}" data-plot-width="{_PLOT_W}">'
            f"{_unit_axis(height)}{''.join(rows)}</svg>")


def _unit_axis(height: float) -> str:
    """Grid lines and labels of the shared [0, 1] axis."""
    out = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _c(_scale(tick, 0.0, 1.0))
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{_AXIS_H - 6}" y2="{height}"/>'
                   f'<text class="small" x="{x}" y="{_AXIS_H - 10}" text-anchor="middle">{tick:g}</text>')
    return "".join(out)


def _metric_row(i: int, name: str, metric: Mapping[str, Any], threshold: Mapping[str, Any]) -> str:
    score, low, high = (_finite(metric.get(k)) for k in ("score", "ci_low", "ci_high"))
    limit = _finite(threshold.get("threshold"))
    lo, hi = _domain([score, low, high, limit])
    top = _AXIS_H + i * _ROW_H
    mid = top + _ROW_H / 2
    bar_y = mid - _BAR_H / 2
    parts = [f'<g class="metric-row" data-metric="{_e(name)}" data-score="{_attr(score)}" '
             f'data-ci-low="{_attr(low)}" data-ci-high="{_attr(high)}" data-domain-lo="{_attr(lo)}" '
             f'data-domain-hi="{_attr(hi)}"><title>{_e(name)}</title>',
             f'<text x="{_LABEL_W - 8}" y="{_c(mid + 4)}" text-anchor="end">{_e(_truncate(name, 24))}</text>',
             f'<rect class="track" x="{_LABEL_W}" y="{_c(bar_y)}" width="{_PLOT_W}" height="{_BAR_H}"/>']
    if score is not None:
        x0, xs = _scale(0.0, lo, hi), _scale(score, lo, hi)
        cls = {True: " pass", False: " fail"}.get(threshold.get("passed"), "")
        parts.append(f'<rect class="bar{cls}" x="{_c(min(x0, xs))}" y="{_c(bar_y)}" '
                     f'width="{_c(abs(xs - x0))}" height="{_BAR_H}"/>')
    if low is not None and high is not None:
        parts.append(_whisker(_scale(low, lo, hi), _scale(high, lo, hi), mid))
    if limit is not None:
        xt = _c(_scale(limit, lo, hi))
        parts.append(f'<line class="threshold" data-threshold="{_attr(limit)}" x1="{xt}" x2="{xt}" '
                     f'y1="{_c(top + 2)}" y2="{_c(top + _ROW_H - 2)}"/>')
    label = "no score" if score is None else _fmt(score)
    if low is not None and high is not None:
        label += f" [{_fmt(low)}, {_fmt(high)}]"
    if (lo, hi) != (0.0, 1.0):
        label += f" (own axis {lo:g} to {hi:g})"
    parts.append(f'<text class="value" x="{_LABEL_W + _PLOT_W + 8}" y="{_c(mid + 4)}">{label}</text></g>')
    return "".join(parts)


def _whisker(x_low: float, x_high: float, mid: float) -> str:
    """An error bar: a line from the CI's low to its high end, with end caps."""
    cap = _BAR_H / 2 - 2
    return (f'<line class="ci" x1="{_c(x_low)}" x2="{_c(x_high)}" y1="{_c(mid)}" y2="{_c(mid)}"/>'
            f'<line class="ci cap" x1="{_c(x_low)}" x2="{_c(x_low)}" y1="{_c(mid - cap)}" y2="{_c(mid + cap)}"/>'
            f'<line class="ci cap" x1="{_c(x_high)}" x2="{_c(x_high)}" y1="{_c(mid - cap)}" y2="{_c(mid + cap)}"/>')


def histogram(values: Sequence[float], bins: int = HIST_BINS) -> tuple[float, float, list[int]]:
    """``(lo, hi, counts)``: ``bins`` equal bins over [0, 1], or over the values' own range when one
    leaves it. Bins are half-open ``[a, b)`` except the last, which is closed (as numpy's)."""
    if not values or all(0.0 <= v <= 1.0 for v in values):
        lo, hi = 0.0, 1.0
    else:
        lo, hi = min(values), max(values)
    if hi == lo:  # every value the same (outside [0, 1]): centre them in a unit-wide range
        lo, hi = lo - 0.5, hi + 0.5
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for v in values:
        i = min(max(int((v - lo) / (hi - lo) * bins), 0), bins - 1)
        # The division can put a value a rounding hair across an edge; the edges shown in the report rule.
        if i > 0 and v < edges[i]:
            i -= 1
        elif i < bins - 1 and v >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return lo, hi, counts


def _histogram_figure(name: str, scored: Sequence[float], unscored: int) -> str:
    lo, hi, counts = histogram(scored)
    plot_w = _HIST_W - _HIST_X - 10
    bar_w = plot_w / len(counts)
    top = max(counts) or 1
    span = _HIST_BOTTOM - _HIST_TOP
    bars = []
    for i, count in enumerate(counts):
        a, b = lo + (hi - lo) * i / len(counts), lo + (hi - lo) * (i + 1) / len(counts)
        h = span * count / top
        x = _HIST_X + i * bar_w
        bars.append(f'<rect class="hbar" data-bin="{i}" data-count="{count}" data-lo="{a:.6g}" data-hi="{b:.6g}" '
                    f'x="{_c(x + 1)}" y="{_c(_HIST_BOTTOM - h)}" width="{_c(bar_w - 2)}" height="{_c(h)}">'
                    f"<title>{a:.3g} to {b:.3g}: {count}</title></rect>")
        if count:
            bars.append(f'<text class="small" x="{_c(x + bar_w / 2)}" y="{_c(_HIST_BOTTOM - h - 3)}" '
                        f'text-anchor="middle">{count}</text>')
    axis = (f'<line class="zero" x1="{_HIST_X}" x2="{_HIST_X + plot_w}" y1="{_HIST_BOTTOM}" y2="{_HIST_BOTTOM}"/>'
            + "".join(f'<text class="small" x="{_c(_HIST_X + plot_w * f)}" y="{_HIST_BOTTOM + 14}" '
                      f'text-anchor="middle">{lo + (hi - lo) * f:.3g}</text>' for f in (0.0, 0.5, 1.0)))
    svg = (f'<svg class="histogram" width="{_HIST_W}" height="{_HIST_H - 20}" viewBox="0 0 {_HIST_W} {_HIST_H - 20}" '
           f'role="img" aria-label="Distribution of {_e(name)}">{"".join(bars)}{axis}</svg>')
    caption = (f"<figcaption><b>{_e(name)}</b> — {len(scored)} scored, "
               f"<span class='{'warn' if unscored else 'muted'}'>{unscored} unscored</span></figcaption>")
    return (f'<figure class="hist" data-metric="{_e(name)}" data-scored="{len(scored)}" '
            f'data-unscored="{unscored}">{svg}{caption}</figure>')


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= ``value``: a symmetric axis with round ends."""
    if value <= 0:
        return 0.1
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 2.5, 5.0, 10.0) if step * power >= value * (1 - 1e-12))


def _delta_chart(names: Sequence[str], metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Deltas as bars diverging from a centred 0 (green up, red down) with their CI whiskers, on one
    symmetric axis shared by all metrics so the sizes of the changes compare at a glance."""
    extent = max((abs(v) for m in metrics.values() for v in
                  (_finite(m.get(k)) for k in ("delta", "ci_low", "ci_high")) if v is not None), default=0.0)
    half = _nice_ceiling(extent)
    height = _AXIS_H + _ROW_H * len(names) + 4
    axis = []
    for tick in (-half, -half / 2, 0.0, half / 2, half):
        x = _c(_scale(tick, -half, half))
        axis.append(f'<line class="{"zero" if tick == 0 else "grid"}" x1="{x}" x2="{x}" y1="{_AXIS_H - 6}" '
                    f'y2="{height}"/><text class="small" x="{x}" y="{_AXIS_H - 10}" text-anchor="middle">'
                    f"{tick:+g}</text>")
    rows = [_delta_row(i, name, metrics[name], half) for i, name in enumerate(names)]
    return (f'<svg class="chart delta-chart" width="{_CHART_W}" height="{height}" viewBox="0 0 {_CHART_W} {height}" '
            f'role="img" aria-label="Change per metric, head minus base, with 95% CI" data-plot-x="{_LABEL_W}" '
            f'data-plot-width="{_PLOT_W}" data-domain-lo="{_attr(-half)}" data-domain-hi="{_attr(half)}">'
            f"{''.join(axis)}{''.join(rows)}</svg>")


def _delta_row(i: int, name: str, m: Mapping[str, Any], half: float) -> str:
    delta, low, high = (_finite(m.get(k)) for k in ("delta", "ci_low", "ci_high"))
    mid = _AXIS_H + i * _ROW_H + _ROW_H / 2
    significant = m["significant"]
    parts = [f'<g class="delta-row" data-metric="{_e(name)}" data-delta="{_attr(delta)}" data-ci-low="{_attr(low)}" '
             f'data-ci-high="{_attr(high)}" data-significant="{str(significant).lower()}"><title>{_e(name)}</title>',
             f'<text x="{_LABEL_W - 8}" y="{_c(mid + 4)}" text-anchor="end">{_e(_truncate(name, 24))}</text>']
    if delta is not None:
        x0, xd = _scale(0.0, -half, half), _scale(delta, -half, half)
        parts.append(f'<rect class="bar {"up" if delta >= 0 else "down"}" x="{_c(min(x0, xd))}" '
                     f'y="{_c(mid - _BAR_H / 2)}" width="{_c(abs(xd - x0))}" height="{_BAR_H}"/>')
    if low is not None and high is not None:
        parts.append(_whisker(_scale(low, -half, half), _scale(high, -half, half), mid))
    label = "no paired cases" if delta is None else _fmt(delta, signed=True)
    if low is not None and high is not None:
        label += f" [{_fmt(low, signed=True)}, {_fmt(high, signed=True)}]"
    if significant:
        label += " significant"
    parts.append(f'<text class="value" x="{_LABEL_W + _PLOT_W + 8}" y="{_c(mid + 4)}">{label}</text></g>')
    return "".join(parts)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"
