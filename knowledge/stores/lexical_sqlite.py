"""Lexical index on SQLite FTS5, ranked with FTS5's BM25, in the database the caller's engine points at.

Per index name there is one FTS5 table (``chunk_id``, ``document_id``, ``text``, ``meta`` as JSON, all
stored but not indexed, and ``terms``: the text's terms from :mod:`knowledge.stores.lexical_terms`, joined
by spaces and indexed with FTS5's ``ascii`` tokenizer, which keeps each of those terms whole). Terms are
made in Python so that SQLite and PostgreSQL tokenise by the same rules (ids, numbers, hyphens, accents,
stemming). A small ordinary table maps chunk ids to FTS rowids: FTS5 cannot index an UNINDEXED column, so
without it every delete-by-id would scan the whole FTS table, making a sync quadratic in corpus size. A
one-row ``_format`` table records the tokenisation version; an index written by an older version (or by
the FTS5 ``porter unicode61`` tokenizer used before) is re-tokenised from its stored text when opened.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, bindparam
from sqlalchemy import text as sql_text

from knowledge.stores import chunk_metadata, dedupe_chunks, json_dumps, safe_table_name, where_to_sql
from knowledge.stores.lexical_terms import (
    SCORE_DECIMALS,
    TERMS_VERSION,
    document_terms,
    informative_terms,
    query_terms,
)
from knowledge.types import Chunk, Hit, iter_batches

_BATCH = 500  # ids per IN (...) list: far below SQLite's bound-parameter limit
_MAX_CACHED_TERMS = 100_000  # document frequencies kept per index and version


class _TermStats:
    """Per process: each index's chunk count and its terms' document frequencies, at one version.

    The version is FTS5's structure record (``<table>_data`` row 10), which every write changes, so a
    count is reused only while the index is exactly as it was when it was counted, in any process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_table: dict[str, tuple[bytes, int, dict[str, int]]] = {}

    def get(self, table: str, version: bytes) -> tuple[int, dict[str, int]] | None:
        with self._lock:
            held = self._by_table.get(table)
        return (held[1], held[2]) if held and held[0] == version else None

    def put(self, table: str, version: bytes, rows: int, hits: dict[str, int]) -> None:
        with self._lock:
            held = self._by_table.get(table)
            if held and held[0] == version and len(held[2]) < _MAX_CACHED_TERMS:
                held[2].update(hits)
            else:
                self._by_table[table] = (version, rows, dict(hits))


_TERM_STATS = _TermStats()


def _fts_schema(table: str) -> str:
    return (f"CREATE VIRTUAL TABLE {table} USING fts5(chunk_id UNINDEXED, document_id UNINDEXED,"
            " text UNINDEXED, meta UNINDEXED, terms, tokenize='ascii')")


