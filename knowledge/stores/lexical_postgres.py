"""Lexical index on PostgreSQL, ranked with the same BM25 as SQLite FTS5's ``bm25()``.

The terms come from :mod:`knowledge.stores.lexical_terms`, the rules SQLite uses too, and are stored in a
postings table (term, chunk, term frequency, chunk length); a one-row stats table keeps the chunk count,
the total length and the tokenisation version. A query computes FTS5's formula exactly (k1 = 1.2,
b = 0.75, idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6, sum over the query terms), so both
databases return the same chunks in the same order with the same scores. PostgreSQL's own full-text
search was not used: its parsers split identifiers differently (``english`` made ``PRJ-0042`` into
``prj`` + ``-0042``, unreachable from a query) and ``ts_rank`` has no inverse document frequency.

Tables per index (54-character base + suffix, within PostgreSQL's 63-character identifiers): ``<b>_fts``
(chunk_id, document_id, text, meta, length, seq), ``<b>_fts_p`` (postings), ``<b>_fts_s`` (stats). An index
from before (``<b>_fts`` with a generated ``tsv`` column) or from another tokenisation version is
re-tokenised from its stored text when first opened.
"""
from __future__ import annotations

import math
from collections import Counter
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

_BATCH = 500
BM25_K1, BM25_B = 1.2, 0.75  # the values SQLite FTS5's bm25() fixes


def bm25_idf(rows: int, hits: int) -> float:
    """FTS5's inverse document frequency: a term in more than half the chunks still counts a little."""
    idf = math.log((rows - hits + 0.5) / (hits + 0.5))
    return idf if idf > 0.0 else 1e-6


