"""The HTML report of an evaluation run: one self-contained file, for people.

* It must open from an e-mail attachment or an air-gapped disk: inline CSS and SVG only, nothing fetched
  (no fonts, scripts, images, links), and a Content-Security-Policy that forbids loading anything and
  allows only the one sorting script, by hash. Every user-provided string is ``html.escape``-d anyway;
  the CSP is the second lock, should one ever slip through.
* Charts are SVG (evaluations.report_svg) with the numbers written as labels and as ``data-*`` attributes, so the
  report reads without JavaScript (the script only sorts the case table) and can be checked by tests.
* Unscored cases (``None``) show as "—", never 0.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from evaluations.report_human import human_section
from evaluations.report_svg import (
    _delta_chart,
    _e,
    _fmt,
    _general,
    _histogram_figure,
    _metric_chart,
    _truncate,
)
from evaluations.reports import (
    ALPHA,
    ANSWER_CHARS,
    INPUT_CHARS,
    MAX_SOURCES,
    _finite,
    _jsonable,
    _metric_names,
    _source_name,
    _text,
    _with_significance,
)

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
        human_section(run),
        _comparison_section(comparison) if comparison is not None else "",
        _cases_section(names, results),
        _snapshot_section(run),
        f"<script>{_SORT_SCRIPT}</script></body></html>\n",
    ]
    return "".join(parts)


# --- small helpers


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
        f"<td class='num'>{_general(m.get('errors'))}</td><td class='num'>{_general(m.get('not_applicable'))}</td>"
        f"<td class='num'>{_fmt(m.get('spread'))}</td></tr>"
        for name, m in ((n, metrics[n] or {}) for n in sorted(metrics))
    )
    table = ("<table><thead><tr><th>metric</th><th>score</th><th>95% CI</th><th>scored / cases</th>"
             "<th title='scoring failed'>errors</th><th title='the case gives the metric nothing to score'>"
             "not applicable</th><th title='standard deviation of the per-case scores'>spread (sd)</th></tr>"
             f"</thead><tbody>{rows}</tbody></table>")
    return f'<section id="metrics"><h2>Metrics</h2>{_metric_chart(run)}{table}</section>'


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


def _cases_section(names: Sequence[str], results: Sequence[Mapping[str, Any]]) -> str:
    """Every case; failed ones (error, timeout) stand out in red. Click a header to sort (optional)."""
    if not results:
        return '<section id="cases"><h2>Cases</h2><p class="muted">No case results.</p></section>'
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = [_case_row(r, names) for r in results]
    return (f'<section id="cases"><h2>Cases ({len(results)})</h2><p class="muted">Retrieved: each document '
            "once, at its best rank; <b>✓ bold</b> ones are among the case's expected sources. n/a: the case gives "
            "the metric nothing to score.</p><table class=\"cases sortable\"><thead><tr>"
            f"<th>#</th><th>input</th><th>metadata</th><th>status</th>{head}<th>answer</th><th>retrieved</th>"
            f"<th>latency ms</th><th>errors / warnings</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</section>")


def _case_row(result: Mapping[str, Any], names: Sequence[str]) -> str:
    status = result.get("status")
    bad = status not in (None, "ok")
    scores = result.get("scores") or {}
    metric_errors = result.get("metric_errors") or {}
    shown_status = f'<span class="badge fail">{_e(status)}</span>' if bad else _e(status)
    not_applicable = result.get("not_applicable") or {}
    metadata = result.get("metadata") or {}
    cells = [f"<td class='num'>{_e(result.get('ordinal'))}</td>",
             f"<td>{_e(_truncate(_text(result.get('input')), INPUT_CHARS))}</td>",
             f"<td class='muted'>{_e(_truncate(_text(metadata), INPUT_CHARS)) if metadata else ''}</td>",
             f"<td>{shown_status}</td>"]
    for name in names:
        value = _finite(scores.get(name))
        if value is None and name in metric_errors:
            cells.append(f"<td class='num err' title=\"{_e(metric_errors[name])}\">error</td>")
        elif value is None and name in not_applicable:
            cells.append(f"<td class='num muted' title=\"{_e(not_applicable[name])}\">n/a</td>")
        else:
            cells.append(f"<td class='num'>{_fmt(value)}</td>")
    cells += [f"<td>{_e(_truncate(_text(result.get('answer')), ANSWER_CHARS))}</td>",
              f"<td>{_retrieved_cell(result)}</td>",
              f"<td class='num'>{_fmt(result.get('latency_ms'), 1)}</td>", f"<td>{_problems(result)}</td>"]
    cls = ' class="bad"' if bad else ""
    return f'<tr{cls} data-case-id="{_e(result.get("case_id"))}">{"".join(cells)}</tr>'


def _retrieved_cell(result: Mapping[str, Any]) -> str:
    """The retrieved documents, each once at its best rank (several chunks of one document are one
    document to a reader, as to the metrics); those the case expects are marked."""
    expected = {str(s.get("id")) for s in result.get("expected_sources") or []
                if isinstance(s, Mapping) and (s.get("grade") is None or s.get("grade", 1) > 0)}
    documents: dict[str, bool] = {}
    for item in result.get("retrieved") or []:
        name = _source_name(item)
        keys = {str(item.get(k)) for k in ("chunk_id", "document_id", "external_id")
                if isinstance(item, Mapping) and item.get(k)} or {name}
        documents[name] = documents.get(name, False) or bool(keys & expected)
    shown = [f"<b class='relevant' data-relevant='true'>✓ {_e(name)}</b>" if relevant else _e(name)
             for name, relevant in list(documents.items())[:MAX_SOURCES]]
    text = ", ".join(shown)
    if len(documents) > MAX_SOURCES:
        text += f" <span class='muted'>+{len(documents) - MAX_SOURCES} more</span>"
    return text


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
