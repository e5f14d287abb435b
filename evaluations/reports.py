"""Run reports: one evaluation run as JSON (for machines) and CSV (for spreadsheets); the HTML report
for people is in ``evaluations.report_html``.

The inputs are the plain dicts the API already returns (the run, its per-case results and, optionally,
a run-vs-run comparison), so exporting never recomputes anything and this module needs no web stack.

* CSV cells are guarded against formula injection (OWASP): text starting with ``= + - @``, tab or CR
  gets a leading apostrophe, but numbers are left alone so ``-0.25`` stays a number.
* Unscored cases (``None``) stay empty, never 0: a 0 would read as a failure the system did not have,
  exactly what ``MetricResult`` avoids in its means.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

ALPHA = 0.05  # significance level when a comparison does not say (both p-values must be below it)
HIST_BINS = 10
ANSWER_CHARS = 300
INPUT_CHARS = 500
MAX_SOURCES = 5

CSV_COLUMNS = ("ordinal", "case_id", "status", "error", "input", "expected_output", "answer",
               "latency_ms", "tokens_input", "tokens_output", "cost", "attempts", "warnings", "retrieved",
               "metadata")

# Layout of the horizontal bar charts (metric scores and comparison deltas), in SVG user units.
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


def _finite(value: Any) -> float | None:
    """A real number or ``None``: null, NaN, text and booleans are not scores to plot."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


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
        result.get("metadata") or None,
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
