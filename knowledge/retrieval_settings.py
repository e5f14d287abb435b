"""How one retrieval query is run (`RetrievalSettings`), with its validation and the calibrated
relevance threshold; the stages these settings steer are described in :mod:`knowledge.retrieval`."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

MODES = ("dense", "lexical", "hybrid")
FUSIONS = ("rrf", "weighted")
NORMALIZATIONS = ("absolute", "minmax")

# Calibrated on SciFact train queries with all-MiniLM-L6-v2 (bench/README.md, "Score threshold").
RECOMMENDED_SCORE_THRESHOLD = 0.30


@dataclass
class RetrievalSettings:
    """How one query is run. Defaults are the measured best on SciFact train (bench/README.md)."""

    mode: str = "hybrid"  # dense | lexical | hybrid
    fusion: str = "weighted"  # rrf | weighted (hybrid only)
    rrf_k: int = 60  # RRF's rank constant
    dense_weight: float = 0.7  # weighted fusion: weight of the dense side, in [0, 1]
    normalization: str = "absolute"  # weighted fusion: absolute | minmax (see absolute_fusion, weighted_fusion)
    candidate_k: int = 200  # candidates per retriever (at least top_k are always taken)
    top_k: int = 10  # hits returned (before neighbour expansion)
    score_threshold: float | None = None  # minimum dense cosine in [-1, 1]; None: no threshold
    expand_neighbors: int = 0  # adjacent chunks of the same document added on each side of a hit
    exact_search_max: int = 10_000  # indexes up to this many chunks are searched exactly
    ef_search: int = 200  # HNSW search breadth above exact_search_max (raised to candidate_k if lower)
    rerank: bool = True  # use the retriever's reranker, if it has one
    rerank_top_n: int = 50  # candidates the reranker re-orders (at least top_k)

    def validate(self) -> RetrievalSettings:
        """Raise ``ValueError`` naming the first bad field; return self for chaining."""
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name}: {why} (got {getattr(self, name)!r})")

        def integer(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise bad(name, f"must be an integer from {lo} to {hi}")

        def number(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
                raise bad(name, f"must be a number from {lo} to {hi}")

        if self.mode not in MODES:
            raise bad("mode", f"must be one of {', '.join(MODES)}")
        if self.fusion not in FUSIONS:
            raise bad("fusion", f"must be one of {', '.join(FUSIONS)}")
        integer("rrf_k", 1, 10_000)
        number("dense_weight", 0.0, 1.0)
        if self.normalization not in NORMALIZATIONS:
            raise bad("normalization", f"must be one of {', '.join(NORMALIZATIONS)}")
        integer("candidate_k", 1, 10_000)
        integer("top_k", 1, 1_000)
        if self.score_threshold is not None:
            number("score_threshold", -1.0, 1.0)
        integer("expand_neighbors", 0, 20)
        integer("exact_search_max", 0, 10_000_000)
        integer("ef_search", 1, 100_000)
        if not isinstance(self.rerank, bool):
            raise bad("rerank", "must be true or false")
        integer("rerank_top_n", 1, 1_000)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RetrievalSettings:
        """Settings from a plain dict (e.g. stored JSON); unknown keys raise ``ValueError`` naming them."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown retrieval setting")
        return cls(**data).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
