"""Metadata filters: validation errors, translation to Chroma, and the *same* result on every side:
Python (:func:`knowledge.filters.matches`), Chroma, SQLite FTS5, and the retriever's exact and ANN paths."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine

from knowledge.filters import (
    MATCH_NOTHING,
    FilterError,
    matches,
    normalize_filter,
    to_chroma_where,
    validate_filter,
)
from knowledge.retrieval import RetrievalSettings, Retriever
from knowledge.stores import chunk_metadata
from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client
from knowledge.stores.lexical_sqlite import SqliteFtsIndex
from tests.knowledge.store_suite import make_chunk, unique_name

# Every chunk contains the word "note", so a lexical query for it returns the whole corpus and the
# filter alone decides. Metadata mixes types per key only where a store's semantics agree.
FILTER_CORPUS = [
    make_chunk("a:0", "note alpha about ops", "a", ordinal=0, page=1,
               metadata={"team": "ops", "priority": 1, "score": 0.5, "urgent": True}),
    make_chunk("a:1", "note alpha continued", "a", ordinal=1, page=2,
               metadata={"team": "ops", "priority": 3, "score": 2.5, "urgent": False}),
    make_chunk("b:0", "note beta kitchen", "b", ordinal=0, page=1,
               metadata={"team": "kitchen", "priority": 5, "score": 1.0}),
    make_chunk("b:1", "note beta kitchen again", "b", ordinal=1,
               metadata={"team": "kitchen", "priority": 2}),
    make_chunk("c:0", "note gamma without team", "c", ordinal=0, page=7, metadata={"priority": 4, "urgent": True}),
    make_chunk("d:0", "note delta legal", "d", ordinal=0, page=3,
               metadata={"team": "legal", "score": -1.5, "lang": "de"}),
]
ALL = {c.id for c in FILTER_CORPUS}

FILTERS = [
    ({"team": "ops"}, {"a:0", "a:1"}),
    ({"team": {"$eq": "kitchen"}}, {"b:0", "b:1"}),
    ({"team": {"$ne": "ops"}}, {"b:0", "b:1", "c:0", "d:0"}),  # a missing key matches $ne
    ({"priority": {"$gt": 3}}, {"b:0", "c:0"}),
    ({"priority": {"$gte": 3}}, {"a:1", "b:0", "c:0"}),
    ({"priority": {"$lt": 3}}, {"a:0", "b:1"}),
    ({"priority": {"$lte": 2}}, {"a:0", "b:1"}),
    ({"score": {"$gt": 0.75}}, {"a:1", "b:0"}),
    ({"score": {"$lte": 1}}, {"a:0", "b:0", "d:0"}),  # int operand against float values
    ({"priority": {"$gte": 2, "$lt": 5}}, {"a:1", "b:1", "c:0"}),  # two operators on one key: AND
    ({"page": {"$in": [1, 3]}}, {"a:0", "b:0", "d:0"}),
    ({"team": {"$in": ["legal", "kitchen"]}}, {"b:0", "b:1", "d:0"}),
    ({"team": {"$nin": ["ops", "kitchen"]}}, {"c:0", "d:0"}),  # a missing key matches $nin
    ({"document_id": {"$nin": ["a"]}}, {"b:0", "b:1", "c:0", "d:0"}),
    ({"urgent": True}, {"a:0", "c:0"}),
    ({"urgent": {"$ne": True}}, {"a:1", "b:0", "b:1", "d:0"}),
    ({"$and": [{"team": "ops"}, {"priority": {"$gt": 1}}]}, {"a:1"}),
    ({"$or": [{"team": "legal"}, {"page": 7}]}, {"c:0", "d:0"}),
    ({"$or": [{"team": "kitchen"}, {"$and": [{"page": {"$gte": 2}}, {"priority": {"$lte": 4}}]}]},
     {"a:1", "b:0", "b:1", "c:0"}),
    ({"team": "ops", "page": 2}, {"a:1"}),  # several keys: AND
    ({"$and": [{"team": "ops"}]}, {"a:0", "a:1"}),  # one clause (Chroma needs two: rewritten)
    ({"$and": []}, ALL),
    ({"$or": [{"lang": "de"}]}, {"d:0"}),
    ({"page": {"$in": []}}, set()),
    ({"page": {"$nin": []}}, ALL),
    ({"$or": []}, set()),
    ({"ordinal": 1, "document_id": {"$in": ["a", "b", "zzz"]}}, {"a:1", "b:1"}),
    ({"priority": {"$in": [1, 4.0]}}, {"a:0", "c:0"}),  # ints and floats mixed in one $in
    ({"team": {"$eq": "nobody"}}, set()),
]


class FixedEmbedder:
    """Every text (and the query) maps to one constant unit vector: the filter alone decides."""

    name = "fixed"
    dimension = 8

    def warm_up(self):
        pass

    def run(self, texts):
        v = np.zeros((len(texts), 8), dtype=np.float32)
        v[:, 0] = 1.0
        return v


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("filters")
    vectors = ChromaVectorStore(make_chroma_client(path=str(base / "chroma")), unique_name("flt"))
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(len(FILTER_CORPUS), 8)).astype(np.float32)
    vecs[:, 0] += 5  # all close to the query direction
    vectors.upsert(FILTER_CORPUS, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    engine = create_engine(f"sqlite:///{base / 'lex.db'}")
    lexical = SqliteFtsIndex(engine, unique_name("flt"))
    lexical.upsert(FILTER_CORPUS)
    yield vectors, lexical
    vectors.drop()
    lexical.drop()
    engine.dispose()


def chroma_ids(vectors, where):
    chroma_where = to_chroma_where(where)
    if chroma_where is MATCH_NOTHING:
        return set()
    return set(vectors._col().get(where=chroma_where, include=[])["ids"])


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_every_side_agrees(stores, where, expected):
    vectors, lexical = stores
    python = {c.id for c in FILTER_CORPUS if matches(where, chunk_metadata(c))}
    assert python == expected
    assert chroma_ids(vectors, where) == expected
    sqlite_where = normalize_filter(where)
    sqlite = set() if sqlite_where is MATCH_NOTHING else {
        h.chunk_id for h in lexical.query("note", k=100, where=sqlite_where)}
    assert sqlite == expected
    retriever = Retriever(FixedEmbedder(), [(vectors, lexical)])
    for settings in (
        RetrievalSettings(mode="dense", top_k=100),  # exact search (small index)
        RetrievalSettings(mode="dense", top_k=100, exact_search_max=0),  # Chroma HNSW
        RetrievalSettings(mode="lexical", top_k=100),
        RetrievalSettings(mode="hybrid", top_k=100),
    ):
        result = retriever.search("note", settings, filters=where)
        assert {h.chunk_id for h in result.hits} == expected, settings


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_approximate_search_filters_its_nearest_first_and_agrees_with_exact_search(stores, where, expected):
    """With k = 1 the HNSW path filters the 4 nearest chunks itself; when none of them passes (or the
    filter passes fewer than k) it asks Chroma's filtered search. Either way: the exact search's best."""
    vectors, lexical = stores
    retriever = Retriever(FixedEmbedder(), [(vectors, lexical)])
    exact = retriever.search("note", RetrievalSettings(mode="dense", top_k=1, candidate_k=1), filters=where)
    approximate = retriever.search("note", RetrievalSettings(mode="dense", top_k=1, candidate_k=1,
                                                             exact_search_max=0), filters=where)
    assert [h.chunk_id for h in approximate.hits] == [h.chunk_id for h in exact.hits]
    assert {h.chunk_id for h in exact.hits} <= expected and len(exact.hits) == min(1, len(expected))


@pytest.mark.parametrize(
    ("where", "operator", "path"),
    [
        ({"title": {"$regex": "^a"}}, "$regex", "title.$regex"),
        ({"$not": {"team": "ops"}}, "$not", "$not"),
        ({"$or": [{"team": "ops"}, {"page": {"$exists": True}}]}, "$exists", "$or[1].page.$exists"),
        ({"$and": [{"$where": "1"}]}, "$where", "$and[0].$where"),
        ({"page": {"$gte": 1, "$size": 2}}, "$size", "page.$size"),
    ],
)
def test_unknown_operators_are_named(where, operator, path):
    with pytest.raises(FilterError) as err:
        validate_filter(where)
    assert err.value.operator == operator
    assert err.value.path == path
    assert repr(operator) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_retriever_rejects_a_bad_operator_before_searching(stores):
    vectors, lexical = stores
    with pytest.raises(FilterError, match=r"'\$regex'"):
        Retriever(FixedEmbedder(), [(vectors, lexical)]).search("note", filters={"team": {"$regex": "o.*"}})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"page": {"$gt": "3"}}, r"\$gt at page\.\$gt takes a finite number"),
        ({"page": {"$lt": True}}, r"\$lt"),
        ({"team": {"$in": "ops"}}, r"\$in at team\.\$in takes a list"),
        ({"team": {"$in": [["ops"]]}}, r"operand of \$in"),
        ({"team": None}, r"operand of \$eq at team"),
        ({"team": {}}, r"no operator given for metadata key 'team'"),
        ({"$and": {"team": "ops"}}, r"\$and at \$and takes a list"),
        ({"$or": ["team"]}, r"a filter must be an object"),
        ({"page": {"$and": [{"page": 1}]}}, r"unsupported filter operator '\$and' at page\.\$and"),
        ({"$gt": 3}, r"unsupported filter operator '\$gt'.*applies to a metadata key"),
        ({'a"b': 1}, r"double quote"),
        ({"": 1}, r"non-empty"),
        ([{"team": "ops"}], r"must be an object"),
        ({"score": {"$gte": float("nan")}}, r"finite"),
    ],
)
def test_invalid_filters_are_rejected_with_their_location(where, message):
    with pytest.raises(FilterError, match=message):
        validate_filter(where)


def test_chroma_translation_satisfies_chromas_stricter_rules():
    assert to_chroma_where(None) is None
    assert to_chroma_where({}) is None
    assert to_chroma_where({"$and": []}) is None
    assert to_chroma_where({"page": {"$in": []}}) is MATCH_NOTHING
    assert to_chroma_where({"team": "ops"}) == {"team": {"$eq": "ops"}}
    assert to_chroma_where({"team": "ops", "page": {"$gte": 1, "$lt": 3}}) == {
        "$and": [{"team": {"$eq": "ops"}}, {"page": {"$gte": 1}}, {"page": {"$lt": 3}}]}
    assert to_chroma_where({"$or": [{"a": 1}, {"$or": [{"b": 2}, {"c": {"$in": []}}]}]}) == {
        "$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}
    assert to_chroma_where({"k": {"$in": [1, "x", 2]}}) == {"$or": [{"k": {"$in": [1, 2]}}, {"k": {"$in": ["x"]}}]}
    assert to_chroma_where({"k": {"$nin": [1, "x"]}}) == {"$and": [{"k": {"$nin": [1]}}, {"k": {"$nin": ["x"]}}]}


def test_python_semantics_of_types():
    assert matches({"flag": True}, {"flag": True})
    assert not matches({"flag": 1}, {"flag": True})  # as Chroma: a bool is not a number
    assert matches({"n": 1}, {"n": 1.0})
    assert not matches({"n": {"$gt": 0}}, {"n": "5"})  # range operators only match numbers
    assert not matches({"n": "5"}, {"n": 5})
    assert matches(None, {}) and matches({}, {"x": 1})
