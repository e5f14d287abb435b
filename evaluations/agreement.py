"""Agreement between two raters (an LLM judge and the humans who graded the same cases), and the human
pass rate. Pure functions on plain lists: the web layer pairs the cases, this module only counts.

* ``cohen_kappa`` on pass/fail: kappa = (p_o - p_e) / (1 - p_e), where p_o is the share of cases both
  raters put in the same class and p_e the agreement expected by chance from each rater's own pass rate.
  1 is perfect agreement, 0 no better than chance, below 0 worse than chance.
* ``spearman`` on graded scores (humans 1-5, the judge 0..1): Pearson's correlation of the ranks, ties
  given their average rank. Rank correlation ignores the scales, so 1-5 and 0..1 compare directly.

Degenerate inputs have a documented result, never an exception or a NaN: with no paired case, or when
a statistic is 0/0, the value is ``None`` and ``reason`` says why (see each function).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evaluations.stats import bootstrap_ci

# A judge score in 0..1 counts as a "pass" from this value (a 3 on the judges' 1-5 scale).
JUDGE_PASS_AT = 0.5


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Cohen's kappa of two raters' pass (True) / fail (False) on the same cases, in the same order.

    Returns ``{"kappa", "n", "observed_agreement", "expected_agreement", "table", "reason"}`` where
    ``table`` is the 2x2 count ``{"pass_pass", "pass_fail", "fail_pass", "fail_fail"}`` (first rater
    first). Degenerate cases: ``n == 0`` gives ``kappa None`` ("no case rated by both"); when both
    raters put every case in the same single class, chance agreement is 1 and kappa is 0/0: ``None``
    with the reason, while ``observed_agreement`` still shows the (perfect) raw agreement.
    """
    if len(a) != len(b):
        raise ValueError(f"both raters must rate the same cases ({len(a)} != {len(b)})")
    n = len(a)
    table = {"pass_pass": 0, "pass_fail": 0, "fail_pass": 0, "fail_fail": 0}
    for x, y in zip(a, b, strict=True):
        table[f"{'pass' if x else 'fail'}_{'pass' if y else 'fail'}"] += 1
    result: dict[str, Any] = {"kappa": None, "n": n, "observed_agreement": None, "expected_agreement": None,
                              "table": table, "reason": None}
    if n == 0:
        result["reason"] = "no case rated by both"
        return result
    observed = (table["pass_pass"] + table["fail_fail"]) / n
    a_pass = (table["pass_pass"] + table["pass_fail"]) / n
    b_pass = (table["pass_pass"] + table["fail_pass"]) / n
    expected = a_pass * b_pass + (1 - a_pass) * (1 - b_pass)
    result.update(observed_agreement=observed, expected_agreement=expected)
    if math.isclose(expected, 1.0):
        result["reason"] = "both raters gave every case the same single class: chance agreement is 1, kappa is undefined"
        return result
    result["kappa"] = (observed - expected) / (1 - expected)
    return result


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span ([10, 20, 20] -> [1, 2.5, 2.5])."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Spearman's rank correlation of paired scores: ``{"rho", "n", "reason"}``.

    Degenerate cases: fewer than 2 pairs, or one side constant (its ranks have no spread, so the
    correlation is 0/0), give ``rho None`` with the reason.
    """
    if len(x) != len(y):
        raise ValueError(f"both raters must rate the same cases ({len(x)} != {len(y)})")
    n = len(x)
    if n < 2:
        return {"rho": None, "n": n, "reason": "fewer than 2 cases scored by both"}
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = math.fsum(rx) / n, math.fsum(ry) / n
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.fsum((a - mx) ** 2 for a in rx)
    vy = math.fsum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return {"rho": None, "n": n, "reason": "one rater gave every case the same score: the correlation is undefined"}
    return {"rho": cov / math.sqrt(vx * vy), "n": n, "reason": None}


def pass_rate(verdicts: Sequence[bool], total_cases: int, *, confidence: float = 0.95) -> dict[str, Any]:
    """Human pass rate over the graded cases with a bootstrap CI (``evaluations.stats``), and coverage.

    ``{"score", "ci_low", "ci_high", "covered", "total", "coverage"}``, shaped like a metric aggregate so
    reports show it next to the others; no verdict gives ``score None``.
    """
    covered = len(verdicts)
    out: dict[str, Any] = {"score": None, "ci_low": None, "ci_high": None, "covered": covered,
                           "total": total_cases, "coverage": covered / total_cases if total_cases else None}
    if covered:
        ci = bootstrap_ci([1.0 if v else 0.0 for v in verdicts], confidence=confidence)
        out.update(score=ci.mean, ci_low=ci.low, ci_high=ci.high)
    return out


def judge_agreement(judge: dict[str, float | None], human_verdicts: dict[str, bool],
                    human_scores: dict[str, int]) -> dict[str, Any]:
    """One judge metric against the humans, over the cases both scored (keys are case ids).

    The judge's 0..1 score is a pass from ``JUDGE_PASS_AT``; kappa pairs it with the human verdicts,
    Spearman pairs the raw judge score with the human 1-5 scores.
    """
    both = sorted(c for c in human_verdicts if judge.get(c) is not None)
    kappa = cohen_kappa([judge[c] >= JUDGE_PASS_AT for c in both], [human_verdicts[c] for c in both])
    ranked = sorted(c for c in human_scores if judge.get(c) is not None)
    rho = spearman([judge[c] for c in ranked], [float(human_scores[c]) for c in ranked])
    return {"judge_pass_at": JUDGE_PASS_AT, "kappa": kappa, "spearman": rho}