def _no_nul(value):
    """PostgreSQL text and jsonb cannot hold NUL characters (PDF extraction sometimes yields them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: _no_nul(v) for k, v in value.items()}
    return value


class PostgresFtsIndex:
    """The :class:`~knowledge.types.LexicalIndex` protocol on three PostgreSQL tables.

    Hits have ``score`` = BM25 (higher is better), equal to the SQLite index's score for the same data,
    and the same flat metadata as the vector store. Each method runs in its own ``engine.begin()``
    transaction.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        # Every relation of an index ends in its own suffix (_fts, _fts_p, _fts_s, _fts_doc, _fts_pc,
        # _fts_pt, _fts_pkey; _fts_pk before), so no index name can produce another index's relation.
        self.table = safe_table_name("lex", name, max_len=54) + "_fts"
        self._post = f"{self.table}_p"
        self._stats = f"{self.table}_s"
        self._ready = False

    def _version(self, conn) -> int | None:
        """The stored tokenisation version: None without a table, 0 for the tsvector layout."""
        table, stats = conn.execute(sql_text("SELECT to_regclass(:t), to_regclass(:s)"),
                                    {"t": self.table, "s": self._stats}).one()
        if table is None:
            return None
        if stats is None:
            return 0
        return conn.execute(sql_text(f"SELECT version FROM {self._stats}")).scalar_one()

    def _ensure(self, conn) -> None:
        if self._ready:
            return
        if self._version(conn) != TERMS_VERSION:
            # One creator or rebuilder at a time per index; the others find the work done.
            self._lock_for_write(conn)
            version = self._version(conn)
            if version is None:
                self._create(conn)
            elif version != TERMS_VERSION:
                self._retokenise(conn, version)
        if conn.execute(sql_text("SELECT to_regclass(:i)"), {"i": f"{self.table}_pt"}).scalar() is None:
            self._lock_for_write(conn)
            self._covering_postings_index(conn)
        self._ready = True

    def _covering_postings_index(self, conn) -> None:
        """Postings are read by term: an index on (term, chunk_id) that also holds tf and length answers
        that from the index alone. Postings are written chunk by chunk, so one term's rows lie on as many
        heap pages as it has chunks: 25,000 page reads for one query at 100k chunks without it. Replaces
        the primary key (term, chunk_id) of indexes made before."""
        conn.execute(sql_text(f"CREATE UNIQUE INDEX IF NOT EXISTS {self.table}_pt ON {self._post}"
                              " (term, chunk_id) INCLUDE (tf, length)"))
        conn.execute(sql_text(f"ALTER TABLE {self._post} DROP CONSTRAINT IF EXISTS {self.table}_pk"))

    def _lock_for_write(self, conn) -> None:
        """Writers of one index take turns (until commit): each write changes the one stats row, and
        two multi-batch upserts of overlapping chunks would otherwise deadlock or collide on a chunk id."""
        conn.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": self.table})

    def _create(self, conn) -> None:
        t = self.table
        conn.execute(sql_text(
            f"CREATE TABLE {t} (chunk_id TEXT PRIMARY KEY, document_id TEXT NOT NULL, text TEXT NOT NULL,"
            " meta JSONB NOT NULL, length INTEGER NOT NULL, seq BIGINT GENERATED ALWAYS AS IDENTITY)"))
        self._create_side_tables(conn)

    def _create_side_tables(self, conn) -> None:
        t = self.table
        conn.execute(sql_text(f"CREATE INDEX IF NOT EXISTS {t}_doc ON {t} (document_id)"))
        conn.execute(sql_text(
            f"CREATE TABLE IF NOT EXISTS {self._post} (term TEXT NOT NULL, chunk_id TEXT NOT NULL,"
            " tf INTEGER NOT NULL, length INTEGER NOT NULL)"))
        self._covering_postings_index(conn)
        conn.execute(sql_text(f"CREATE INDEX IF NOT EXISTS {t}_pc ON {self._post} (chunk_id)"))
        conn.execute(sql_text(f"CREATE TABLE IF NOT EXISTS {self._stats} (version INTEGER NOT NULL,"
                              " chunks BIGINT NOT NULL, tokens BIGINT NOT NULL)"))
        conn.execute(sql_text(f"DELETE FROM {self._stats}"))
        conn.execute(sql_text(f"INSERT INTO {self._stats} VALUES (:v, 0, 0)"), {"v": TERMS_VERSION})

    def _retokenise(self, conn, version: int) -> None:
        """Make the postings of every stored chunk again with today's rules (the text is kept)."""
        t = self.table
        conn.execute(sql_text(f"LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE"))
        if version == 0:  # the tsvector layout: its generated column and GIN index go
            conn.execute(sql_text(
                f"ALTER TABLE {t} DROP COLUMN IF EXISTS tsv, ADD COLUMN length INTEGER NOT NULL DEFAULT 0,"
                " ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY"))
        self._create_side_tables(conn)
        conn.execute(sql_text(f"TRUNCATE {self._post}"))
        last = 0
        while True:
            rows = conn.execute(sql_text(f"SELECT seq, chunk_id, text FROM {t} WHERE seq > :last"
                                         " ORDER BY seq LIMIT :n"), {"last": last, "n": _BATCH}).all()
            if not rows:
                break
            lengths = self._insert_postings(conn, [(r[1], r[2]) for r in rows])
            conn.execute(sql_text(
                f"UPDATE {t} SET length = u.length FROM unnest(CAST(:ids AS text[]), CAST(:lens AS int[]))"
                f" AS u(chunk_id, length) WHERE {t}.chunk_id = u.chunk_id"),
                {"ids": [r[1] for r in rows], "lens": lengths})
            last = rows[-1][0]
        conn.execute(sql_text(f"UPDATE {self._stats} SET chunks = (SELECT count(*) FROM {t}),"
                              f" tokens = (SELECT coalesce(sum(length), 0) FROM {t})"))

    def _insert_postings(self, conn, chunks: list[tuple[str, str]]) -> list[int]:
        """Postings of (chunk_id, text) pairs, in one statement; returns each chunk's length in terms."""
        terms, ids, tfs, lens, lengths = [], [], [], [], []
        for chunk_id, text in chunks:
            counts = Counter(document_terms(text))
            length = sum(counts.values())
            lengths.append(length)
            for term, tf in counts.items():
                terms.append(term)
                ids.append(chunk_id)
                tfs.append(tf)
                lens.append(length)
        if terms:
            conn.execute(sql_text(
                f"INSERT INTO {self._post} (term, chunk_id, tf, length) SELECT * FROM unnest("
                "CAST(:terms AS text[]), CAST(:ids AS text[]), CAST(:tfs AS int[]), CAST(:lens AS int[]))"),
                {"terms": terms, "ids": ids, "tfs": tfs, "lens": lens})
        return lengths

    def _delete_where(self, conn, column: str, values: list[str]) -> None:
        """Delete the chunks whose ``column`` is in ``values`` with their postings; keeps the stats right."""
        stmt = sql_text(f"DELETE FROM {self.table} WHERE {column} IN :v RETURNING chunk_id, length"
                        ).bindparams(bindparam("v", expanding=True))
        for batch in iter_batches(values, _BATCH):
            gone = conn.execute(stmt, {"v": batch}).all()
            if not gone:
                continue
            conn.execute(sql_text(f"DELETE FROM {self._post} WHERE chunk_id = ANY(CAST(:ids AS text[]))"),
                         {"ids": [g[0] for g in gone]})
            self._add_to_stats(conn, -len(gone), -sum(g[1] for g in gone))

    def _add_to_stats(self, conn, chunks: int, tokens: int) -> None:
        conn.execute(sql_text(f"UPDATE {self._stats} SET chunks = chunks + :c, tokens = tokens + :t"),
                     {"c": chunks, "t": tokens})

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert chunks, replacing any existing rows with the same chunk ids."""
        chunks, _ = dedupe_chunks(list(chunks))
        insert = sql_text(
            f"INSERT INTO {self.table} (chunk_id, document_id, text, meta, length)"
            " SELECT i, d, x, CAST(m AS jsonb), n FROM unnest(CAST(:ids AS text[]), CAST(:docs AS text[]),"
            " CAST(:texts AS text[]), CAST(:metas AS text[]), CAST(:lens AS int[])) WITH ORDINALITY"
            " AS u(i, d, x, m, n, o) ORDER BY o")  # seq follows the batch's order, as SQLite's rowids do
        with self.engine.begin() as conn:
            self._ensure(conn)
            self._lock_for_write(conn)
            for batch in iter_batches(chunks, _BATCH):
                self._delete_where(conn, "chunk_id", [c.id for c in batch])
                texts = [_no_nul(c.text) for c in batch]
                lengths = self._insert_postings(conn, [(c.id, x) for c, x in zip(batch, texts, strict=True)])
                conn.execute(insert, {
                    "ids": [c.id for c in batch], "docs": [c.document_id for c in batch], "texts": texts,
                    "metas": [json_dumps(_no_nul(chunk_metadata(c))) for c in batch], "lens": lengths})
                self._add_to_stats(conn, len(batch), sum(lengths))

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        """Remove every chunk of the given documents."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            self._lock_for_write(conn)
            self._delete_where(conn, "document_id", list(dict.fromkeys(document_ids)))

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            self._lock_for_write(conn)
            self._delete_where(conn, "chunk_id", list(dict.fromkeys(chunk_ids)))

    def query(self, text: str, k: int, where: dict | None = None) -> list[Hit]:
        """The ``k`` best BM25 matches for free text (any OR of its query terms), best first.

        Terms are bound as an array parameter, never parsed, so no user input can break the query.
        ``where`` is a Chroma-style filter on the chunk metadata (see ``knowledge.stores.where_to_sql``).
        """
        terms = query_terms(text)
        if not terms or k <= 0:
            return []
        with self.engine.begin() as conn:
            self._ensure(conn)
            chunks, tokens = conn.execute(sql_text(f"SELECT chunks, tokens FROM {self._stats}")).one()
            hits_of = dict(conn.execute(sql_text(
                f"SELECT term, count(*) FROM {self._post} WHERE term = ANY(CAST(:terms AS text[]))"
                " GROUP BY term"), {"terms": terms}).all())
            found = [t for t in informative_terms(terms, hits_of, chunks) if hits_of.get(t)]
            if not found:
                return []
            params: dict = {"terms": found, "idfs": [bm25_idf(chunks, hits_of[t]) for t in found], "k": k,
                            "k1": BM25_K1, "b": BM25_B, "avgdl": tokens / chunks}
            cond = where_to_sql(where, "postgresql", params)
            # The per-chunk sums of a query over 100k chunks need ~10 MB; the 4 MB default spills to disk.
            conn.execute(sql_text("SET LOCAL work_mem = '32MB'"))
            if not where:
                rows, _ = self._ranked(conn, params, cond, edge_at=k)
            else:
                # The best 4k chunks first: when k of those that pass the filter score at least the 4k-th
                # score, no chunk outside them can rank above (or tie with) them. Otherwise, all of them.
                rows, edge = self._ranked(conn, params, cond, edge_at=4 * k)
                if len(rows) < k or rows[-1][3] < edge:
                    rows, _ = self._ranked(conn, params, cond, edge_at=None)
        hits = []
        for rank, (chunk_id, body, meta, score) in enumerate(rows, start=1):
            hits.append(Hit(chunk_id=chunk_id, text=body, score=float(score), metadata=dict(meta),
                            scores={"lexical": float(score)}, ranks={"lexical": rank}))
        return hits

    def _ranked(self, conn, params: dict, cond: str, edge_at: int | None) -> tuple[list, float]:
        """The ``k`` best chunks passing ``cond``, by BM25 computed with the same arithmetic, in the same
        order, as FTS5's fts5Bm25Function; and the ``edge_at``-th best score (0 without ``edge_at``).

        With ``edge_at``, only the chunks scoring at least that score, less the one-unit margin that
        rounding to SCORE_DECIMALS may tie with it, are joined to the chunk table for the filter and the
        seq tie-break: joining every matching chunk read the whole table, text and all, on each query (90
        of 270 ms at 100k chunks). The edge is found on the float: rounding every score to numeric cost
        as much again.
        """
        rounded = f"round(CAST(s.score AS numeric), {SCORE_DECIMALS})"
        edge = "0" if edge_at is None else \
            "coalesce((SELECT score FROM s ORDER BY score DESC OFFSET :edge - 1 LIMIT 1), 0)"
        rows = conn.execute(sql_text(
            "WITH s AS MATERIALIZED (SELECT p.chunk_id, sum(q.idf * ("
            "(p.tf * (:k1 + 1.0)) / (p.tf + :k1 * (1 - :b + :b * p.length / :avgdl)))) AS score"
            " FROM unnest(CAST(:terms AS text[]), CAST(:idfs AS float8[])) AS q(term, idf)"
            f" JOIN {self._post} p ON p.term = q.term GROUP BY p.chunk_id),"
            f" e AS (SELECT {edge} AS edge)"
            f" SELECT d.chunk_id, d.text, d.meta, s.score, e.edge FROM s CROSS JOIN e"
            f" JOIN {self.table} d ON d.chunk_id = s.chunk_id"
            f" WHERE ({cond}) AND s.score >= e.edge - 1e-{SCORE_DECIMALS}"
            f" ORDER BY {rounded} DESC, d.seq LIMIT :k"),
            {**params, "edge": edge_at}).all()
        return [row[:4] for row in rows], (rows[0][4] if rows else 0.0)

    def count(self) -> int:
        """Number of chunks in the index."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            return int(conn.execute(sql_text(f"SELECT chunks FROM {self._stats}")).scalar_one())

    def drop(self) -> None:
        """Delete the index's tables (a no-op if they do not exist)."""
        with self.engine.begin() as conn:
            conn.execute(sql_text(f"DROP TABLE IF EXISTS {self.table}, {self._post}, {self._stats}"))
        self._ready = False
