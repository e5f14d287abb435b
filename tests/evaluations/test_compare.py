"""Run-vs-run comparison: deltas, paired bootstrap and sign-flip tests, wins/losses/ties."""
from __future__ import annotations

import numpy as np
import pytest

from evaluations.compare import compare_metric, compare_runs, sign_flip_test
from evaluations.metrics.base import make_result


def _runs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, n)
    head = base + 0.2 + rng.uniform(-0.05, 0.05, n)  # better on every case by 0.15 to 0.25
    ids = [f"case{i}" for i in range(n)]
    return dict(zip(ids, base.tolist(), strict=True)), dict(zip(ids, head.tolist(), strict=True))


def test_clearly_better_head_is_significant():
    base, head = _runs()
    c = compare_metric("f1", base, head)
    assert c.n == 40 and (c.wins, c.losses, c.ties) == (40, 0, 0)
    assert c.delta == pytest.approx(np.mean(list(head.values())) - np.mean(list(base.values())))
    assert 0.15 < c.ci_low < c.delta < c.ci_high < 0.25
    assert c.p_bootstrap < 0.05 and c.p_permutation < 0.05
    # With 2000 resamples and nothing as extreme, the +1 correction gives the smallest p, 1/2001
    assert c.p_permutation == pytest.approx(1 / 2001)
    assert c.significant()


def test_identical_runs_are_all_ties_with_p_one():
    base, _ = _runs()
    c = compare_metric("f1", base, dict(base))
    assert c.delta == 0.0 and (c.wins, c.losses, c.ties) == (0, 0, 40)
    assert c.p_bootstrap == 1.0 and c.p_permutation == 1.0
    assert c.ci_low == c.ci_high == 0.0
    assert not c.significant()


def test_small_samples_use_the_exact_sign_flip_distribution():
    # diffs (1, 1, 1): of the 2^3 = 8 sign patterns only +++ and --- reach |mean| = 1 -> p = 2/8
    assert sign_flip_test(np.array([1.0, 1.0, 1.0])) == 0.25
    # diffs (1, -1): patterns give means 0, 1, -1, 0 -> |mean| >= 0 for all -> p = 1
    assert sign_flip_test(np.array([1.0, -1.0])) == 1.0


def test_opposite_direction_is_a_loss_with_negative_delta():
    base, head = _runs()
    c = compare_metric("f1", head, base)
    assert c.delta < 0 and c.losses == 40 and c.p_permutation < 0.05


def test_tie_tolerance():
    base = {"a": 0.5, "b": 0.5, "c": 0.5}
    head = {"a": 0.5 + 1e-12, "b": 0.6, "c": 0.45}
    c = compare_metric("m", base, head, tie_tolerance=0.01)
    assert (c.wins, c.losses, c.ties) == (1, 1, 1)
    assert c.per_case_delta["b"] == pytest.approx(0.1)


def test_only_cases_in_both_runs_are_paired_and_the_rest_is_reported():
    base = {"a": 0.1, "b": 0.2, "c": None, "only_base": 0.3}
    head = {"a": 0.4, "b": 0.2, "c": 0.9, "only_head": 1.0}
    c = compare_metric("m", base, head)
    assert c.n == 2 and c.per_case_delta == {"a": pytest.approx(0.3), "b": 0.0}
    assert (c.base_mean, c.head_mean) == (pytest.approx(0.15), pytest.approx(0.3))
    assert c.only_in_base == ["only_base"] and c.only_in_head == ["only_head"] and c.unscored == ["c"]


def test_nothing_paired_gives_empty_comparison():
    c = compare_metric("m", {"a": None}, {"b": 1.0})
    assert c.n == 0 and c.delta is None and c.p_permutation is None and not c.significant()


def test_compare_runs_takes_metric_results_and_reports_unmatched_metrics():
    base, head = _runs()
    base_run = {"f1": make_result("f1", base), "em": make_result("em", base), "old": make_result("old", base)}
    head_run = {"f1": make_result("f1", head), "em": base, "new": head}
    result = compare_runs(base_run, head_run, seed=3)
    assert set(result.metrics) == {"f1", "em"}
    assert result.metrics["f1"].significant() and result.metrics["em"].p_permutation == 1.0
    assert result.only_in_base_metrics == ["old"] and result.only_in_head_metrics == ["new"]
    as_dict = result.to_dict()
    assert as_dict["metrics"]["em"]["ties"] == 40
    # Seeded: the same call gives the same p-values
    assert compare_runs(base_run, head_run, seed=3).metrics["f1"] == result.metrics["f1"]
