"""Judge-vs-human agreement: kappa and Spearman checked against values worked out by hand."""
import math

import pytest

from evaluations.agreement import average_ranks, cohen_kappa, judge_agreement, pass_rate, spearman


def test_kappa_from_a_2x2_table_by_hand():
    # judge \ human: pass/pass 4, pass/fail 1, fail/pass 2, fail/fail 3 (n = 10)
    judge = [True] * 4 + [True] + [False] * 2 + [False] * 3
    human = [True] * 4 + [False] + [True] * 2 + [False] * 3
    result = cohen_kappa(judge, human)
    assert result["table"] == {"pass_pass": 4, "pass_fail": 1, "fail_pass": 2, "fail_fail": 3}
    # p_o = (4 + 3) / 10 = 0.7; judge passes 5/10, humans 6/10: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5
    assert result["observed_agreement"] == pytest.approx(0.7)
    assert result["expected_agreement"] == pytest.approx(0.5)
    assert result["kappa"] == pytest.approx((0.7 - 0.5) / (1 - 0.5)) == pytest.approx(0.4)
    assert result["n"] == 10 and result["reason"] is None


def test_kappa_perfect_and_worse_than_chance():
    assert cohen_kappa([True, False, True, False], [True, False, True, False])["kappa"] == pytest.approx(1.0)
    # total disagreement with balanced classes: p_o = 0, p_e = 0.5 -> -1
    assert cohen_kappa([True, False], [False, True])["kappa"] == pytest.approx(-1.0)


def test_kappa_degenerate_cases_are_documented_not_a_crash():
    empty = cohen_kappa([], [])
    assert empty["kappa"] is None and empty["n"] == 0 and "no case" in empty["reason"]
    same = cohen_kappa([True, True, True], [True, True, True])
    assert same["kappa"] is None and same["observed_agreement"] == 1.0 and "undefined" in same["reason"]
    # one rater constant, the other not: defined, and 0 (p_o = 2/3 = p_e)
    one_sided = cohen_kappa([True, True, True], [True, True, False])
    assert one_sided["kappa"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        cohen_kappa([True], [])


def test_spearman_by_hand():
    # no ties: d = [-1, 1, -1, 1, 0], sum d^2 = 4, rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])["rho"] == pytest.approx(0.8)
    # ties take their average rank: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4]
    # cov = 2.25 + 0 + 0 + 2.25 = 4.5, var x = 4.5, var y = 5 -> rho = 4.5 / sqrt(4.5 * 5)
    tied = spearman([0.0, 0.25, 0.25, 1.0], [1, 2, 3, 4])
    assert tied["rho"] == pytest.approx(4.5 / math.sqrt(22.5)) and tied["n"] == 4
    assert average_ranks([10, 20, 20]) == [1, 2.5, 2.5]
    assert spearman([1, 2, 3], [3, 2, 1])["rho"] == pytest.approx(-1.0)


def test_spearman_degenerate_cases():
    assert spearman([1], [2]) == {"rho": None, "n": 1, "reason": "fewer than 2 cases scored by both"}
    constant = spearman([3, 3, 3], [1, 2, 3])
    assert constant["rho"] is None and "same score" in constant["reason"]


def test_pass_rate_has_an_interval_and_coverage():
    rate = pass_rate([True, True, False, True], total_cases=8)
    assert rate["score"] == pytest.approx(0.75) and rate["covered"] == 4 and rate["coverage"] == 0.5
    assert 0.0 <= rate["ci_low"] <= 0.75 <= rate["ci_high"] <= 1.0
    assert pass_rate([], total_cases=3) == {"score": None, "ci_low": None, "ci_high": None, "covered": 0,
                                            "total": 3, "coverage": 0.0}


def test_judge_agreement_pairs_only_cases_both_scored():
    judge = {"a": 1.0, "b": 0.25, "c": None, "d": 0.75}
    verdicts = {"a": True, "b": False, "c": True, "e": False}
    scores = {"a": 5, "b": 2, "d": 3}
    result = judge_agreement(judge, verdicts, scores)
    assert result["kappa"]["n"] == 2 and result["kappa"]["kappa"] == pytest.approx(1.0)
    assert result["spearman"]["n"] == 3 and result["spearman"]["rho"] == pytest.approx(1.0)
