"""The retrieval engine on a small hand-made corpus with the real MiniLM model, real Chroma (embedded, in
tmp_path) and real SQLite FTS5: modes, fusion arithmetic, threshold, neighbours, exact search, several
indexes. Filters are covered in test_filters.py, the reranker in test_rerank.py."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine

from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
from knowledge.fusion import absolute_fusion, min_max, rrf_fusion, weighted_fusion
from knowledge.retrieval import RetrievalSettings, Retriever
from knowledge.retrieval_settings import RECOMMENDED_SCORE_THRESHOLD
from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client
from knowledge.stores.lexical_sqlite import SqliteFtsIndex
from tests.knowledge.store_suite import make_chunk, unique_name

pytestmark = pytest.mark.slow  # loads the embedding model


def doc(document_id: str, texts: list[str], **metadata) -> list:
    return [make_chunk(f"{document_id}:{i}", t, document_id, ordinal=i, metadata=dict(metadata))
            for i, t in enumerate(texts)]


OPS = doc("ops", [
    "Operations handbook for the storage cluster.",
    "Every node reports its health to the monitoring dashboard each minute.",
    "The nightly backup job runs at 2 AM and copies the database to object storage.",
    "When the disk is full, the server stops accepting uploads until space is freed.",
    "Restoring from a backup takes about twenty minutes for a ten gigabyte database.",
    "Contact the on-call engineer through the paging system for outages.",
], team="ops")
ACCOUNT = doc("account", [
    "To reset your password, open Settings and choose Forgot password.",
    "Two-factor authentication adds a one-time code to every sign-in.",
    "Deleting your account removes all of your data after thirty days.",
], team="support")
KITCHEN = doc("kitchen", [
    "Preheat the oven to 180 degrees and bake the chocolate cake for forty minutes.",
    "Knead the dough for ten minutes, then let the bread rise until doubled.",
    "Store fresh herbs in a glass of water in the refrigerator.",
], team="kitchen")
LAB = doc("lab", [
    "Calibration procedure XQ7731 for the flux regulator on bench four.",
    "Safety goggles are mandatory in the laboratory at all times.",
], team="lab")
CORPUS = OPS + ACCOUNT + KITCHEN + LAB


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("retrieval")
    engine = create_engine(f"sqlite:///{path / 'lex.db'}")
    yield path, make_chroma_client(path=str(path / "chroma")), engine
    engine.dispose()


def build_index(base, embedder, chunks):
    _, client, engine = base
    vectors = ChromaVectorStore(client, unique_name("ret"))
    lexical = SqliteFtsIndex(engine, unique_name("ret"))
    vectors.upsert(chunks, embedder.run([c.text for c in chunks]))
    lexical.upsert(chunks)
    return vectors, lexical


@pytest.fixture(scope="module")
def index(base, embedder):
    return build_index(base, embedder, CORPUS)


@pytest.fixture(scope="module")
def retriever(embedder, index):
    return Retriever(embedder, [index])


def ids(result):
    return [h.chunk_id for h in result.hits]


# --- modes -----------------------------------------------------------------------------------------


def test_dense_mode_finds_a_paraphrase_without_shared_words(retriever):
    result = retriever.search("I can't remember my login credentials", RetrievalSettings(mode="dense", top_k=3))
    top = result.hits[0]
    assert top.chunk_id == "account:0"
    assert top.score == top.scores["dense"] and 0 < top.score <= 1
    assert top.scores["lexical"] is None and top.scores["fused"] is None and top.scores["rerank"] is None
    assert top.ranks == {"dense": 1, "lexical": None, "fused": None, "rerank": None, "final": 1}
    assert top.metadata["document_id"] == "account" and top.text.startswith("To reset your password")
    assert result.trace["exact"] == [True]


def test_lexical_mode_finds_a_rare_code(retriever):
    result = retriever.search("XQ7731", RetrievalSettings(mode="lexical", top_k=3))
    assert ids(result) == ["lab:0"]  # no other chunk contains the term
    hit = result.hits[0]
    assert hit.score == hit.scores["lexical"] > 0 and hit.scores["dense"] is None
    assert "embed" not in result.timings_ms  # no threshold: the query is never embedded


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_mode_combines_both(retriever, fusion):
    result = retriever.search("bake a chocolate dessert in the oven", RetrievalSettings(fusion=fusion, top_k=5))
    assert ids(result)[0] == "kitchen:0"
    top = result.hits[0]
    assert top.score == top.scores["fused"]
    assert top.scores["dense"] is not None and top.scores["lexical"] is not None
    assert top.ranks["dense"] == 1 and top.ranks["lexical"] == 1 and top.ranks["fused"] == 1
    # Hybrid fills in the dense score of lexical-only candidates too.
    assert all(h.scores["dense"] is not None for h in result.hits)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert set(result.timings_ms) >= {"embed", "dense", "lexical", "fuse", "total"}
    assert result.trace["candidates"]["union"] >= len(result.hits)


# --- fusion arithmetic ---------------------------------------------------------------------------------


def test_rrf_by_hand():
    fused = rrf_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63})
    assert rrf_fusion([["x"]], k=1) == {"x": 0.5}


def test_weighted_by_hand():
    dense = {"a": 0.9, "b": 0.5, "c": 0.1}
    lexical = {"a": 2.0, "c": 10.0, "d": 6.0}
    # minmax(dense): a=1, b=0.5, c=0; minmax(lexical): a=0, c=1, d=0.5; a key missing from a side: 0
    assert weighted_fusion(dense, lexical, 0.4) == pytest.approx({"a": 0.4, "b": 0.2, "c": 0.6, "d": 0.3})
    assert weighted_fusion(dense, lexical, 1.0) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0})
    # A dense score filled in for a lexical-only candidate is scaled by the dense candidates' range.
    fused = weighted_fusion({"a": 0.9, "b": 0.5, "x": 0.7, "y": 0.1}, {"x": 4.0, "y": 2.0}, 0.5,
                            dense_reference=[0.9, 0.5])
    assert fused == pytest.approx({"a": 0.5, "b": 0.0, "x": 0.25 + 0.5, "y": 0.0 + 0.0})
    assert min_max({"a": 3.0, "b": 3.0}) == {"a": 1.0, "b": 1.0}


def test_absolute_weighting_by_hand():
    # dense cosines as they are; lexical divided by the best lexical score (10): a=0.2, c=1, d=0.6
    fused = absolute_fusion({"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 2.0, "c": 10.0, "d": 6.0}, 0.7)
    assert fused == pytest.approx({"a": 0.63 + 0.06, "b": 0.35, "c": 0.07 + 0.3, "d": 0.18})
    assert absolute_fusion({"a": 0.5}, {}, 0.7) == pytest.approx({"a": 0.35})


def test_engine_absolute_scores_match_the_formula(retriever):
    settings = RetrievalSettings(fusion="weighted", normalization="absolute", dense_weight=0.7, top_k=50)
    hits = retriever.search("backup of the database", settings).hits
    best = max(h.scores["lexical"] for h in hits if h.scores["lexical"] is not None)
    assert any(h.scores["lexical"] is None for h in hits)
    for hit in hits:
        lexical = (hit.scores["lexical"] or 0.0) / best
        assert hit.scores["fused"] == pytest.approx(0.7 * hit.scores["dense"] + 0.3 * lexical, abs=1e-6)


def test_engine_rrf_scores_match_the_formula(retriever):
    settings = RetrievalSettings(fusion="rrf", rrf_k=10, top_k=8)
    for hit in retriever.search("backup of the database", settings).hits:
        expected = sum(1 / (10 + hit.ranks[s]) for s in ("dense", "lexical") if hit.ranks[s] is not None)
        assert hit.scores["fused"] == pytest.approx(expected)


def test_engine_weighted_scores_match_the_formula(retriever):
    # candidate_k covers the whole corpus, so every candidate is a hit and the ranges can be recomputed.
    settings = RetrievalSettings(fusion="weighted", normalization="minmax", dense_weight=0.3, candidate_k=50,
                                 top_k=50)
    hits = retriever.search("backup of the database", settings).hits
    dense_cands = [h.scores["dense"] for h in hits if h.ranks["dense"] is not None]
    lexical_cands = [h.scores["lexical"] for h in hits if h.ranks["lexical"] is not None]
    assert len(dense_cands) == len(CORPUS) and 0 < len(lexical_cands) < len(CORPUS)
    d_lo, d_hi = min(dense_cands), max(dense_cands)
    l_lo, l_hi = min(lexical_cands), max(lexical_cands)
    for hit in hits:
        nd = (hit.scores["dense"] - d_lo) / (d_hi - d_lo)
        nl = (hit.scores["lexical"] - l_lo) / (l_hi - l_lo) if hit.ranks["lexical"] is not None else 0.0
        assert hit.scores["fused"] == pytest.approx(0.3 * nd + 0.7 * nl, abs=1e-6)


# --- threshold -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_recommended_threshold_separates_on_and_off_topic(retriever, mode):
    settings = RetrievalSettings(mode=mode, top_k=5, score_threshold=RECOMMENDED_SCORE_THRESHOLD)
    on_topic = retriever.search("how do I reset my password", settings)
    assert on_topic.hits and on_topic.hits[0].chunk_id == "account:0"
    assert all(h.scores["dense"] >= RECOMMENDED_SCORE_THRESHOLD for h in on_topic.hits)
    for off_topic in ("Who won the football world cup in 1998?", "best hiking trails in the alps",
                      "What is the capital of Mongolia?", "full moon tides and surfing the night waves"):
        result = retriever.search(off_topic, settings)
        assert result.hits == [], (off_topic, [(h.chunk_id, h.scores["dense"]) for h in result.hits])
        # ... while without a threshold the engine would have answered something.
        if mode != "lexical":
            assert retriever.search(off_topic, RetrievalSettings(mode=mode, top_k=5)).hits


def test_threshold_applies_to_the_dense_cosine(retriever):
    everything = retriever.search("database backup", RetrievalSettings(mode="dense", top_k=50))
    cut = everything.hits[3].scores["dense"]
    kept = retriever.search("database backup", RetrievalSettings(mode="dense", top_k=50, score_threshold=cut))
    assert ids(kept) == ids(everything)[:4]
    assert kept.trace["below_threshold"] == len(everything.hits) - 4


# --- neighbours ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exact_search_max", [10_000, 0])  # neighbours from the snapshot, then from Chroma
def test_neighbours_are_adjacent_chunks_of_the_same_document(retriever, exact_search_max):
    query = "disk full server stops accepting uploads"
    settings = RetrievalSettings(mode="dense", top_k=1, exact_search_max=exact_search_max)
    assert ids(retriever.search(query, settings)) == ["ops:3"]
    one = retriever.search(query, RetrievalSettings(mode="dense", top_k=1, expand_neighbors=1,
                                                    exact_search_max=exact_search_max))
    assert ids(one) == ["ops:2", "ops:3", "ops:4"]
    two = retriever.search(query, RetrievalSettings(mode="dense", top_k=1, expand_neighbors=2,
                                                    exact_search_max=exact_search_max))
    assert ids(two) == ["ops:1", "ops:2", "ops:3", "ops:4", "ops:5"]
    anchor = two.hits[2]
    for hit in two.hits:
        assert hit.metadata["document_id"] == "ops"
        if hit.chunk_id != "ops:3":
            assert hit.metadata["expanded_from"] == "ops:3"
            assert hit.scores == {"dense": None, "lexical": None, "fused": None, "rerank": None}
            assert hit.score == anchor.score
            assert hit.text == OPS[hit.metadata["ordinal"]].text
    assert "expanded_from" not in anchor.metadata
    assert [h.ranks["final"] for h in two.hits] == [1, 2, 3, 4, 5]
    assert two.trace["expanded"] == 4


def test_neighbours_stop_at_document_edges_and_never_repeat_a_hit(retriever):
    first = retriever.search("Operations handbook for the storage cluster",
                             RetrievalSettings(mode="dense", top_k=1, expand_neighbors=2))
    assert ids(first) == ["ops:0", "ops:1", "ops:2"]
    # Two hits of one document that are neighbours of each other: each chunk appears once.
    result = retriever.search("password reset and two-factor sign-in code",
                              RetrievalSettings(mode="dense", top_k=2, expand_neighbors=1))
    got = ids(result)
    assert len(got) == len(set(got))
    assert set(got) == {"account:0", "account:1", "account:2"}


# --- exact search ----------------------------------------------------------------------------------------


class VectorQueries:
    """An 'embedder' that maps query strings to given vectors, to compare with brute force exactly."""

    name = "fixed"

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def warm_up(self):
        pass

    def run(self, texts):
        return np.stack([self.vectors[t] for t in texts])


def test_exact_search_equals_brute_force_and_sees_every_write(base, tmp_path):
    rng = np.random.default_rng(0)
    n, dim = 3000, 48
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [make_chunk(f"r{i // 10}:{i % 10}", f"row {i}", f"r{i // 10}", ordinal=i % 10) for i in range(n)]
    _, client, engine = base
    vectors = ChromaVectorStore(client, unique_name("bf"))
    lexical = SqliteFtsIndex(engine, unique_name("bf"))
    vectors.upsert(chunks, vecs)
    queries = {f"q{j}": q / np.linalg.norm(q) for j, q in enumerate(rng.normal(size=(25, dim)).astype(np.float32))}
    retriever = Retriever(VectorQueries(queries), [(vectors, lexical)])
    k = 20
    exact = RetrievalSettings(mode="dense", top_k=k, candidate_k=k)
    ann = RetrievalSettings(mode="dense", top_k=k, candidate_k=k, exact_search_max=0, ef_search=10)
    ann_recall = []
    for name, q in queries.items():
        truth = np.argsort(-(vecs @ q))[:k]
        result = retriever.search(name, exact)
        assert result.trace["exact"] == [True]
        assert ids(result) == [chunks[i].id for i in truth]  # recall@20 = 1, in the same order
        assert [h.score for h in result.hits] == pytest.approx([float(vecs[i] @ q) for i in truth], abs=1e-5)
        approx = retriever.search(name, ann)
        assert approx.trace["exact"] == [False]
        ann_recall.append(len(set(ids(approx)) & {chunks[i].id for i in truth}) / k)
    assert np.mean(ann_recall) > 0.5  # HNSW is close but, with a small ef, not exact: why small indexes skip it

    # Writes invalidate the cached snapshot: through this store, and through another store object
    # (as a sync worker in another process would write).
    q = queries["q0"]
    vectors.upsert([make_chunk("new:0", "new", "new")], q[None, :])
    assert ids(retriever.search("q0", exact))[0] == "new:0"
    other = ChromaVectorStore(make_chroma_client(path=str(base[0] / "chroma")), vectors.collection_name)
    assert other.snapshot() is vectors.snapshot()  # stores built per request share one cached snapshot
    other.delete_chunks(["new:0"])
    assert "new:0" not in ids(retriever.search("q0", exact))
    other.upsert([make_chunk("r0:0", "moved", "r0")], q[None, :])  # an in-place update: count unchanged
    top = retriever.search("q0", exact).hits[0]
    assert top.chunk_id == "r0:0" and top.text == "moved" and top.score == pytest.approx(1.0, abs=1e-5)
    vectors.drop()


def test_large_index_uses_hnsw_with_a_raised_ef_search(base, embedder):
    vectors, lexical = build_index(base, embedder, CORPUS)
    retriever = Retriever(embedder, [(vectors, lexical)])
    settings = RetrievalSettings(mode="hybrid", exact_search_max=5, ef_search=150, candidate_k=300, top_k=3)
    result = retriever.search("bake a chocolate cake", settings)
    assert result.trace["exact"] == [False]
    assert ids(result)[0] == "kitchen:0"
    assert all(h.scores["dense"] is not None for h in result.hits)  # filled in from stored vectors
    config = vectors.client.get_collection(vectors.collection_name).configuration
    assert config["hnsw"]["ef_search"] == 300  # at least candidate_k


# --- several indexes --------------------------------------------------------------------------------------


def test_several_indexes_are_merged_by_score(base, embedder, index):
    extra = build_index(base, embedder, doc("garden", [
        "Water the tomato plants early in the morning during hot weeks.",
        "Prune the rose bushes in late winter before new growth starts.",
    ]))
    both = Retriever(embedder, [index, extra])
    result = both.search("when should I water tomatoes", RetrievalSettings(top_k=4))
    assert ids(result)[0] == "garden:0"
    dense = both.search("when should I water tomatoes", RetrievalSettings(mode="dense", top_k=20))
    scores = [h.scores["dense"] for h in dense.hits]
    assert scores == sorted(scores, reverse=True)
    assert {h.metadata["document_id"] for h in dense.hits} >= {"garden", "ops", "kitchen"}
    assert dense.trace["exact"] == [True, True]
    lexical = both.search("bread dough water", RetrievalSettings(mode="lexical", top_k=20))
    assert {"garden:0", "kitchen:1", "kitchen:2"} <= set(ids(lexical))


def test_filters_restrict_both_sides(retriever):
    for mode in ("dense", "lexical", "hybrid"):
        result = retriever.search("database backup of bread on the bench", RetrievalSettings(mode=mode, top_k=20),
                                  filters={"team": {"$in": ["kitchen", "lab"]}})
        assert result.hits and {h.metadata["team"] for h in result.hits} <= {"kitchen", "lab"}


# --- settings and edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mode": "semantic"}, "mode"),
        ({"fusion": "max"}, "fusion"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"dense_weight": 1.5}, "dense_weight"),
        ({"normalization": "zscore"}, "normalization"),
        ({"candidate_k": 0}, "candidate_k"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": "5"}, "top_k"),
        ({"score_threshold": 2.0}, "score_threshold"),
        ({"expand_neighbors": -1}, "expand_neighbors"),
        ({"exact_search_max": -5}, "exact_search_max"),
        ({"ef_search": 0}, "ef_search"),
        ({"rerank_top_n": 0}, "rerank_top_n"),
        ({"rerank": "yes"}, "rerank"),
    ],
)
def test_settings_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        RetrievalSettings(**changes).validate()


def test_settings_from_dict():
    assert RetrievalSettings.from_dict({"top_k": 3}).top_k == 3
    assert RetrievalSettings.from_dict(None) == RetrievalSettings()
    with pytest.raises(ValueError, match="^topk: unknown"):
        RetrievalSettings.from_dict({"topk": 3})
    RetrievalSettings().validate()  # the defaults are valid


def test_empty_query_and_impossible_filter_return_nothing(retriever):
    assert retriever.search("   ").hits == []
    result = retriever.search("backup", filters={"team": {"$in": []}})
    assert result.hits == [] and result.trace["empty_reason"] == "filter matches nothing"


def test_an_index_never_written_to_returns_nothing(base, embedder):
    _, client, engine = base
    empty = Retriever(embedder, [(ChromaVectorStore(client, unique_name("empty")),
                                  SqliteFtsIndex(engine, unique_name("empty")))])
    for mode in ("dense", "lexical", "hybrid"):
        assert empty.search("anything at all", RetrievalSettings(mode=mode, expand_neighbors=1)).hits == []


def test_a_retriever_needs_an_index(embedder):
    with pytest.raises(ValueError):
        Retriever(embedder, [])
