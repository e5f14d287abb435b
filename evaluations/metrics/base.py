"""The one result shape every metric returns: an aggregate plus per-case scores (Haystack style).

A case whose score is undefined (a citation metric with nothing cited, a judge that failed, a query
without judgments) holds ``None`` in ``per_case``. Aggregates *exclude* ``None`` and say so through
``covered``/``total``: averaging an undefined case in as 0 would punish the system for the metric's
blind spot, and NaN would poison every later sum. ``score`` is ``None`` when no case was scored.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricResult:
    """An aggregate score and the per-case scores it was computed from.

    ``errors`` maps case ids to why a case could not be scored (e.g. a ``JudgeError``); ``details``
    holds per-case extras (judge reasons, claims, spread over repeats); ``summary`` metric-level extras.
    """

    name: str
    score: float | None
    per_case: dict[str, float | None]
    errors: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of cases the metric was asked about."""
        return len(self.per_case)

    @property
    def covered(self) -> int:
        """Number of cases that received a score (the ones the mean is taken over)."""
        return sum(1 for v in self.per_case.values() if v is not None)

    @property
    def coverage(self) -> float:
        """``covered / total`` (1.0 for an empty metric, as nothing was left out)."""
        return self.covered / self.total if self.total else 1.0

    def scored(self) -> dict[str, float]:
        """Only the cases with a score: the input to statistics and comparisons."""
        return {case: v for case, v in self.per_case.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (used by reports and, later, the API)."""
        return {
            "name": self.name,
            "score": self.score,
            "covered": self.covered,
            "total": self.total,
            "errors": dict(self.errors),
            "per_case": dict(self.per_case),
            "details": {k: dict(v) for k, v in self.details.items()},
            "summary": dict(self.summary),
        }


def mean_or_none(values: Mapping[str, float | None]) -> float | None:
    """Mean of the non-``None`` values; ``None`` when there are none (never NaN)."""
    scored = [v for v in values.values() if v is not None]
    return math.fsum(scored) / len(scored) if scored else None


def make_result(name: str, per_case: Mapping[str, float | None], **extra: Any) -> MetricResult:
    """Build a ``MetricResult`` whose score is the mean over the scored cases."""
    per_case = dict(per_case)
    return MetricResult(name=name, score=mean_or_none(per_case), per_case=per_case, **extra)
