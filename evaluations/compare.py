"""Compare two runs of the same evaluation cases, metric by metric, with paired significance.

Only cases scored in both runs are paired (``n``); the others are reported, not silently dropped:
``only_in_base``/``only_in_head`` (case absent from one run) and ``unscored`` (present in both but
``None`` in at least one, e.g. a judge error). Metrics are assumed higher-is-better: a *win* is a case
where head beats base by more than ``tie_tolerance``.

Two paired tests on the per-case differences d = head - base, both two-sided and seeded:

* paired bootstrap: resample the cases, giving a CI for the mean delta and a p-value from the
  resampled means re-centred on 0 (the null), ``P(|mean* - mean| >= |mean|)``;
* paired permutation (sign flip): under the null head and base are exchangeable per case, so each d
  may flip sign; ``P(|mean of flipped d| >= |mean d|)``. It is exact (all 2^n patterns) when
  2^n <= n_resamples, Monte Carlo otherwise, with the +1 correction so p is never 0.

Identical runs give delta 0, p = 1 for both tests, and all ties.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from evaluations.metrics.base import MetricResult
from evaluations.stats import bootstrap_means

Scores = Mapping[str, float | None]
RunScores = Mapping[str, MetricResult | Scores]

# |statistic| comparisons allow float noise: flipped sums of the same numbers differ in the last bits.
_EPS = 1e-12


@dataclass(frozen=True)
class MetricComparison:
    """Head vs base on one metric, over the ``n`` cases scored in both runs."""

    metric: str
    n: int
    base_mean: float | None
    head_mean: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_bootstrap: float | None
    p_permutation: float | None
    wins: int
    losses: int
    ties: int
    per_case_delta: dict[str, float] = field(default_factory=dict)
    only_in_base: list[str] = field(default_factory=list)
    only_in_head: list[str] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)

    def significant(self, alpha: float = 0.05) -> bool:
        """Both tests reject "no difference" at ``alpha``: conservative, and robust to either's quirks."""
        return (self.p_bootstrap is not None and self.p_permutation is not None
                and max(self.p_bootstrap, self.p_permutation) < alpha)


@dataclass(frozen=True)
class RunComparison:
    """All metric comparisons, plus metrics that only one of the runs has."""

    metrics: dict[str, MetricComparison]
    only_in_base_metrics: list[str]
    only_in_head_metrics: list[str]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "metrics": {name: asdict(c) for name, c in self.metrics.items()},
            "only_in_base_metrics": list(self.only_in_base_metrics),
            "only_in_head_metrics": list(self.only_in_head_metrics),
        }


def _per_case(scores: MetricResult | Scores) -> dict[str, float | None]:
    return dict(scores.per_case if isinstance(scores, MetricResult) else scores)


def paired_bootstrap(diffs: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 2000,
                     seed: int | None = 0) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) of the mean of paired differences, by resampling cases."""
    observed = float(diffs.mean())
    means = bootstrap_means(diffs, n_resamples, np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    extreme = int(np.count_nonzero(np.abs(means - observed) >= abs(observed) - _EPS))
    return float(low), float(high), (extreme + 1) / (n_resamples + 1)


def sign_flip_test(diffs: np.ndarray, *, n_resamples: int = 10_000, seed: int | None = 0) -> float:
    """Two-sided p-value of the paired permutation (sign-flip) test on the mean difference."""
    n = len(diffs)
    observed = abs(float(diffs.mean())) - _EPS
    if 2**n <= n_resamples:
        # Few cases: enumerate every sign pattern, so the p-value is exact (no +1 needed: the
        # identity pattern is among them).
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ diffs) / n
        return float(np.count_nonzero(stats >= observed)) / len(signs)
    rng = np.random.default_rng(seed)
    extreme, done, block = 0, 0, max(1, 2_000_000 // n)
    while done < n_resamples:
        size = min(block, n_resamples - done)
        signs = rng.choice((-1.0, 1.0), size=(size, n))
        extreme += int(np.count_nonzero(np.abs(signs @ diffs) / n >= observed))
        done += size
    return (extreme + 1) / (n_resamples + 1)


def compare_metric(metric: str, base: MetricResult | Scores, head: MetricResult | Scores, *,
                   tie_tolerance: float = 1e-9, confidence: float = 0.95, n_resamples: int = 2000,
                   seed: int | None = 0) -> MetricComparison:
    """Paired comparison of one metric's per-case scores (head - base)."""
    b, h = _per_case(base), _per_case(head)
    common = [c for c in b if c in h]
    paired = [c for c in common if b[c] is not None and h[c] is not None]
    paired_set = set(paired)
    unscored = [c for c in common if c not in paired_set]
    only_base = [c for c in b if c not in h]
    only_head = [c for c in h if c not in b]
    if not paired:
        return MetricComparison(metric, 0, None, None, None, None, None, None, None, 0, 0, 0,
                                {}, only_base, only_head, unscored)
    base_arr = np.array([b[c] for c in paired], dtype=np.float64)
    head_arr = np.array([h[c] for c in paired], dtype=np.float64)
    diffs = head_arr - base_arr
    ci_low, ci_high, p_boot = paired_bootstrap(diffs, confidence=confidence, n_resamples=n_resamples,
                                               seed=seed)
    p_perm = sign_flip_test(diffs, n_resamples=n_resamples, seed=seed)
    return MetricComparison(
        metric=metric,
        n=len(paired),
        base_mean=float(base_arr.mean()),
        head_mean=float(head_arr.mean()),
        delta=float(diffs.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        p_bootstrap=p_boot,
        p_permutation=p_perm,
        wins=int(np.count_nonzero(diffs > tie_tolerance)),
        losses=int(np.count_nonzero(diffs < -tie_tolerance)),
        ties=int(np.count_nonzero(np.abs(diffs) <= tie_tolerance)),
        per_case_delta={c: float(d) for c, d in zip(paired, diffs, strict=True)},
        only_in_base=only_base,
        only_in_head=only_head,
        unscored=unscored,
    )


def compare_runs(base: RunScores, head: RunScores, *, tie_tolerance: float = 1e-9, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int | None = 0) -> RunComparison:
    """Compare two runs given as ``{metric: MetricResult or {case_id: score}}``, metric by metric."""
    shared = [m for m in base if m in head]
    metrics = {
        m: compare_metric(m, base[m], head[m], tie_tolerance=tie_tolerance, confidence=confidence,
                          n_resamples=n_resamples, seed=seed)
        for m in shared
    }
    return RunComparison(metrics, [m for m in base if m not in head], [m for m in head if m not in base])
