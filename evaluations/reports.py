"""Run reports: one evaluation run as JSON (for machines), CSV (for spreadsheets) and HTML (for people).

The inputs are the plain dicts the API already returns (the run, its per-case results and, optionally,
a run-vs-run comparison), so exporting never recomputes anything and this module needs no web stack.

Choices worth knowing:

* The HTML report is one file that must open from an e-mail attachment or an air-gapped disk: inline
  CSS and SVG only, nothing fetched (no fonts, scripts, images, links), and a Content-Security-Policy
  that forbids loading anything and allows only the one sorting script, by hash. Every user-provided
  string is ``html.escape``-d anyway; the CSP is the second lock, should one ever slip through.
* Charts are drawn here as SVG with the numbers written as labels and as ``data-*`` attributes, so the
  report reads without JavaScript (the script only sorts the case table) and can be checked by tests.
* CSV cells are guarded against formula injection (OWASP): text starting with ``= + - @``, tab or CR
  gets a leading apostrophe, but numbers are left alone so ``-0.25`` stays a number.
* Unscored cases (``None``) stay empty or "—", never 0: a 0 would read as a failure the system did
  not have, exactly what ``MetricResult`` avoids in its means.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from html import escape
from typing import Any

ALPHA = 0.05  # significance level when a comparison does not say (both p-values must be below it)
HIST_BINS = 10
ANSWER_CHARS = 300
INPUT_CHARS = 500
MAX_SOURCES = 5

CSV_COLUMNS = ("ordinal", "case_id", "status", "error", "input", "expected_output", "answer",
               "latency_ms", "tokens_input", "tokens_output", "cost", "attempts", "warnings", "retrieved")

# Layout of the horizontal bar charts (metric scores and comparison deltas), in SVG user units.
_LABEL_W = 170
_PLOT_W = 400
_CHART_W = 780
_ROW_H = 30
_BAR_H = 16
_AXIS_H = 26

# Layout of one histogram.
_HIST_W, _HIST_H = 320, 150
_HIST_X, _HIST_TOP, _HIST_BOTTOM = 30, 18, 112


# ---------------------------------------------------------------------------------------------- JSON


def to_json(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
            comparison: Mapping[str, Any] | None = None) -> str:
    """``{"comparison", "results", "run"}`` as one strict JSON document, keys sorted so two exports of the
    same run are byte-identical (diffable). Non-finite floats become ``null`` (NaN is not JSON) and each
    comparison metric gets its ``significant`` flag filled in when the API did not send one."""
    doc = {
        "run": run,
        "results": list(results),
        "comparison": _with_significance(comparison) if comparison is not None else None,
    }
    return json.dumps(_jsonable(doc), ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)


def _jsonable(value: Any) -> Any:
    """A strict-JSON copy: NaN/inf to ``None``, datetimes to ISO strings, keys to strings (sortable)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _is_significant(metric: Mapping[str, Any]) -> bool:
    """The comparison's own verdict when it has one, else ``MetricComparison.significant``'s rule: both
    tests below ``ALPHA`` (a missing p-value, as with no paired case, is never significant)."""
    given = metric.get("significant")
    if isinstance(given, bool):
        return given
    p_boot, p_perm = _finite(metric.get("p_bootstrap")), _finite(metric.get("p_permutation"))
    return p_boot is not None and p_perm is not None and max(p_boot, p_perm) < ALPHA


