"""Retrieval: dense, lexical (BM25) and hybrid search over one or more indexes, with filters, a
calibrated relevance threshold, neighbour expansion and an optional cross-encoder reranker.

One query runs in stages, each timed in ``RetrievalResult.timings_ms``:

1. **embed** the query with the index's embedder (``run([query])``, or a ``CachedEmbedder``'s ``embed``,
   which also says whether the vector came from the cache; see ``RetrievalResult.usage``).
2. **dense**: the ``candidate_k`` nearest chunks of every index. An index of at most
   ``exact_search_max`` chunks is searched *exactly* (cosine against every vector, from an in-memory
   snapshot that is invalidated by any write), so a small index never loses recall to HNSW; a larger one
   is searched with Chroma's HNSW index with ``ef_search >= max(settings.ef_search, candidate_k)``.
3. **lexical**: the ``candidate_k`` best BM25 chunks of every index (runs in parallel with 1-2).
   Candidates of several indexes are merged by score, per retriever, before fusion.
4. **fuse** (hybrid), see :func:`hybrid_scores`: ``rrf`` = sum over retrievers of
   ``1 / (rrf_k + rank)``; ``weighted`` = ``dense_weight * dense + (1 - dense_weight) * lexical`` with
   ``normalization="absolute"`` (the default: dense is the raw cosine, lexical is BM25 divided by the
   query's best BM25) or ``"minmax"`` (each side min-max scaled over its own candidates). A candidate
   one retriever did not return gets 0 from that side, except that its dense cosine is filled in when
   the stored vector is at hand (always with exact search), so fusion sees its real similarity.
   Defaults (weighted, absolute, dense_weight 0.7, candidate_k 200) won a grid search on the SciFact
   *train* queries; see bench/README.md.
5. **threshold**: candidates whose dense cosine is below ``score_threshold`` are dropped.
6. **rerank** (when the retriever has a reranker and ``settings.rerank``): the best
   ``max(rerank_top_n, top_k)`` candidates are re-ordered by the cross-encoder.
7. **expand**: ``expand_neighbors = n`` adds chunks ``ordinal - n .. ordinal + n`` of the same document
   around each hit (chunk ids are ``f"{document_id}:{ordinal}"``).

Scores. Every hit carries ``scores = {"dense", "lexical", "fused", "rerank"}`` and ``ranks`` for the same
stages plus ``"final"`` (1-based; ``None`` where a stage did not run or did not rank the chunk):

* ``dense``: cosine similarity of query and chunk, in [-1, 1] (``1 - Chroma cosine distance``). In
  hybrid mode it is filled in for lexical-only candidates too, so every hybrid hit has one.
* ``lexical``: ``-bm25`` from the lexical index, > 0, only comparable within one query.
* ``fused``: the fusion score (RRF: at most 2 / (rrf_k + 1); weighted absolute: at most 1, 0 for a
  chunk unrelated on both sides; weighted minmax: in [0, 1]).
* ``rerank``: the cross-encoder's output.
* ``Hit.score`` is the score the final order follows: rerank if reranked, else fused (hybrid), dense
  (dense mode) or lexical (lexical mode).

``score_threshold`` is on the **dense cosine scale** (in [-1, 1]) whatever the mode. Unlike BM25 or
fused scores, a cosine does not depend on the other candidates of the query, so "nothing clears the
threshold" is a usable no-answer signal. :data:`RECOMMENDED_SCORE_THRESHOLD` (0.30) is calibrated for
all-MiniLM-L6-v2 on SciFact train: 95.5% of relevant (query, document) pairs score above it, 99.9% of
train queries keep at least one hit, and 28 of 30 off-topic questions get none (bench/README.md). It
is model-specific: recalibrate (``python -m bench.retrieval --tune``) for another embedder. In lexical
mode a threshold makes the query be embedded so that it can be applied. ``None`` = no threshold.

Filters use the Mongo-style syntax of :mod:`knowledge.filters` and apply to both retrievers.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knowledge.embedders.usage import embed_with_usage
from knowledge.filters import MATCH_NOTHING, compile_filter, normalize_filter, to_chroma_where
from knowledge.fusion import hybrid_scores
from knowledge.rerank import rerank_with_usage
from knowledge.retrieval_settings import RetrievalSettings
from knowledge.types import Hit, LexicalIndex, ModelUsage, VectorStore

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="magnet-retrieval")


@dataclass
class RetrievalResult:
    """Hits best first, milliseconds per stage (``embed dense lexical fuse rerank expand total``), a
    trace of what ran (exact or ANN per index, candidate counts, the normalised filter, ...) and, for
    metering, the model work per stage that ran one (``usage["embed"]``, ``usage["rerank"]``; an embed
    served from the embedding cache has ``tokens == 0`` and ``cache_hits == 1``)."""

    hits: list[Hit]
    timings_ms: dict[str, float]
    trace: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, ModelUsage] = field(default_factory=dict)


# --- the retriever --------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    index: int
    chunk_id: str
    text: str | None = None
    metadata: dict[str, Any] | None = None
    dense: float | None = None
    lexical: float | None = None
    fused: float | None = None
    rerank: float | None = None
    ranks: dict[str, int | None] = field(default_factory=dict)


@dataclass
class _DenseSide:
    """One index's dense view for one query: exact (a snapshot and all similarities) or ANN."""

    store: Any
    exact: bool
    snapshot: Any = None
    sims: np.ndarray | None = None


