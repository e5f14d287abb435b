"""Ranking metrics against graded relevance judgments, computed exactly as trec_eval/pytrec_eval do.

Inputs
    qrels: ``{query_id: {doc_id: grade}}``. Grades are non-negative integers as in TREC qrels; a document
        is *relevant* when ``grade >= 1`` (trec_eval's default ``relevance_level``); 0 means judged
        non-relevant. nDCG uses the grade itself as the gain (linear gains, pytrec_eval ``ndcg_cut``).
    run: ``{query_id: {doc_id: score}}`` or ``{query_id: [doc_id, ...]}`` (already ranked, best first).

Ranking of a score dict follows trec_eval (``form_res_rels.c``, ``comp_sim_docno``): score descending,
then **document id descending** on ties, where scores are compared in single precision as trec_eval
stores them (``float sim``), so 0.1 and 0.1 + 1e-12 tie. Scores from a vector store tie more often than one would think
(duplicate chunks, quantised distances), so the tie order must be fixed or two identical runs could score
differently. A ranked list is taken as given (first occurrence wins on duplicates).

Which queries count (pytrec_eval's convention)
    * Queries are those of ``qrels``; queries only in the run are ignored.
    * A query with judgments but no relevant document scores 0 on every metric and counts in the mean.
    * A query with no judgments at all (``{}``) is not evaluated: trec_eval skips it. It is reported as
      ``None`` in ``per_case`` and left out of the mean (see ``MetricResult.covered``).
    * A query missing from the run, or with an empty run, scores 0 (trec_eval ``-c``): a case whose
      retrieval returned nothing must lower the mean, not vanish from it.

Definitions (``R`` = number of relevant documents, ranks start at 1, ``@k`` looks at the top k only):
    hit@k        1 if any relevant document is in the top k, else 0 (ranx ``hit_rate@k``)
    hits@k       number of relevant documents in the top k (ranx ``hits@k``)
    recall@k     hits@k / R
    precision@k  hits@k / k (divided by k even when fewer than k results came back, as trec_eval ``P_k``)
    mrr[@k]      1 / rank of the first relevant document
    ndcg[@k]     sum(grade_i / log2(i + 1)) over the top k, divided by the same sum over the judged
                 grades sorted descending (the ideal ranking), cut at k; 0 when that ideal is 0
    map[@k]      sum of precision@i at each relevant rank i <= k, divided by R (trec_eval ``map_cut``)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from evaluations.metrics.base import MetricResult, make_result

Qrels = Mapping[str, Mapping[str, float]]
Run = Mapping[str, Mapping[str, float] | Sequence[str]]

REL_LEVEL = 1  # trec_eval's default relevance_level: grade >= 1 is relevant


def rank(results: Mapping[str, float] | Sequence[str]) -> list[str]:
    """Doc ids best first: score desc, then doc id desc (trec_eval); a list keeps its order, deduped."""
    if isinstance(results, Mapping):
        # Two stable sorts: the secondary key (doc id, descending) first, then the primary key.
        # trec_eval stores scores as C floats, so scores equal in single precision tie there too.
        by_doc = sorted(results, reverse=True)
        return sorted(by_doc, key=lambda doc: -float(np.float32(results[doc])))
    return list(dict.fromkeys(results))


def to_doc_run(hits: Iterable[Any], key: str | Callable[[Any], str | None] = "document_id") -> dict[str, float]:
    """Collapse chunk hits to ``{doc_key: max score}``, the run format the metrics take.

    ``hits`` are ``knowledge.types.Hit`` objects or dicts with ``chunk_id``/``score``/``metadata``.
    ``key`` picks what expected sources are matched on: ``"chunk_id"``, a metadata field
    (``"document_id"``, or whatever holds the external id such as a file path or URL), or a callable.
    Hits without that key are dropped: they cannot match an expected source. A document's score is its
    best chunk's score, so a document ranks where its best passage ranked.
    """
    run: dict[str, float] = {}
    for hit in hits:
        doc = _key_of(hit, key)
        if doc is None:
            continue
        score = float(hit["score"] if isinstance(hit, Mapping) else hit.score)
        if doc not in run or score > run[doc]:
            run[doc] = score
    return run


def _key_of(hit: Any, key: str | Callable[[Any], str | None]) -> str | None:
    if callable(key):
        value = key(hit)
    elif isinstance(hit, Mapping):
        value = hit.get(key) if key in hit else (hit.get("metadata") or {}).get(key)
    else:
        value = getattr(hit, key) if key == "chunk_id" else (hit.metadata or {}).get(key)
    return None if value is None else str(value)


# --- per-query scores: `ranking` is the full ranked list, `grades` one query's judgments -------------


def _relevant(grades: Mapping[str, float]) -> set[str]:
    return {doc for doc, g in grades.items() if g >= REL_LEVEL}


def _hits(ranking: Sequence[str], grades: Mapping[str, float], k: int | None) -> int:
    relevant = _relevant(grades)
    return sum(1 for doc in ranking[:k] if doc in relevant)


def _hit(ranking, grades, k):
    return 1.0 if _hits(ranking, grades, k) else 0.0


def _recall(ranking, grades, k):
    n_rel = len(_relevant(grades))
    return _hits(ranking, grades, k) / n_rel if n_rel else 0.0


def _precision(ranking, grades, k):
    return _hits(ranking, grades, k) / k


def _rr(ranking, grades, k):
    relevant = _relevant(grades)
    for i, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            return 1.0 / i
    return 0.0


def _dcg(gains: Iterable[float]) -> float:
    return math.fsum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1))


def _ndcg(ranking, grades, k):
    # Only relevant grades are gains (grade >= 1), the ideal comes from all judged grades, not only
    # from the retrieved ones: missing a highly relevant document must cost.
    gains = [float(grades[d]) if grades.get(d, 0) >= REL_LEVEL else 0.0 for d in ranking[:k]]
    ideal = sorted((float(g) for g in grades.values() if g >= REL_LEVEL), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    return _dcg(gains) / ideal_dcg if ideal_dcg > 0 else 0.0


def _ap(ranking, grades, k):
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    found, total = 0, 0.0
    for i, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            found += 1
            total += found / i
    return total / len(relevant)  # divided by all relevant, retrieved or not (trec_eval)


# --- public metrics --------------------------------------------------------------------------------


def _evaluate(name: str, per_query: Callable, qrels: Qrels, run: Run, k: int | None) -> MetricResult:
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_case: dict[str, float | None] = {}
    for query, grades in qrels.items():
        if not grades:
            per_case[query] = None  # unjudged: not evaluated (pytrec_eval), reported, excluded from mean
            continue
        ranking = rank(run.get(query) or {})
        per_case[query] = float(per_query(ranking, grades, k))
    return make_result(name, per_case)


def _named(base: str, k: int | None) -> str:
    return base if k is None else f"{base}@{k}"


def hit_rate(qrels: Qrels, run: Run, k: int) -> MetricResult:
    """hit@k: share of queries with at least one relevant document in the top k."""
    return _evaluate(f"hit@{k}", _hit, qrels, run, k)


def hits(qrels: Qrels, run: Run, k: int) -> MetricResult:
    """hits@k: number of relevant documents in the top k (a count, not a rate)."""
    return _evaluate(f"hits@{k}", _hits, qrels, run, k)


def recall(qrels: Qrels, run: Run, k: int) -> MetricResult:
    """recall@k: share of the relevant documents found in the top k."""
    return _evaluate(f"recall@{k}", _recall, qrels, run, k)


def precision(qrels: Qrels, run: Run, k: int) -> MetricResult:
    """precision@k: relevant documents in the top k divided by k."""
    return _evaluate(f"precision@{k}", _precision, qrels, run, k)


def mrr(qrels: Qrels, run: Run, k: int | None = None) -> MetricResult:
    """Mean reciprocal rank of the first relevant document (only the top k when ``k`` is given)."""
    return _evaluate(_named("mrr", k), _rr, qrels, run, k)


def ndcg(qrels: Qrels, run: Run, k: int | None = None) -> MetricResult:
    """nDCG with linear gains, as pytrec_eval ``ndcg_cut_k`` (``ndcg`` over the whole run without k)."""
    return _evaluate(_named("ndcg", k), _ndcg, qrels, run, k)


def mean_average_precision(qrels: Qrels, run: Run, k: int | None = None) -> MetricResult:
    """MAP as trec_eval ``map`` (``map_cut_k`` with k)."""
    return _evaluate(_named("map", k), _ap, qrels, run, k)


_BY_NAME: dict[str, tuple[Callable[..., MetricResult], bool]] = {
    # name -> (function, whether @k is required)
    "hit": (hit_rate, True),
    "hit_rate": (hit_rate, True),
    "hits": (hits, True),
    "recall": (recall, True),
    "precision": (precision, True),
    "mrr": (mrr, False),
    "ndcg": (ndcg, False),
    "map": (mean_average_precision, False),
}


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, MetricResult]:
    """Compute metrics named like ranx (``"hit@5"``, ``"ndcg@10"``, ``"mrr"``, ``"map@100"``...).

    Keys of the answer are the names as given. Unknown names raise ``ValueError``.
    """
    out: dict[str, MetricResult] = {}
    for spec in metrics:
        base, _, k_text = spec.partition("@")
        if base not in _BY_NAME:
            raise ValueError(f"unknown retrieval metric {spec!r}; known: {sorted(_BY_NAME)}")
        fn, needs_k = _BY_NAME[base]
        if needs_k and not k_text:
            raise ValueError(f"{base} needs a cut-off, e.g. {base}@10")
        try:
            k = int(k_text) if k_text else None
        except ValueError:
            raise ValueError(f"bad cut-off in {spec!r}") from None
        result = fn(qrels, run, k)
        out[spec] = result if result.name == spec else MetricResult(
            spec, result.score, result.per_case, result.errors, result.details, result.summary
        )
    return out
