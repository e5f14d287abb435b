"""Score fusion for hybrid retrieval: pure functions, so every number can be checked by hand.

`hybrid_scores` is what the retriever calls; the others are its parts (reciprocal rank fusion, min-max
normalisation, the weighted and absolute convex combinations of dense and lexical scores).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.retrieval_settings import RetrievalSettings


def rrf_fusion(rankings: Sequence[Sequence[Hashable]], k: int = 60) -> dict[Hashable, float]:
    """Reciprocal rank fusion: ``sum over rankings containing c of 1 / (k + rank of c)``, ranks from 1."""
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: Mapping[Hashable, float], reference: Sequence[float] | None = None) -> dict[Hashable, float]:
    """Scale scores to [0, 1] by the min and max of ``reference`` (default: the scores themselves),
    clipped to [0, 1]. When all reference scores are equal, every score maps to 1."""
    ref = list(scores.values()) if reference is None else list(reference)
    if not ref:
        return {key: 0.0 for key in scores}
    lo, hi = min(ref), max(ref)
    if hi - lo <= 1e-12:
        return {key: 1.0 for key in scores}
    return {key: min(1.0, max(0.0, (v - lo) / (hi - lo))) for key, v in scores.items()}


def weighted_fusion(
    dense: Mapping[Hashable, float],
    lexical: Mapping[Hashable, float],
    dense_weight: float,
    dense_reference: Sequence[float] | None = None,
) -> dict[Hashable, float]:
    """Convex combination of min-max normalised scores over the union of both candidate sets.

    ``fused = w * minmax(dense) + (1 - w) * minmax(lexical)``; a key missing from one side gets 0 for
    it. ``dense_reference`` are the dense candidates' own scores: the dense side is normalised by their
    range, so a dense score filled in for a lexical-only candidate is placed on the same scale (clipped).
    """
    nd = min_max(dense, dense_reference)
    nl = min_max(lexical)
    keys = list(dict.fromkeys([*dense, *lexical]))
    return {key: dense_weight * nd.get(key, 0.0) + (1.0 - dense_weight) * nl.get(key, 0.0) for key in keys}


def absolute_fusion(
    dense: Mapping[Hashable, float], lexical: Mapping[Hashable, float], dense_weight: float
) -> dict[Hashable, float]:
    """``fused = w * cosine + (1 - w) * bm25 / best bm25 of the query``, over the union of both sets.

    The cosine is already on an absolute scale (0 = unrelated); BM25 is not, so it is divided by the
    query's best lexical score (1 = the best keyword match, 0 = no shared term). A key missing from a
    side gets 0 for it.
    """
    top = max(lexical.values(), default=0.0)
    keys = list(dict.fromkeys([*dense, *lexical]))
    return {
        key: dense_weight * dense.get(key, 0.0) + (1.0 - dense_weight) * (lexical.get(key, 0.0) / top if top > 0 else 0.0)
        for key in keys
    }


def hybrid_scores(
    dense_ranked: Sequence[tuple[Hashable, float]],
    lexical_ranked: Sequence[tuple[Hashable, float]],
    dense_of: Mapping[Hashable, float],
    settings: RetrievalSettings,
) -> dict[Hashable, float]:
    """The fused score of every candidate, as the retriever computes it.

    ``dense_ranked`` / ``lexical_ranked``: each retriever's candidates ``(key, score)``, best first;
    ``dense_of``: the dense cosine of any candidate, including lexical-only ones where it is known.
    """
    if settings.fusion == "rrf":
        return rrf_fusion([[key for key, _ in dense_ranked], [key for key, _ in lexical_ranked]], settings.rrf_k)
    dense = {**dense_of, **dict(dense_ranked)}
    lexical = dict(lexical_ranked)
    if settings.normalization == "minmax":
        return weighted_fusion(dense, lexical, settings.dense_weight, [score for _, score in dense_ranked])
    return absolute_fusion(dense, lexical, settings.dense_weight)