def _with_significance(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``comparison`` whose every metric carries a boolean ``significant``."""
    metrics = comparison.get("metrics") or {}
    return {**comparison,
            "metrics": {name: {**(m or {}), "significant": _is_significant(m or {})} for name, m in metrics.items()}}


# ----------------------------------------------------------------------------------------------- CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def to_csv(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    """One row per case in the given order: ``CSV_COLUMNS``, then one column per metric (see
    ``_metric_columns``). Null is an empty cell; lists are joined with `` | ``. Rows end in CRLF (RFC 4180).
    """
    names = _metric_names(run, results)
    columns = _metric_columns(names)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_csv_cell(c) for c in (*CSV_COLUMNS, *columns.values())])
    for result in results:
        writer.writerow([_csv_cell(v) for v in _csv_row(result, names)])
    return out.getvalue()


def _csv_row(result: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """The values of one case, in ``CSV_COLUMNS`` order then metric order."""
    tokens = result.get("tokens") or {}
    scores = result.get("scores") or {}
    return [
        result.get("ordinal"), result.get("case_id"), result.get("status"), result.get("error"),
        result.get("input"), result.get("expected_output"), result.get("answer"), result.get("latency_ms"),
        tokens.get("input"), tokens.get("output"), result.get("cost"), result.get("attempts"),
        " | ".join(_text(w) for w in result.get("warnings") or []),
        " | ".join(_source_name(s) for s in result.get("retrieved") or []),
        *(scores.get(name) for name in names),
    ]


def _csv_cell(value: Any) -> str:
    """A cell as text, defused: a spreadsheet would run ``=HYPERLINK(...)`` typed into a question, so text
    that could start a formula gets a leading ``'``; numbers (including negative ones) never need it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value) if math.isfinite(value) else ""
    text = _text(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _metric_columns(names: Sequence[str]) -> dict[str, str]:
    """Column header per metric: its name, or ``score:<name>`` should a metric be called like a fixed
    column (``cost``...), so ``csv.DictReader`` never sees a duplicate header."""
    return {name: f"score:{name}" if name in CSV_COLUMNS else name for name in names}


def _metric_names(run: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> list[str]:
    """The run's metrics sorted, then any other metric a case was scored on, sorted (older results can
    carry a metric since removed from the evaluation: show it rather than drop data)."""
    declared = sorted(str(n) for n in run.get("metrics") or {})
    known = set(declared)
    extra = {str(n) for r in results for n in r.get("scores") or {}} - known
    return declared + sorted(extra)


def _text(value: Any) -> str:
    """Any field as display text: strings as they are, structured inputs (chat turns...) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), ensure_ascii=False, sort_keys=True)


def _source_name(source: Any) -> str:
    """A retrieved document as people know it: its external id (file name, URL), else its id."""
    if isinstance(source, Mapping):
        return _text(source.get("external_id") or source.get("document_id"))
    return _text(source)


# ---------------------------------------------------------------------------------------------- HTML


_SORT_SCRIPT = (
    "document.querySelectorAll('table.sortable thead th').forEach(function(th){"
    "th.addEventListener('click',function(){"
    "var b=th.closest('table').tBodies[0],i=th.cellIndex,d=th.dataset.dir==='asc'?-1:1;"
    "th.dataset.dir=d>0?'asc':'desc';"
    "var k=function(r){var s=r.cells[i].textContent.trim(),n=s===''?NaN:Number(s);return isNaN(n)?s:n;};"
    "var rs=Array.from(b.rows).map(function(r){return [k(r),r];});"
    "rs.sort(function(x,y){var a=x[0],c=y[0];"
    "if(typeof a!==typeof c){return typeof a==='number'?-1:1;}return (a<c?-1:a>c?1:0)*d;});"
    "var f=document.createDocumentFragment();rs.forEach(function(p){f.appendChild(p[1]);});"
    "b.appendChild(f);});});"
)
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SORT_SCRIPT.encode()).digest()).decode()
_CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src '{_SCRIPT_HASH}'; "
        "base-uri 'none'; form-action 'none'")

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:24px auto;
max-width:1200px;padding:0 16px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}
.muted{color:#656d76}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
font-weight:600;vertical-align:middle;color:#fff;background:#6e7781}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}.badge.warn{background:#9a6700}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.meta dt{color:#656d76}dl.meta dd{margin:0}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d0d7de;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;
font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}table.cases td{max-width:380px;overflow-wrap:anywhere}
tr.bad td{background:#ffebe9}tr.bad td:first-child{border-left:4px solid #cf222e}
.err{color:#cf222e}.warn{color:#9a6700}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}svg .small{font-size:10px;fill:#656d76}
svg .track{fill:#f6f8fa}svg .bar{fill:#0969da}svg .bar.pass{fill:#1a7f37}svg .bar.fail{fill:#cf222e}
svg .up{fill:#1a7f37}svg .down{fill:#cf222e}svg .grid{stroke:#d0d7de}svg .zero{stroke:#1f2328}
svg .ci{stroke:#1f2328;stroke-width:1.5}svg .threshold{stroke:#9a6700;stroke-width:2;stroke-dasharray:3 2}
svg .hbar{fill:#54aeff}
.hists{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #d0d7de;padding:6px}
figcaption{font-size:12px}pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:600px}
"""


def to_html(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
            comparison: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML page: header, metric chart, thresholds, score distributions, totals, the
    comparison (only when given), every case, and the target snapshot. Cases are listed in the given
    order; there is no per-case chart, so 5,000 cases stay a few megabytes and milliseconds."""
    names = _metric_names(run, results)
    evaluation = run.get("evaluation") or {}
    title = f"{evaluation.get('name') or 'Evaluation'} — run {run.get('id') or ''}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        _header(run),
        _metrics_section(run),
        _thresholds_section(run),
        _distributions_section(names, results),
        _totals_section(run),
        _comparison_section(comparison) if comparison is not None else "",
        _cases_section(names, results),
        _snapshot_section(run),
        f"<script>{_SORT_SCRIPT}</script></body></html>\n",
    ]
    return "".join(parts)


# --- small helpers


def _e(value: Any) -> str:
    """Escaped text for element content and quoted attributes alike (quotes escaped too)."""
    return escape(_text(value), quote=True)


def _finite(value: Any) -> float | None:
    """A real number or ``None``: null, NaN, text and booleans are not scores to plot."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


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


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


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


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _duration(run: Mapping[str, Any]) -> str | None:
    """Wall time of the run, when both ends are known and comparable."""
    start, end = _parse_time(run.get("started_at")), _parse_time(run.get("finished_at"))
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return None
    seconds = (end - start).total_seconds()
    minutes, sec = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)} min {sec:.0f} s" if minutes else f"{sec:.1f} s"


def _dl(rows: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already HTML."""
    return '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


# --- sections


def _verdict_badge(passed: Any) -> str:
    if passed is True:
        return '<span class="badge pass" data-verdict="pass">PASS</span>'
    if passed is False:
        return '<span class="badge fail" data-verdict="fail">FAIL</span>'
    return '<span class="badge" data-verdict="none">NO VERDICT</span>'


def _header(run: Mapping[str, Any]) -> str:
    """Who was evaluated, how, and whether it passed; a partial run says how far it got."""
    evaluation = run.get("evaluation") or {}
    progress = run.get("progress") or {}
    done, total = progress.get("done"), progress.get("total")
    progress_text = f"{_e(done)} / {_e(total)} cases" if total is not None else "—"
    if isinstance(done, int) and isinstance(total, int) and done < total:
        progress_text += ' <span class="badge warn">partial</span>'
    status = run.get("status")
    status_cls = {"completed": "pass", "failed": "fail", "cancelled": "warn"}.get(str(status), "")
    rows = [
        ("Evaluation", f"{_e(evaluation.get('name'))} <span class='muted'>{_e(evaluation.get('id'))}</span>"),
        ("Type", _e(evaluation.get("type"))),
        ("Target", _e(evaluation.get("target_id"))),
        ("Run", _e(run.get("id"))),
        ("Status", f'<span class="badge {status_cls}">{_e(status or "unknown")}</span>'),
        ("Progress", progress_text),
        ("Created", _e(run.get("created_at"))),
        ("Started", _e(run.get("started_at"))),
        ("Finished", _e(run.get("finished_at"))),
    ]
    duration = _duration(run)
    if duration:
        rows.append(("Duration", duration))
    if run.get("error"):
        rows.append(("Error", f'<span class="err">{_e(run.get("error"))}</span>'))
    name = evaluation.get("name") or "Evaluation"
    return (f'<header id="summary"><h1>{_e(name)} {_verdict_badge(run.get("passed"))}</h1>'
            f"{_dl(rows)}</header>")


def _metrics_section(run: Mapping[str, Any]) -> str:
    metrics = run.get("metrics") or {}
    if not metrics:
        return '<section id="metrics"><h2>Metrics</h2><p class="muted">No metrics.</p></section>'
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class='num'>{_fmt(m.get('score'))}</td>"
        f"<td class='num'>{_fmt(m.get('ci_low'))} – {_fmt(m.get('ci_high'))}</td>"
        f"<td class='num'>{_general(m.get('covered'))} / {_general(m.get('total'))}</td>"
        f"<td class='num'>{_general(m.get('errors'))}</td><td class='num'>{_fmt(m.get('spread'))}</td></tr>"
        for name, m in ((n, metrics[n] or {}) for n in sorted(metrics))
    )
    table = ("<table><thead><tr><th>metric</th><th>score</th><th>95% CI</th><th>scored / cases</th>"
             f"<th>errors</th><th>spread</th></tr></thead><tbody>{rows}</tbody></table>")
    return f'<section id="metrics"><h2>Metrics</h2>{_metric_chart(run)}{table}</section>'


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


def _thresholds_section(run: Mapping[str, Any]) -> str:
    thresholds = run.get("thresholds") or {}
    if not thresholds:
        return '<section id="thresholds"><h2>Thresholds</h2><p class="muted">No thresholds set.</p></section>'
    rows = []
    for name in sorted(thresholds):
        t = thresholds[name] or {}
        passed = t.get("passed")
        verdict = {True: '<span class="badge pass">yes</span>', False: '<span class="badge fail">no</span>'}
        rows.append(f"<tr><td>{_e(name)}</td><td class='num'>{_fmt(t.get('threshold'))}</td>"
                    f"<td class='num'>{_fmt(t.get('score'))}</td>"
                    f"<td>{verdict.get(passed, '<span class=badge>n/a</span>')}</td></tr>")
    return ('<section id="thresholds"><h2>Thresholds</h2><table><thead><tr><th>metric</th><th>threshold</th>'
            f"<th>score</th><th>passed</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


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


def _distributions_section(names: Sequence[str], results: Sequence[Mapping[str, Any]]) -> str:
    """One histogram per metric over the per-case scores, with how many cases had no score at all."""
    if not names or not results:
        return ('<section id="distributions"><h2>Score distributions</h2>'
                '<p class="muted">No per-case scores.</p></section>')
    figures = []
    for name in names:
        scored = [v for v in ((_finite((r.get("scores") or {}).get(name))) for r in results) if v is not None]
        figures.append(_histogram_figure(name, scored, len(results) - len(scored)))
    return f'<section id="distributions"><h2>Score distributions</h2><div class="hists">{"".join(figures)}</div></section>'


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


def _totals_section(run: Mapping[str, Any]) -> str:
    totals = run.get("totals") or {}
    latency = totals.get("latency_ms") or {}
    tokens = totals.get("tokens") or {}
    rows = [
        ("Cases", _general(totals.get("cases"))),
        ("Errors", _general(totals.get("errors"))),
        ("Latency p50", f"{_general(latency.get('p50'))} ms"),
        ("Latency p95", f"{_general(latency.get('p95'))} ms"),
        ("Latency mean", f"{_general(latency.get('mean'))} ms"),
        ("Tokens in / out", f"{_general(tokens.get('input'))} / {_general(tokens.get('output'))}"),
        ("Cost", _general(totals.get("cost"))),
    ]
    return f'<section id="totals"><h2>Totals</h2>{_dl(rows)}</section>'


def _comparison_section(comparison: Mapping[str, Any]) -> str:
    """Head vs base per metric: a table with the paired statistics and a diverging chart of the deltas."""
    metrics = _with_significance(comparison)["metrics"]
    names = sorted(metrics)
    heading = (f'<section id="comparison"><h2>Run comparison</h2><p>Base <b>{_e(comparison.get("base_run_id"))}</b>'
               f' → head <b>{_e(comparison.get("head_run_id"))}</b>. Delta = head − base over cases scored in both '
               f"runs; significant when both p-values are below {ALPHA:g}.</p>")
    rows = "".join(_comparison_row(name, metrics[name]) for name in names)
    table = ("<table><thead><tr><th>metric</th><th>paired n</th><th>base mean</th><th>head mean</th>"
             "<th>delta</th><th>95% CI</th><th>p bootstrap</th><th>p permutation</th><th>wins / losses / ties</th>"
             f"<th>significant</th><th>not paired</th></tr></thead><tbody>{rows}</tbody></table>")
    notes = []
    for key, label in (("only_in_base_metrics", "Only in base"), ("only_in_head_metrics", "Only in head")):
        if comparison.get(key):
            notes.append(f"<p class='muted'>{label}: {', '.join(_e(m) for m in comparison[key])}</p>")
    chart = _delta_chart(names, metrics) if names else "<p class='muted'>No shared metrics.</p>"
    return f"{heading}{chart}{table}{''.join(notes)}</section>"


def _comparison_row(name: str, m: Mapping[str, Any]) -> str:
    verdict = '<span class="badge pass">yes</span>' if m["significant"] else "no"
    unpaired = (f"{len(m.get('only_in_base') or [])} only base, {len(m.get('only_in_head') or [])} only head, "
                f"{len(m.get('unscored') or [])} unscored")
    return (f"<tr data-metric=\"{_e(name)}\"><td>{_e(name)}</td><td class='num'>{_general(m.get('n'))}</td>"
            f"<td class='num'>{_fmt(m.get('base_mean'))}</td><td class='num'>{_fmt(m.get('head_mean'))}</td>"
            f"<td class='num'>{_fmt(m.get('delta'), signed=True)}</td>"
            f"<td class='num'>{_fmt(m.get('ci_low'), signed=True)} – {_fmt(m.get('ci_high'), signed=True)}</td>"
            f"<td class='num'>{_fmt(m.get('p_bootstrap'), 4)}</td><td class='num'>{_fmt(m.get('p_permutation'), 4)}</td>"
            f"<td class='num'>{_general(m.get('wins'))} / {_general(m.get('losses'))} / {_general(m.get('ties'))}</td>"
            f"<td>{verdict}</td><td>{unpaired}</td></tr>")


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


def _cases_section(names: Sequence[str], results: Sequence[Mapping[str, Any]]) -> str:
    """Every case; failed ones (error, timeout) stand out in red. Click a header to sort (optional)."""
    if not results:
        return '<section id="cases"><h2>Cases</h2><p class="muted">No case results.</p></section>'
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = [_case_row(r, names) for r in results]
    return (f'<section id="cases"><h2>Cases ({len(results)})</h2><table class="cases sortable"><thead><tr>'
            f"<th>#</th><th>input</th><th>status</th>{head}<th>answer</th><th>retrieved</th><th>latency ms</th>"
            f"<th>errors / warnings</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _case_row(result: Mapping[str, Any], names: Sequence[str]) -> str:
    status = result.get("status")
    bad = status not in (None, "ok")
    scores = result.get("scores") or {}
    metric_errors = result.get("metric_errors") or {}
    shown_status = f'<span class="badge fail">{_e(status)}</span>' if bad else _e(status)
    cells = [f"<td class='num'>{_e(result.get('ordinal'))}</td>",
             f"<td>{_e(_truncate(_text(result.get('input')), INPUT_CHARS))}</td>",
             f"<td>{shown_status}</td>"]
    for name in names:
        value = _finite(scores.get(name))
        if value is None and name in metric_errors:
            cells.append(f"<td class='num err' title=\"{_e(metric_errors[name])}\">error</td>")
        else:
            cells.append(f"<td class='num'>{_fmt(value)}</td>")
    sources = [_source_name(s) for s in result.get("retrieved") or []]
    shown = ", ".join(_e(s) for s in sources[:MAX_SOURCES])
    if len(sources) > MAX_SOURCES:
        shown += f" <span class='muted'>+{len(sources) - MAX_SOURCES} more</span>"
    cells += [f"<td>{_e(_truncate(_text(result.get('answer')), ANSWER_CHARS))}</td>", f"<td>{shown}</td>",
              f"<td class='num'>{_fmt(result.get('latency_ms'), 1)}</td>", f"<td>{_problems(result)}</td>"]
    cls = ' class="bad"' if bad else ""
    return f'<tr{cls} data-case-id="{_e(result.get("case_id"))}">{"".join(cells)}</tr>'


def _problems(result: Mapping[str, Any]) -> str:
    """The case's error, its metrics' errors and its warnings, one per line."""
    lines = []
    if result.get("error"):
        lines.append(f"<span class='err'>{_e(result['error'])}</span>")
    for name, message in sorted((result.get("metric_errors") or {}).items()):
        lines.append(f"<span class='err'>{_e(name)}: {_e(message)}</span>")
    lines += [f"<span class='warn'>{_e(w)}</span>" for w in result.get("warnings") or []]
    return "<br>".join(lines)


def _snapshot_section(run: Mapping[str, Any]) -> str:
    """What exactly was evaluated (settings, model, prompt version), collapsed: needed to reproduce a run,
    rarely to read it."""
    snapshot = json.dumps(_jsonable(run.get("target_snapshot")), ensure_ascii=False, indent=2, sort_keys=True)
    return (f'<section id="snapshot"><h2>Target snapshot</h2><details><summary>Settings of the evaluated '
            f"target at run time</summary><pre>{_e(snapshot)}</pre></details></section>")