class Retriever:
    """Searches one or more indexes, each a ``(VectorStore, LexicalIndex)`` pair of the same chunks.

    All indexes must have been embedded with ``embedder``'s model. ``reranker`` is anything with
    ``run(query, texts) -> list[float]`` (e.g. :class:`knowledge.rerank.CrossEncoderReranker`).
    Thread-safe: one Retriever can serve concurrent queries.
    """

    def __init__(
        self,
        embedder: Any,
        indexes: Sequence[tuple[VectorStore, LexicalIndex]],
        reranker: Any = None,
    ) -> None:
        if not indexes:
            raise ValueError("a Retriever needs at least one (vector store, lexical index) pair")
        self.embedder = embedder
        self.indexes = list(indexes)
        self.reranker = reranker

    def warm_up(self) -> None:
        """Load the embedding (and reranker) model now rather than on the first query."""
        self.embedder.warm_up()
        if self.reranker is not None and hasattr(self.reranker, "warm_up"):
            self.reranker.warm_up()

    def search(
        self, query: str, settings: RetrievalSettings | None = None, filters: dict | None = None
    ) -> RetrievalResult:
        """Run ``query``; raises ``ValueError`` for bad settings and ``FilterError`` for a bad filter."""
        started = time.perf_counter()
        settings = (settings or RetrievalSettings()).validate()
        where = normalize_filter(filters)
        timings: dict[str, float] = {}
        usage: dict[str, ModelUsage] = {}
        trace: dict[str, Any] = {"mode": settings.mode, "filter": None if where is MATCH_NOTHING else where}
        if where is MATCH_NOTHING or not (query or "").strip():
            trace["empty_reason"] = "filter matches nothing" if where is MATCH_NOTHING else "empty query"
            timings["total"] = _ms(started)
            return RetrievalResult([], timings, trace)

        k = max(settings.candidate_k, settings.top_k)
        use_dense = settings.mode in ("dense", "hybrid")
        use_lexical = settings.mode in ("lexical", "hybrid")
        need_vector = use_dense or settings.score_threshold is not None

        lexical_future = _POOL.submit(self._lexical, query, k, where) if use_lexical else None
        sides: list[_DenseSide] = []
        dense_list: list[tuple[float, int, str, str | None, dict | None]] = []
        qvec = None
        if need_vector:
            t = time.perf_counter()
            vectors, usage["embed"] = embed_with_usage(self.embedder, [query], count_cached=True)
            qvec = np.asarray(vectors[0], dtype=np.float32)
            norm = float(np.linalg.norm(qvec))
            qvec = qvec / norm if norm > 0 else qvec
            timings["embed"] = _ms(t)
            t = time.perf_counter()
            sides = [self._dense_side(store, qvec, settings) for store, _ in self.indexes]
            if use_dense:
                dense_list = self._dense(sides, qvec, k, where)
            timings["dense"] = _ms(t)
            trace["exact"] = [side.exact for side in sides]
        lexical_list: list[tuple[float, int, str, str, dict]] = []
        if lexical_future is not None:
            lexical_list, timings["lexical"] = lexical_future.result()

        t = time.perf_counter()
        candidates = self._merge(dense_list, lexical_list)
        if qvec is not None:
            self._fill_dense(candidates, sides, qvec)
        ordered = self._order(candidates, dense_list, settings)
        trace["candidates"] = {"dense": len(dense_list), "lexical": len(lexical_list), "union": len(candidates)}
        if settings.score_threshold is not None:
            kept = [c for c in ordered if c.dense is not None and c.dense >= settings.score_threshold]
            trace["below_threshold"] = len(ordered) - len(kept)
            ordered = kept
        timings["fuse"] = _ms(t)

        if self.reranker is not None and settings.rerank and ordered:
            t = time.perf_counter()
            ordered, usage["rerank"] = self._rerank(query, ordered, max(settings.rerank_top_n, settings.top_k), sides)
            timings["rerank"] = _ms(t)

        final = ordered[: settings.top_k]
        self._fill_details(final, sides)
        hits = [self._hit(c, settings) for c in final]
        if settings.expand_neighbors and hits:
            t = time.perf_counter()
            hits, added = self._expand(final, hits, settings.expand_neighbors, sides)
            trace["expanded"] = added
            timings["expand"] = _ms(t)
        for position, hit in enumerate(hits, start=1):
            hit.ranks["final"] = position
        timings["total"] = _ms(started)
        return RetrievalResult(hits, timings, trace, usage)

    # -- dense --

    def _dense_side(self, store: Any, qvec: np.ndarray, settings: RetrievalSettings) -> _DenseSide:
        snapshot_of = getattr(store, "snapshot", None)
        if snapshot_of is not None:
            snap = snapshot_of(max_rows=settings.exact_search_max)
            if snap is not None:
                if len(snap) and snap.vectors.shape[1] != qvec.shape[0]:
                    raise ValueError(f"the query vector has {qvec.shape[0]} dimensions but the index "
                                     f"{getattr(store, 'collection_name', '')!r} holds {snap.vectors.shape[1]}: "
                                     "it was embedded with another model")
                sims = snap.vectors @ qvec if len(snap) else np.empty(0, dtype=np.float32)
                return _DenseSide(store, True, snap, sims)
            ensure = getattr(store, "ensure_ef_search", None)
            if ensure is not None:
                ensure(max(settings.ef_search, settings.candidate_k))
        return _DenseSide(store, False)

    def _dense(self, sides: list[_DenseSide], qvec: np.ndarray, k: int, where: dict | None) -> list[tuple]:
        """The k best chunks over all indexes: (score, index, chunk_id, text, metadata), best first."""
        found: list[tuple] = []
        chroma_where = to_chroma_where(where) if where else None
        for i, side in enumerate(sides):
            if side.exact:
                snap, sims = side.snapshot, side.sims
                if where:
                    key = json.dumps(where, sort_keys=True)
                    mask = snap.mask(key, compile_filter(where))
                    sims = np.where(mask, sims, -np.inf)
                n = min(k, len(sims))
                if n == 0:
                    continue
                top = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else np.arange(len(sims))
                for j in top:
                    if np.isfinite(sims[j]):
                        found.append((float(sims[j]), i, snap.ids[j], snap.documents[j], snap.metadatas[j]))
            else:
                for hit in self._approximate(side.store, qvec, k, where, chroma_where):
                    found.append((hit.score, i, hit.chunk_id, hit.text, hit.metadata))
        found.sort(key=lambda row: (-row[0], row[1], row[2]))
        return found[:k]

    @staticmethod
    def _approximate(store: Any, qvec: np.ndarray, k: int, where: dict | None, chroma_where: dict | None) -> list:
        """HNSW search. With a filter, the 4k nearest chunks are filtered here first: Chroma's filtered
        search gathers every chunk that passes the filter before searching, which grows with the index
        (bench/scale.py: 39 -> 204 ms from 10k to 100k chunks for a filter that half the chunks pass).
        Only when fewer than k of the 4k pass does Chroma's own filtered search run."""
        if not where:
            return store.query(qvec, k)
        passes = compile_filter(where)
        near = [hit for hit in store.query(qvec, 4 * k) if passes(hit.metadata)]
        return near[:k] if len(near) >= k else store.query(qvec, k, where=chroma_where)

    def _fill_dense(self, candidates: dict, sides: list[_DenseSide], qvec: np.ndarray) -> None:
        """Give every candidate its dense cosine (lexical-only ones too), so fusion and threshold see it."""
        missing: dict[int, list[str]] = {}
        for (i, cid), cand in candidates.items():
            if cand.dense is not None:
                continue
            side = sides[i]
            if side.exact:
                j = side.snapshot.position.get(cid)
                if j is not None:
                    cand.dense = float(side.sims[j])
            else:
                missing.setdefault(i, []).append(cid)
        for i, cids in missing.items():
            get_chunks = getattr(sides[i].store, "get_chunks", None)
            if get_chunks is None:
                continue
            for cid, (_text, _meta, vector) in get_chunks(cids, with_vectors=True).items():
                if vector is not None:
                    norm = float(np.linalg.norm(vector))
                    candidates[(i, cid)].dense = float(vector @ qvec) / (norm or 1.0)

    # -- lexical --

    def _lexical(self, query: str, k: int, where: dict | None) -> tuple[list[tuple], float]:
        t = time.perf_counter()
        found: list[tuple] = []
        for i, (_, lexical) in enumerate(self.indexes):
            for hit in lexical.query(query, k, where=where):
                found.append((hit.score, i, hit.chunk_id, hit.text, hit.metadata))
        found.sort(key=lambda row: (-row[0], row[1], row[2]))
        return found[:k], _ms(t)

    # -- fusion and ordering --

    @staticmethod
    def _merge(dense_list: list[tuple], lexical_list: list[tuple]) -> dict[tuple[int, str], _Candidate]:
        candidates: dict[tuple[int, str], _Candidate] = {}
        for stage, rows in (("dense", dense_list), ("lexical", lexical_list)):
            for rank, (score, i, cid, text, meta) in enumerate(rows, start=1):
                cand = candidates.setdefault((i, cid), _Candidate(i, cid))
                setattr(cand, stage, score)
                cand.ranks[stage] = rank
                if cand.text is None and text is not None:
                    cand.text, cand.metadata = text, meta
        return candidates

    @staticmethod
    def _order(candidates: dict, dense_list: list[tuple], settings: RetrievalSettings) -> list[_Candidate]:
        """Candidates in final order before reranking (fused scores and ranks set in hybrid mode)."""
        def by(score_of):
            return sorted(candidates.values(), key=lambda c: (-score_of(c), c.index, c.chunk_id))

        if settings.mode == "dense":
            return [c for c in by(lambda c: c.dense) if c.ranks.get("dense")]
        if settings.mode == "lexical":
            return [c for c in by(lambda c: c.lexical) if c.ranks.get("lexical")]
        dense_ranked = [((row[1], row[2]), row[0]) for row in dense_list]
        lexical_ranked = sorted(
            (((c.index, c.chunk_id), c.lexical) for c in candidates.values() if c.ranks.get("lexical")),
            key=lambda item: candidates[item[0]].ranks["lexical"],
        )
        dense_of = {key: c.dense for key, c in candidates.items() if c.dense is not None}
        fused = hybrid_scores(dense_ranked, lexical_ranked, dense_of, settings)
        for key, cand in candidates.items():
            cand.fused = fused.get(key, 0.0)
        ordered = by(lambda c: c.fused)
        for rank, cand in enumerate(ordered, start=1):
            cand.ranks["fused"] = rank
        return ordered

    def _rerank(
        self, query: str, ordered: list[_Candidate], n: int, sides: list[_DenseSide]
    ) -> tuple[list[_Candidate], ModelUsage]:
        head, tail = ordered[:n], ordered[n:]
        self._fill_details(head, sides)
        scores, usage = rerank_with_usage(self.reranker, query, [c.text or "" for c in head])
        for cand, score in zip(head, scores, strict=True):
            cand.rerank = float(score)
        head.sort(key=lambda c: -c.rerank)
        for rank, cand in enumerate(head, start=1):
            cand.ranks["rerank"] = rank
        return head + tail, usage

    # -- hits --

    def _fill_details(self, cands: list[_Candidate], sides: list[_DenseSide]) -> None:
        """Text and metadata for candidates that have none yet (dense scores filled in from a snapshot)."""
        missing: dict[int, list[_Candidate]] = {}
        for cand in cands:
            if cand.text is not None:
                continue
            side = sides[cand.index] if sides else None
            j = side.snapshot.position.get(cand.chunk_id) if side is not None and side.exact else None
            if j is not None:
                cand.text, cand.metadata = side.snapshot.documents[j], side.snapshot.metadatas[j]
            else:
                missing.setdefault(cand.index, []).append(cand)
        for i, group in missing.items():
            found = self._get_chunks(i, [c.chunk_id for c in group])
            for cand in group:
                text, meta, _ = found.get(cand.chunk_id, ("", {}, None))
                cand.text, cand.metadata = text, meta

    def _get_chunks(self, i: int, chunk_ids: list[str]) -> dict[str, tuple]:
        get_chunks = getattr(self.indexes[i][0], "get_chunks", None)
        return get_chunks(chunk_ids) if get_chunks is not None else {}

    @staticmethod
    def _hit(cand: _Candidate, settings: RetrievalSettings) -> Hit:
        if cand.rerank is not None:
            score = cand.rerank
        elif settings.mode == "hybrid":
            score = cand.fused
        else:
            score = cand.dense if settings.mode == "dense" else cand.lexical
        return Hit(
            chunk_id=cand.chunk_id,
            text=cand.text or "",
            score=float(score if score is not None else 0.0),
            metadata=dict(cand.metadata or {}),
            scores={"dense": cand.dense, "lexical": cand.lexical, "fused": cand.fused, "rerank": cand.rerank},
            ranks={stage: cand.ranks.get(stage) for stage in ("dense", "lexical", "fused", "rerank")},
        )

    def _expand(
        self, final: list[_Candidate], hits: list[Hit], n: int, sides: list[_DenseSide]
    ) -> tuple[list[Hit], int]:
        """Surround each hit with up to ``n`` chunks before and after it in its document, in document order.

        Neighbours carry ``metadata["expanded_from"]`` (the hit's chunk id), the hit's score and no
        per-stage scores; a chunk already in the results is never repeated.
        """
        present = {(c.index, c.chunk_id) for c in final}
        wanted: dict[int, list[str]] = {}
        plans = []
        for cand, hit in zip(final, hits, strict=True):
            doc, ordinal = hit.metadata.get("document_id"), hit.metadata.get("ordinal")
            if doc is None or not isinstance(ordinal, int):
                plans.append((cand, hit, [], []))
                continue
            before = [f"{doc}:{o}" for o in range(max(0, ordinal - n), ordinal)]
            after = [f"{doc}:{o}" for o in range(ordinal + 1, ordinal + n + 1)]
            wanted.setdefault(cand.index, []).extend(before + after)
            plans.append((cand, hit, before, after))
        fetched: dict[int, dict[str, tuple]] = {}
        for i, ids in wanted.items():
            side = sides[i] if sides else None
            if side is not None and side.exact:
                snap = side.snapshot
                fetched[i] = {cid: (snap.documents[j], snap.metadatas[j], None)
                              for cid in ids if (j := snap.position.get(cid)) is not None}
            else:
                fetched[i] = self._get_chunks(i, ids)
        out: list[Hit] = []
        added = 0
        for cand, hit, before, after in plans:
            def neighbours(ids: list[str], cand=cand, hit=hit) -> list[Hit]:
                result = []
                for cid in ids:
                    row = fetched.get(cand.index, {}).get(cid)
                    if row is None or (cand.index, cid) in present:
                        continue
                    text, meta, _ = row
                    if meta.get("document_id") != hit.metadata.get("document_id"):
                        continue
                    present.add((cand.index, cid))
                    result.append(Hit(
                        chunk_id=cid, text=text, score=hit.score,
                        metadata={**meta, "expanded_from": hit.chunk_id},
                        scores={"dense": None, "lexical": None, "fused": None, "rerank": None},
                        ranks={"dense": None, "lexical": None, "fused": None, "rerank": None},
                    ))
                return result

            pre, post = neighbours(before), neighbours(after)
            added += len(pre) + len(post)
            out.extend([*pre, hit, *post])
        return out, added


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
