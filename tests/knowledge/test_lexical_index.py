"""One LexicalIndex suite, run against every implementation: SQLite FTS5 always, PostgreSQL when
MAGNET_TEST_POSTGRES_URL points at a real server (the `postgres` parameter is deselected otherwise).
The `lexical_engine` and `index` fixtures live in tests/knowledge/conftest.py; test_lexical_parity.py
holds the tokenisation and ranking cases that must come out the same on both."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect

from knowledge.stores import make_lexical_index, query_terms, safe_table_name
from knowledge.stores.lexical_postgres import PostgresFtsIndex
from knowledge.stores.lexical_sqlite import SqliteFtsIndex
from knowledge.types import LexicalIndex
from tests.knowledge.store_suite import CORPUS, HOSTILE_QUERIES, make_chunk, unique_name


@pytest.fixture
def filled(index):
    index.upsert(CORPUS)
    return index


def ids(hits):
    return [h.chunk_id for h in hits]


def test_factory_picks_the_dialects_implementation(index, lexical_engine):
    expected = SqliteFtsIndex if lexical_engine.dialect.name == "sqlite" else PostgresFtsIndex
    assert type(index) is expected
    assert isinstance(index, LexicalIndex)


def test_relevant_chunk_ranks_first_with_scores_and_metadata(filled):
    hits = filled.query("how do I reset the password", k=3)
    assert hits[0].chunk_id == "c_pw"
    top = hits[0]
    assert top.scores == {"lexical": top.score} and top.score > 0
    assert top.ranks == {"lexical": 1}
    assert top.metadata["document_id"] == "doc_account"
    assert top.metadata["heading_path"] == "Account > Security"
    assert top.metadata["page"] == 1
    assert "Forgot password" in top.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_stemming_matches_other_word_forms(filled):
    # "running" and "runs" share the stem "run"; "baking" finds "bake".
    assert ids(filled.query("running", k=5)) == ["c_runs"]
    assert ids(filled.query("baking", k=5)) == ["c_cake"]


def test_any_term_matches_and_more_terms_rank_higher(filled):
    hits = filled.query("bread dough oven", k=5)
    assert set(ids(hits)) == {"c_bread", "c_cake"}
    assert hits[0].chunk_id == "c_bread"  # two of the three terms


def test_no_match_returns_empty(filled):
    assert filled.query("kubernetes", k=5) == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_never_raise(filled, query):
    hits = filled.query(query, k=3)
    assert isinstance(hits, list)
    if "backup" in query:
        assert ids(hits)[:1] == ["c_runs"]


def test_k_limits_results(filled):
    assert len(filled.query("the and to minutes bread cake password disk backup", k=2)) == 2
    assert filled.query("backup", k=0) == []


def test_upsert_of_an_existing_chunk_replaces_it(filled):
    filled.upsert([make_chunk("c_runs", "The nightly job now writes snapshots to tape.", "doc_ops")])
    assert filled.count() == len(CORPUS)
    assert filled.query("backup", k=5) == []
    hits = filled.query("tape snapshots", k=5)
    assert ids(hits) == ["c_runs"]
    assert "tape" in hits[0].text


def test_repeated_ids_in_one_upsert_keep_the_last(index):
    index.upsert([make_chunk("c1", "first version about apples"), make_chunk("c1", "second version about pears")])
    assert index.count() == 1
    assert ids(index.query("pears", k=5)) == ["c1"]
    assert index.query("apples", k=5) == []


def test_text_with_nul_characters_is_indexed(index):
    index.upsert([make_chunk("c1", "broken\x00 pdf extraction output", metadata={"title": "a\x00b"})])
    assert ids(index.query("extraction", k=5)) == ["c1"]


def test_delete_documents_removes_from_results_and_count(filled):
    filled.delete_documents(["doc_ops", "doc_unknown"])
    assert filled.count() == len(CORPUS) - 2
    assert filled.query("backup disk uploads", k=5) == []
    assert ids(filled.query("password", k=5)) == ["c_pw"]


def test_delete_chunks(filled):
    filled.delete_chunks(["c_pw", "c_missing"])
    assert filled.count() == len(CORPUS) - 1
    assert filled.query("password", k=5) == []
    filled.delete_chunks([])
    assert filled.count() == len(CORPUS) - 1


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"document_id": "doc_recipes"}, {"c_cake", "c_bread"}),
        ({"document_id": {"$in": ["doc_ops", "doc_account"]}}, {"c_runs", "c_disk", "c_pw"}),
        ({"document_id": {"$nin": ["doc_ops"]}}, {"c_cake", "c_bread", "c_pw"}),
        ({"priority": {"$gte": 3}}, {"c_disk"}),
        ({"$and": [{"team": "ops"}, {"priority": {"$lt": 3}}]}, {"c_runs"}),
        ({"$or": [{"team": "kitchen"}, {"page": 1}]}, {"c_cake", "c_bread", "c_pw", "c_runs"}),
        ({"team": {"$ne": "kitchen"}}, {"c_runs", "c_disk", "c_pw"}),
        ({"heading_path": "Account > Security"}, {"c_pw"}),
        ({"document_id": {"$in": []}}, set()),
    ],
)
def test_where_filters_on_chunk_metadata(filled, where, expected):
    # Every chunk contains one of these words, so the filter alone decides.
    query = "password backup disk oven bread"
    assert set(ids(filled.query(query, k=10, where=where))) == expected


def test_metadata_is_flat_and_scalar(filled):
    meta = filled.query("backup", k=1)[0].metadata
    assert meta == {
        "document_id": "doc_ops", "source_id": "ks_1", "ordinal": 0, "token_count": 15,
        "content_hash": CORPUS[2].content_hash, "page": 1, "team": "ops", "priority": 2,
    }  # "tags" (a list) is dropped, no heading_path when there is none


def test_indexes_with_different_names_are_isolated(lexical_engine, filled):
    other = make_lexical_index(lexical_engine, unique_name("lex"))
    try:
        other.upsert([make_chunk("x1", "a completely separate backup note", "doc_x")])
        assert other.count() == 1
        assert ids(other.query("backup", k=5)) == ["x1"]
        assert ids(filled.query("backup", k=5)) == ["c_runs"]
    finally:
        other.drop()


def test_drop_removes_the_tables(lexical_engine, filled):
    filled.drop()
    tables = inspect(lexical_engine).get_table_names()
    assert not [t for t in tables if t.startswith(filled.table)]
    assert filled.count() == 0  # usable again: recreated empty


def test_upsert_many_chunks_in_batches(index):
    chunks = [make_chunk(f"c{i}", f"note number {i} about topic{i % 7}", f"doc{i % 10}") for i in range(1203)]
    index.upsert(chunks)
    assert index.count() == 1203
    index.delete_documents([f"doc{i}" for i in range(5)])
    assert index.count() == 1203 - sum(1 for i in range(1203) if i % 10 < 5)
    assert len(index.query("topic3", k=1000)) == sum(1 for i in range(1203) if i % 7 == 3 and i % 10 >= 5)


def test_query_terms_are_plain_words_without_stopwords():
    assert query_terms('How do I "reset" (the) password?* -now AND') == ["reset", "password", "now"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]  # all stopwords: keep them
    assert query_terms("") == []


def test_table_names_are_sanitised_and_distinct():
    assert safe_table_name("lex", "rag_1") == "lex_rag_1"
    a, b = safe_table_name("lex", "a-b"), safe_table_name("lex", "a_b")
    assert a != b and a.replace("_", "").isalnum()
    assert len(safe_table_name("lex", "x" * 200, max_len=54)) == 54