class SqliteFtsIndex:
    """The :class:`~knowledge.types.LexicalIndex` protocol on SQLite FTS5.

    Hits have ``score = -bm25`` (higher is better; only comparable within one query) and the same flat
    metadata as the vector store. Each method runs in its own ``engine.begin()`` transaction.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        # FTS5 adds shadow tables named <table>_data, _idx, ...; ending our tables in "_fts" means no
        # other index name can produce a table that collides with them or with the id map.
        self.table = safe_table_name("lex", name) + "_fts"
        self._ids = f"{self.table}_ids"
        self._format = f"{self.table}_format"
        self._ready = False

    def _version(self, conn) -> int | None:
        """The stored tokenisation version: None without a table, 0 for the FTS5-tokenised layout."""
        names = set(conn.execute(sql_text("SELECT name FROM sqlite_master WHERE name IN (:t, :f)"),
                                 {"t": self.table, "f": self._format}).scalars())
        if self.table not in names:
            return None
        if self._format not in names:
            return 0
        return conn.execute(sql_text(f"SELECT max(version) FROM {self._format}")).scalar_one()

    def _ensure(self, conn) -> None:
        if self._ready:
            return
        if self._version(conn) != TERMS_VERSION:
            # Take the write lock before looking again, so two processes never both create or rebuild.
            if not conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            version = self._version(conn)
            if version is None:
                conn.execute(sql_text(_fts_schema(self.table)))
            elif version != TERMS_VERSION:
                self._retokenise(conn)
            conn.execute(sql_text(f"CREATE TABLE IF NOT EXISTS {self._format} (version INTEGER NOT NULL)"))
            conn.execute(sql_text(f"DELETE FROM {self._format}"))
            conn.execute(sql_text(f"INSERT INTO {self._format} (version) VALUES (:v)"), {"v": TERMS_VERSION})
        conn.execute(sql_text(
            f"CREATE TABLE IF NOT EXISTS {self._ids} (rowid INTEGER PRIMARY KEY,"
            " chunk_id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL)"
        ))
        conn.execute(sql_text(f"CREATE INDEX IF NOT EXISTS {self._ids}_doc ON {self._ids} (document_id)"))
        self._ready = True

    def _retokenise(self, conn) -> None:
        """Rewrite the FTS table with today's terms, from the text it stores (same rowids)."""
        new = f"{self.table}_rebuild"
        conn.execute(sql_text(f"DROP TABLE IF EXISTS {new}"))
        conn.execute(sql_text(_fts_schema(new)))
        last = -1
        while True:
            rows = conn.execute(sql_text(
                f"SELECT rowid, chunk_id, document_id, text, meta FROM {self.table}"
                " WHERE rowid > :last ORDER BY rowid LIMIT :n"), {"last": last, "n": _BATCH}).all()
            if not rows:
                break
            conn.execute(sql_text(f"INSERT INTO {new} (rowid, chunk_id, document_id, text, meta, terms)"
                                  " VALUES (:rowid, :id, :doc, :text, :meta, :terms)"),
                         [{"rowid": r[0], "id": r[1], "doc": r[2], "text": r[3], "meta": r[4],
                           "terms": " ".join(document_terms(r[3]))} for r in rows])
            last = rows[-1][0]
        conn.execute(sql_text(f"DROP TABLE {self.table}"))
        conn.execute(sql_text(f"ALTER TABLE {new} RENAME TO {self.table}"))

    def _delete(self, conn, column: str, values: list[str]) -> None:
        """Delete the rows whose ``column`` (chunk_id or document_id) is in ``values``, via the id map."""
        for batch in iter_batches(values, _BATCH):
            params = {"v": batch}
            sub = f"SELECT rowid FROM {self._ids} WHERE {column} IN :v"
            conn.execute(sql_text(f"DELETE FROM {self.table} WHERE rowid IN ({sub})")
                         .bindparams(bindparam("v", expanding=True)), params)
            conn.execute(sql_text(f"DELETE FROM {self._ids} WHERE {column} IN :v")
                         .bindparams(bindparam("v", expanding=True)), params)

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert chunks, replacing any existing rows with the same chunk ids."""
        chunks, _ = dedupe_chunks(list(chunks))
        with self.engine.begin() as conn:
            self._ensure(conn)
            for batch in iter_batches(chunks, _BATCH):
                ids = [c.id for c in batch]
                self._delete(conn, "chunk_id", ids)
                conn.execute(sql_text(f"INSERT INTO {self._ids} (chunk_id, document_id) VALUES (:id, :doc)"),
                             [{"id": c.id, "doc": c.document_id} for c in batch])
                rowids = dict(conn.execute(
                    sql_text(f"SELECT chunk_id, rowid FROM {self._ids} WHERE chunk_id IN :ids")
                    .bindparams(bindparam("ids", expanding=True)), {"ids": ids}
                ).all())
                conn.execute(
                    sql_text(f"INSERT INTO {self.table} (rowid, chunk_id, document_id, text, meta, terms)"
                             " VALUES (:rowid, :id, :doc, :text, :meta, :terms)"),
                    [{"rowid": rowids[c.id], "id": c.id, "doc": c.document_id, "text": c.text,
                      "meta": json_dumps(chunk_metadata(c)), "terms": " ".join(document_terms(c.text))}
                     for c in batch],
                )

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        """Remove every chunk of the given documents."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            self._delete(conn, "document_id", list(dict.fromkeys(document_ids)))

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            self._delete(conn, "chunk_id", list(dict.fromkeys(chunk_ids)))

    def query(self, text: str, k: int, where: dict | None = None) -> list[Hit]:
        """The ``k`` best BM25 matches for free text (any OR of its query terms), best first.

        Terms contain only letters, digits and marks (see ``lexical_terms``) and are quoted, so no user
        input can cause an FTS5 syntax error. ``where`` is a Chroma-style filter on the chunk metadata
        (see ``knowledge.stores.where_to_sql``).
        """
        terms = query_terms(text)
        if not terms or k <= 0:
            return []
        with self.engine.begin() as conn:
            self._ensure(conn)
            if len(terms) > 1:
                terms = self._informative(conn, terms)
            params: dict = {"match": " OR ".join(f'"{t}"' for t in terms), "k": k, "probe": 4 * k}
            cond = where_to_sql(where, "sqlite", params)
            order = f"ORDER BY round(rank, {SCORE_DECIMALS}), rowid"
            rows = []
            if where:
                # The filter read on the 4k best matches first (reading every match's metadata cost more
                # than ranking them): if k pass, they are the k best of all that pass, as the order is total.
                rows = conn.execute(sql_text(
                    f"SELECT chunk_id, text, meta, rank FROM (SELECT rowid, chunk_id, text, meta,"
                    f" bm25({self.table}) AS rank FROM {self.table} WHERE {self.table} MATCH :match {order}"
                    f" LIMIT :probe) WHERE ({cond}) {order} LIMIT :k"), params).all()
            if len(rows) < k:
                rows = conn.execute(sql_text(
                    f"SELECT chunk_id, text, meta, bm25({self.table}) AS rank FROM {self.table}"
                    f" WHERE {self.table} MATCH :match AND ({cond}) {order} LIMIT :k"), params).all()
        hits = []
        for rank, (chunk_id, body, meta, bm25) in enumerate(rows, start=1):
            score = -float(bm25)
            hits.append(Hit(chunk_id=chunk_id, text=body, score=score, metadata=json.loads(meta),
                            scores={"lexical": score}, ranks={"lexical": rank}))
        return hits

    def _informative(self, conn, terms: list[str]) -> list[str]:
        """``terms`` less those in half the chunks or more (``lexical_terms.informative_terms``).

        A term's document frequency is the number of rows its FTS5 match has (what ``bm25()`` counts for
        its idf); counting walks the term's postings, so counts are kept per index version.
        """
        version = conn.execute(sql_text(f"SELECT block FROM {self.table}_data WHERE id = 10")).scalar() or b""
        held = _TERM_STATS.get(self.table, version)
        rows, cached = held if held else (None, {})
        if rows is None:
            rows = int(conn.execute(sql_text(f"SELECT count(*) FROM {self._ids}")).scalar_one())
        # Looked up term by term, never iterated: other threads may add to the cached dict meanwhile.
        hits = {t: cached[t] for t in terms if t in cached}
        missing = {t: int(conn.execute(sql_text(f"SELECT count(*) FROM {self.table} WHERE {self.table} MATCH :t"),
                                       {"t": f'"{t}"'}).scalar_one())
                   for t in terms if t not in hits}
        if missing or held is None:
            _TERM_STATS.put(self.table, version, rows, missing)
        return informative_terms(terms, {**hits, **missing}, rows)

    def count(self) -> int:
        """Number of chunks in the index."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            return int(conn.execute(sql_text(f"SELECT count(*) FROM {self._ids}")).scalar_one())

    def drop(self) -> None:
        """Delete the index's tables (a no-op if they do not exist)."""
        with self.engine.begin() as conn:
            for table in (self.table, self._ids, self._format, f"{self.table}_rebuild"):
                conn.execute(sql_text(f"DROP TABLE IF EXISTS {table}"))
        self._ready = False
