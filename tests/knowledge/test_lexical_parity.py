"""Lexical search finds and ranks the same way on SQLite and PostgreSQL.

Every test here runs on each backend (the `lexical_engine` fixture: SQLite always, PostgreSQL in the
`postgres` pass): identifiers, numbers, hyphens, accents and stemming; scores equal to a BM25 computed in
the test from the shared terms; and indexes written by an older layout re-tokenising themselves. One
test builds the same index on both databases and compares their rankings hit by hit.
"""
from __future__ import annotations

import math
import threading
from collections import Counter

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy import text as sql_text

from knowledge.stores import make_lexical_index
from knowledge.stores.lexical_terms import TERMS_VERSION, document_terms, query_terms
from tests.knowledge.store_suite import CORPUS, POSTGRES_URL, make_chunk, unique_name

DOCS = [
    make_chunk("t42", "Ticket PRJ-0042: the export job fails when a folder is empty.", "doc_tickets"),
    make_chunk("t43", "Ticket PRJ-0043: the login page is slow on mobile.", "doc_tickets"),
    make_chunk("t420", "Ticket PRJ-0420 was closed as a duplicate of the export bug.", "doc_tickets"),
    make_chunk("r231", "Release v2.3.1 fixes the memory leak in the uploader.", "doc_releases"),
    make_chunk("r232", "Release v2.3.2 adds a dark mode and 3 new themes.", "doc_releases"),
    make_chunk("r132", "Release v1.3.2 was the last release of the 1.x line.", "doc_releases"),
    make_chunk("iso27", "We are certified under ISO-27001 since 2021 and audited every year.", "doc_compliance"),
    make_chunk("iso9", "An ISO 9001 quality audit is scheduled for 2027.", "doc_compliance"),
    make_chunk("rfc9110", "HTTP semantics are defined in RFC 9110, which obsoletes RFC 7231.", "doc_http"),
    make_chunk("rfc9111", "RFC 9111 describes HTTP caching and the Cache-Control header.", "doc_http"),
    make_chunk("cafe", "Le café de la gare est fermé le lundi.", "doc_fr"),
    make_chunk("mail", "The e-mail gateway rejects attachments over 10 MB.", "doc_it"),
    make_chunk("refund", "Refund policy: a refund is issued within 14 days of the request.", "doc_policy"),
    make_chunk("mfa", "Two-factor authentication is required for every administrator account.", "doc_it"),
    make_chunk("price", "The enterprise plan costs 1,200 euros per month, billed yearly.", "doc_policy"),
    *CORPUS,
]

# (query, the chunk that must come first); each also runs on every backend's own ranking.
TOP_HITS = [
    ("PRJ-0042", "t42"),
    ("prj0042", "t42"),
    ("What is the status of PRJ-0042?", "t42"),
    ("PRJ-0420", "t420"),
    ("v2.3.1", "r231"),
    ("what changed in v2.3.2", "r232"),
    ("ISO-27001", "iso27"),
    ("ISO 27001 certification", "iso27"),
    ("iso27001", "iso27"),
    ("RFC 9110", "rfc9110"),
    ("rfc 9111 caching", "rfc9111"),
    ("café", "cafe"),
    ("cafe", "cafe"),
    ("CAFÉ opening hours", "cafe"),
    ("email", "mail"),
    ("e-mail attachments", "mail"),
    ("refunds", "refund"),
    ("refunding a request", "refund"),
    ("two factor", "mfa"),
    ("twofactor", "mfa"),
    ("1200 euros", "price"),
    ("1,200", "price"),
    ("14 days", "refund"),
]


@pytest.fixture
def docs_index(index):
    index.upsert(DOCS)
    return index


def ids(hits):
    return [h.chunk_id for h in hits]


@pytest.mark.parametrize(("query", "expected"), TOP_HITS)
def test_identifier_number_hyphen_accent_and_stem_queries_find_their_chunk(docs_index, query, expected):
    hits = docs_index.query(query, k=5)
    assert ids(hits)[:1] == [expected], (query, [(h.chunk_id, round(h.score, 3)) for h in hits])


