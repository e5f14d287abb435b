"""The HTML report's human-review section: the reviewers' pass rate and how far each LLM judge agrees
with them (see ``evaluations.agreement``). Reads the run's ``human_review`` dict; nothing is recomputed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluations.report_svg import _e, _fmt, _general


def human_section(run: Mapping[str, Any]) -> str:
    """Empty when no case of the run is under review."""
    review = run.get("human_review")
    if not review:
        return ""
    human = review.get("human") or {}
    items = review.get("items") or {}
    summary = (f"<p>Pass rate <b>{_fmt(human.get('score'))}</b> (95% CI {_fmt(human.get('ci_low'))} – "
               f"{_fmt(human.get('ci_high'))}) over {_general(human.get('covered'))} verdicts; coverage "
               f"{_fmt(human.get('coverage'))} of {_general(human.get('total'))} cases; mean score (1-5) "
               f"{_fmt(human.get('score_mean'))}. Items: {_general(items.get('PENDING'))} pending, "
               f"{_general(items.get('IN_PROGRESS'))} in progress, {_general(items.get('COMPLETED'))} graded.</p>")
    rows = "".join(_agreement_row(name, a) for name, a in sorted((review.get("agreement") or {}).items()))
    table = ("<p class='muted'>No LLM judge metric in this run.</p>" if not rows else
             "<table><thead><tr><th>judge metric</th><th>Cohen's kappa (pass/fail)</th><th>n</th>"
             "<th>raw agreement</th><th>Spearman (score vs 1-5)</th><th>n</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    return (f'<section id="human-review"><h2>Human review</h2>{summary}<h3>Judge–human agreement</h3>'
            f"{table}</section>")


def _agreement_row(name: str, agreement: Mapping[str, Any]) -> str:
    kappa, rho = agreement.get("kappa") or {}, agreement.get("spearman") or {}
    return (f"<tr data-judge=\"{_e(name)}\"><td>{_e(name)}</td>"
            f"<td class='num' title=\"{_e(kappa.get('reason') or '')}\">{_fmt(kappa.get('kappa'))}</td>"
            f"<td class='num'>{_general(kappa.get('n'))}</td><td class='num'>{_fmt(kappa.get('observed_agreement'))}</td>"
            f"<td class='num' title=\"{_e(rho.get('reason') or '')}\">{_fmt(rho.get('rho'))}</td>"
            f"<td class='num'>{_general(rho.get('n'))}</td></tr>")
