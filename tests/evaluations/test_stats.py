"""Bootstrap confidence intervals of a mean."""
from __future__ import annotations

import numpy as np
import pytest

from evaluations.metrics.base import make_result
from evaluations.stats import bootstrap_ci


def _bernoulli(n, p=0.7, seed=1):
    return (np.random.default_rng(seed).random(n) < p).astype(float).tolist()


def test_interval_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(5).random(50).tolist()  # continuous, so seeds visibly differ
    ci = bootstrap_ci(values, seed=7)
    assert ci.low <= ci.mean <= ci.high
    assert ci.mean == pytest.approx(np.mean(values))
    assert (ci.n, ci.confidence) == (50, 0.95)
    assert bootstrap_ci(values, seed=7) == ci  # same seed, same interval
    assert bootstrap_ci(values, seed=8) != ci


def test_interval_narrows_with_more_cases():
    widths = [bootstrap_ci(_bernoulli(n), seed=0) for n in (20, 200, 2000)]
    w = [ci.high - ci.low for ci in widths]
    assert w[0] > w[1] > w[2]
    # Sanity against the normal approximation: width ~ 2 * 1.96 * sd / sqrt(n)
    values = np.array(_bernoulli(2000))
    normal = 2 * 1.96 * values.std() / np.sqrt(len(values))
    assert w[2] == pytest.approx(normal, rel=0.15)


def test_higher_confidence_gives_a_wider_interval():
    values = _bernoulli(100)
    assert (bootstrap_ci(values, confidence=0.99).high - bootstrap_ci(values, confidence=0.99).low
            > bootstrap_ci(values, confidence=0.8).high - bootstrap_ci(values, confidence=0.8).low)


def test_per_case_mappings_with_none_are_accepted():
    result = make_result("m", {"a": 1.0, "b": None, "c": 0.0, "d": 1.0})
    ci = bootstrap_ci(result.per_case)
    assert ci.n == 3 and ci.mean == pytest.approx(2 / 3) == result.score


def test_edge_cases():
    single = bootstrap_ci([0.4])
    assert (single.low, single.mean, single.high) == (0.4, 0.4, 0.4)
    constant = bootstrap_ci([0.3] * 40)
    assert constant.low == constant.mean == constant.high == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no scored values"):
        bootstrap_ci([None, None])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=95)


def test_large_samples_are_resampled_in_blocks():
    values = np.random.default_rng(3).random(20_000)
    ci = bootstrap_ci(values, n_resamples=500)
    assert ci.low < values.mean() < ci.high