def test_an_identifier_outranks_its_neighbours(docs_index):
    # PRJ-0043 and PRJ-0420 share "prj" (and 0420 the export bug) but not the identifier.
    hits = docs_index.query("PRJ-0042", k=5)
    assert ids(hits)[0] == "t42"
    assert hits[0].score > 2 * hits[1].score


def reference_bm25(chunks, query: str) -> list[tuple[str, float]]:
    """BM25 as SQLite FTS5's bm25() defines it (k1 1.2, b 0.75, idf floored at 1e-6), computed here from
    the shared terms: every backend's scores must equal it. A term in half the chunks or more is not
    searched for when the query has a term found in fewer (lexical_terms.informative_terms)."""
    tfs = {c.id: Counter(document_terms(c.text)) for c in chunks}
    n = len(chunks)
    avgdl = sum(sum(tf.values()) for tf in tfs.values()) / n
    scores: dict[str, float] = {}
    terms = query_terms(query)
    df = {t: sum(1 for tf in tfs.values() if t in tf) for t in terms}
    if any(0 < df[t] < n / 2 for t in terms):
        terms = [t for t in terms if df[t] < n / 2]
    for term in terms:
        hits = sum(1 for tf in tfs.values() if term in tf)
        if not hits:
            continue
        idf = max(math.log((n - hits + 0.5) / (hits + 0.5)), 0) or 1e-6
        for cid, tf in tfs.items():
            if term in tf:
                dl = sum(tf.values())
                scores[cid] = scores.get(cid, 0.0) + idf * (tf[term] * 2.2) / (tf[term] + 1.2 * (0.25 + 0.75 * dl / avgdl))
    return sorted(scores.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize("query", ["PRJ-0042", "release memory leak", "HTTP caching RFC", "the export bug",
                                   "minutes bread oven", "audit"])
def test_scores_are_bm25_of_the_shared_terms(docs_index, query):
    expected = reference_bm25(DOCS, query)
    hits = docs_index.query(query, k=len(DOCS))
    assert {h.chunk_id for h in hits} == {cid for cid, _ in expected}
    got = {h.chunk_id: h.score for h in hits}
    for cid, score in expected:
        assert got[cid] == pytest.approx(score, rel=1e-9), cid
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_term_in_half_the_chunks_is_not_searched_for_next_to_rarer_ones(index):
    """"report" is in 7 of 8 chunks: BM25 weighs it 1e-6, so it does not make its chunks candidates when
    the query has a rarer term; alone (or next to a term found nowhere) it is searched for as before.
    How common a term is, is counted again after every write."""
    chunks = [make_chunk(f"r{i}", f"quarterly report number {i}", "d") for i in range(6)] + [
        make_chunk("audit", "annual audit findings", "d"), make_chunk("other", "audit report", "d")]
    index.upsert(chunks)
    assert set(ids(index.query("report audit", k=20))) == {"audit", "other"}
    assert len(index.query("report", k=20)) == 7
    assert len(index.query("report xyzzy", k=20)) == 7
    # Ten more chunks: "report" is in 7 of 18, rare enough to be searched for again, and scored as BM25 says.
    more = [make_chunk(f"p{i}", f"plain words {i}", "d") for i in range(10)]
    index.upsert(more)
    got = {h.chunk_id: h.score for h in index.query("report audit", k=20)}
    assert set(got) == {"audit", "other", *(f"r{i}" for i in range(6))}
    assert got == pytest.approx(dict(reference_bm25(chunks + more, "report audit")), rel=1e-9)


@pytest.mark.parametrize("where", [{"ordinal": {"$gte": 0}}, {"ordinal": {"$in": [1, 4]}}, {"ordinal": 3},
                                   {"ordinal": 99}])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_filtered_search_is_the_best_k_of_the_chunks_that_pass(index, where, k):
    """Filters that pass nearly all, some or none of the matches, with k small enough that PostgreSQL
    first tries the best 4k chunks alone: the result is always the first k of the full BM25 ranking of
    the chunks that pass (ties, here many, by insertion order)."""
    chunks = [make_chunk(f"c{i:02d}", " ".join(["audit"] * (i % 4 + 1) + ["filler"] * (i % 5)), "d", ordinal=i % 5)
              for i in range(40)]
    index.upsert(chunks)
    allowed = {c.id for c in chunks if (where.get("ordinal") == c.ordinal if isinstance(where["ordinal"], int)
                                         else c.ordinal >= 0 if "$gte" in where["ordinal"]
                                         else c.ordinal in where["ordinal"]["$in"])}
    order = {c.id: n for n, c in enumerate(chunks)}
    expected = sorted(((cid, sc) for cid, sc in reference_bm25(chunks, "audit") if cid in allowed),
                      key=lambda kv: (-round(kv[1], 9), order[kv[0]]))[:k]
    hits = index.query("audit", k=k, where=where)
    assert ids(hits) == [cid for cid, _ in expected]
    assert [h.score for h in hits] == pytest.approx([sc for _, sc in expected], rel=1e-9)


def test_ties_break_by_insertion_order(index):
    index.upsert([make_chunk(c, "identical text about invoices", "d") for c in ("c3", "c1", "c2")])
    hits = index.query("invoices", k=5)
    assert ids(hits) == ["c3", "c1", "c2"]
    assert len({h.score for h in hits}) == 1


def test_replacing_a_chunk_updates_length_and_statistics(docs_index):
    before = dict((h.chunk_id, h.score) for h in docs_index.query("refund", k=5))
    docs_index.upsert([make_chunk("refund", "Refund refund refund: refunds always.", "doc_policy")])
    docs_index.delete_chunks(["price"])
    chunks = [c for c in DOCS if c.id != "price"]
    chunks = [make_chunk("refund", "Refund refund refund: refunds always.", "doc_policy") if c.id == "refund"
              else c for c in chunks]
    expected = dict(reference_bm25(chunks, "refund"))
    after = {h.chunk_id: h.score for h in docs_index.query("refund", k=5)}
    assert after == pytest.approx(expected, rel=1e-9) and after != before
    assert docs_index.count() == len(DOCS) - 1


def test_concurrent_overlapping_writers_keep_the_statistics_exact(lexical_engine, index):
    # Two writers upsert overlapping chunks in several batches at once (and one deletes some): the
    # result must be the same index as written one after the other, with BM25 statistics to match.
    bulk = [make_chunk(f"n{i}", f"note {i} about invoices and topic{i % 5}", f"d{i % 7}") for i in range(1600)]
    index.upsert(bulk[:10])  # create the tables first
    errors = []

    def write(chunks, delete=()):
        try:
            make_lexical_index(lexical_engine, index.name).upsert(chunks)
            if delete:
                make_lexical_index(lexical_engine, index.name).delete_documents(delete)
        except Exception as exc:  # noqa: BLE001 - any failure in a writer fails the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(bulk[:1200],)),
               threading.Thread(target=write, args=(bulk[400:][::-1], ["d6"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # d6 may have been deleted before or after the other writer re-added some of its chunks
    kept = {c.id for c in bulk} - {c.id for c in bulk if c.document_id == "d6"}
    assert index.count() in (len(kept), len(kept) + sum(1 for c in bulk[:1200] if c.document_id == "d6"))
    present = {h.chunk_id for h in index.query("invoices", k=5000)}
    assert len(present) == index.count()
    expected = dict(reference_bm25([c for c in bulk if c.id in present], "topic3 invoices"))
    got = {h.chunk_id: h.score for h in index.query("topic3 invoices", k=5000)}
    assert got == pytest.approx(expected, rel=1e-9)


def test_a_long_index_name_fits_every_identifier(lexical_engine):
    # PostgreSQL cuts identifiers at 63 bytes: every table, index and constraint name must fit, or two
    # of them would collide after the cut.
    index = make_lexical_index(lexical_engine, "a-very-long-index-name-" * 10)
    try:
        index.upsert(DOCS)
        assert ids(index.query("PRJ-0042", k=1)) == ["t42"]
        if lexical_engine.dialect.name == "postgresql":
            with lexical_engine.connect() as conn:
                relations = set(conn.execute(sql_text("SELECT relname FROM pg_class WHERE relname LIKE :p"),
                                             {"p": index.table[:40] + "%"}).scalars())
            t = index.table
            # (the identity column's sequence is named by PostgreSQL itself, which keeps it unique)
            assert {r for r in relations if not r.endswith("_seq")} == {
                t, f"{t}_pkey", f"{t}_doc", f"{t}_p", f"{t}_pt", f"{t}_pc", f"{t}_s"}
    finally:
        index.drop()
    assert not [t for t in inspect(lexical_engine).get_table_names() if t.startswith(index.table)]


@pytest.mark.postgres
def test_postgresql_postings_of_an_earlier_release_get_the_covering_key():
    """Indexes made before kept postings under a primary key (term, chunk_id) without tf and length, so a
    query read one heap page per posting; the first open now swaps in the covering unique index."""
    assert POSTGRES_URL, "MAGNET_TEST_POSTGRES_URL is not set: run with -m 'not postgres'"
    lexical_engine = create_engine(POSTGRES_URL)
    name = unique_name("pk")
    index = make_lexical_index(lexical_engine, name)
    try:
        index.upsert(DOCS)
        with lexical_engine.begin() as conn:  # back to the earlier layout
            conn.execute(sql_text(f"DROP INDEX {index.table}_pt"))
            conn.execute(sql_text(f"ALTER TABLE {index._post} ADD CONSTRAINT {index.table}_pk"
                                  " PRIMARY KEY (term, chunk_id)"))
        reopened = make_lexical_index(lexical_engine, name)
        expected = reference_bm25(DOCS, "release memory leak")
        assert [(h.chunk_id, h.score) for h in reopened.query("release memory leak", k=20)] == \
            [(cid, pytest.approx(score, rel=1e-9)) for cid, score in expected]
        with lexical_engine.connect() as conn:
            keys = set(conn.execute(sql_text("SELECT indexrelid::regclass::text FROM pg_index"
                                             " WHERE indrelid = CAST(:t AS regclass)"), {"t": index._post}).scalars())
        assert keys == {f"{index.table}_pt", f"{index.table}_pc"}
    finally:
        index.drop()
        lexical_engine.dispose()


# --- indexes written before this tokenisation ---------------------------------------------------------


def _write_old_layout(engine, index) -> None:
    """Create ``index``'s tables as the previous release did, with three of DOCS in them."""
    rows = [(c, i + 1) for i, c in enumerate(DOCS[:3])]
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(sql_text(
                f"CREATE VIRTUAL TABLE {index.table} USING fts5(chunk_id UNINDEXED, document_id UNINDEXED,"
                " text, meta UNINDEXED, tokenize='porter unicode61')"))
            conn.execute(sql_text(f"CREATE TABLE {index.table}_ids (rowid INTEGER PRIMARY KEY,"
                                  " chunk_id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL)"))
            for c, rowid in rows:
                conn.execute(sql_text(f"INSERT INTO {index.table}_ids VALUES (:r, :id, :doc)"),
                             {"r": rowid, "id": c.id, "doc": c.document_id})
                conn.execute(sql_text(f"INSERT INTO {index.table} (rowid, chunk_id, document_id, text, meta)"
                                      " VALUES (:r, :id, :doc, :text, '{}')"),
                             {"r": rowid, "id": c.id, "doc": c.document_id, "text": c.text})
        else:
            conn.execute(sql_text(
                f"CREATE TABLE {index.table} (chunk_id TEXT PRIMARY KEY, document_id TEXT NOT NULL,"
                " text TEXT NOT NULL, meta JSONB NOT NULL,"
                " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)"))
            conn.execute(sql_text(f"CREATE INDEX {index.table}_tsv ON {index.table} USING GIN (tsv)"))
            conn.execute(sql_text(f"CREATE INDEX {index.table}_doc ON {index.table} (document_id)"))
            for c, _ in rows:
                conn.execute(sql_text(f"INSERT INTO {index.table} VALUES (:id, :doc, :text, '{{}}')"),
                             {"id": c.id, "doc": c.document_id, "text": c.text})


def test_an_index_of_the_previous_layout_retokenises_itself(lexical_engine):
    name = unique_name("old")
    index = make_lexical_index(lexical_engine, name)
    try:
        _write_old_layout(lexical_engine, index)
        reopened = make_lexical_index(lexical_engine, name)  # what the first request after an upgrade does
        assert reopened.count() == 3
        assert ids(reopened.query("prj0042", k=5)) == ["t42"]  # a compound term: only the new rules have it
        assert ids(reopened.query("PRJ-0042", k=5))[0] == "t42"
        assert {c["name"] for c in inspect(lexical_engine).get_columns(index.table)}.isdisjoint({"tsv"})
        # and it is an ordinary index from now on
        reopened.upsert([DOCS[3]])
        reopened.delete_documents(["doc_tickets"])
        assert reopened.count() == 1
        assert ids(reopened.query("v2.3.1", k=5)) == ["r231"]
        assert dict((h.chunk_id, h.score) for h in reopened.query("release", k=5)) == pytest.approx(
            dict(reference_bm25([DOCS[3]], "release")), rel=1e-9)
    finally:
        index.drop()


def test_an_index_of_another_tokenisation_version_is_rebuilt_from_its_text(lexical_engine, docs_index):
    # Spoil the stored terms and mark them as written by another version: reopening must rebuild them.
    with lexical_engine.begin() as conn:
        if lexical_engine.dialect.name == "sqlite":
            conn.execute(sql_text(f"UPDATE {docs_index.table} SET terms = 'qqq'"))
            conn.execute(sql_text(f"UPDATE {docs_index.table}_format SET version = :v"), {"v": TERMS_VERSION + 1})
        else:
            conn.execute(sql_text(f"DELETE FROM {docs_index.table}_p"))
            conn.execute(sql_text(f"INSERT INTO {docs_index.table}_p SELECT 'qqq', chunk_id, 1, 1 FROM {docs_index.table}"))
            conn.execute(sql_text(f"UPDATE {docs_index.table}_s SET version = :v, tokens = 1"),
                         {"v": TERMS_VERSION + 1})
    assert ids(docs_index.query("qqq", k=50)) != []  # the open object has checked its version already
    reopened = make_lexical_index(lexical_engine, docs_index.name)
    assert reopened.query("qqq", k=5) == []
    for query, expected in TOP_HITS[:6]:
        assert ids(reopened.query(query, k=5))[:1] == [expected]
    got = {h.chunk_id: h.score for h in reopened.query("release memory leak", k=50)}
    assert got == pytest.approx(dict(reference_bm25(DOCS, "release memory leak")), rel=1e-9)


# --- the same index on both databases -------------------------------------------------------------------


PARITY_QUERIES = [q for q, _ in TOP_HITS] + [
    "export", "release", "the", "audit year", "HTTP", "password reset settings", "backup database storage",
    "bake chocolate cake minutes", "ünïcödé", "2021 2027", "1.x", "mode themes", "to be or not to be",
]


@pytest.mark.postgres
def test_sqlite_and_postgresql_rank_the_same(tmp_path):
    assert POSTGRES_URL, "MAGNET_TEST_POSTGRES_URL is not set: run with -m 'not postgres'"
    engines = [create_engine(f"sqlite:///{tmp_path / 'parity.db'}"), create_engine(POSTGRES_URL)]
    indexes = [make_lexical_index(engine, unique_name("parity")) for engine in engines]
    try:
        for idx in indexes:
            idx.upsert(DOCS[:10])
            idx.upsert(DOCS[8:])  # two batches, two chunks replaced
            idx.delete_chunks(["c_disk"])
        sqlite, postgres = indexes
        assert sqlite.count() == postgres.count() == len(DOCS) - 1
        for query in PARITY_QUERIES:
            a, b = sqlite.query(query, k=10), postgres.query(query, k=10)
            assert ids(a) == ids(b), query
            assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-9), query
            assert [h.metadata for h in a] == [h.metadata for h in b], query
        assert sum(1 for q in PARITY_QUERIES if sqlite.query(q, k=10)) >= len(PARITY_QUERIES) - 1
    finally:
        for idx, engine in zip(indexes, engines, strict=True):
            idx.drop()
            engine.dispose()
