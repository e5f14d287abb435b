"""Lexical index on PostgreSQL full-text search: a generated ``tsvector`` column with a GIN index.

Ranking is ``ts_rank_cd`` (cover density: how many query terms occur and how close together), divided
by 1 + log(document length) via normalisation flag 1. This is *not* BM25: PostgreSQL keeps no corpus
statistics, so there is no inverse document frequency (a rare term weighs as much as a common one) and
no term-frequency saturation. True BM25 needs an extension (pg_search, pg_textsearch) that a plain
server does not have; for hybrid retrieval the ranks matter more than the raw scores, and rank fusion
only uses ranks. Scores are therefore not comparable with the SQLite index's.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, bindparam
from sqlalchemy import text as sql_text

from knowledge.stores import (
    chunk_metadata,
    dedupe_chunks,
    json_dumps,
    query_terms,
    safe_table_name,
    where_to_sql,
)
from knowledge.types import Chunk, Hit, iter_batches

_BATCH = 500
_CONFIG = "english"  # Snowball English stemming and stopwords, both at index and at query time


def _no_nul(value):
    """PostgreSQL text and jsonb cannot hold NUL characters (PDF extraction sometimes yields them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: _no_nul(v) for k, v in value.items()}
    return value


class PostgresFtsIndex:
    """The :class:`~knowledge.types.LexicalIndex` protocol on one PostgreSQL table.

    Hits have ``score = ts_rank_cd`` (higher is better) and the same flat metadata as the vector store.
    Each method runs in its own ``engine.begin()`` transaction.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        # Tables end in "_fts" and their indexes in "_tsv"/"_doc", so no index name can collide with another
        # index's relations; 54 + 4 + 4 characters stays within PostgreSQL's 63-character identifiers.
        self.table = safe_table_name("lex", name, max_len=54) + "_fts"
        self._ready = False

    def _ensure(self, conn) -> None:
        if self._ready:
            return
        t = self.table
        conn.execute(sql_text(
            f"CREATE TABLE IF NOT EXISTS {t} (chunk_id TEXT PRIMARY KEY, document_id TEXT NOT NULL,"
            f" text TEXT NOT NULL, meta JSONB NOT NULL,"
            f" tsv tsvector GENERATED ALWAYS AS (to_tsvector('{_CONFIG}', text)) STORED)"
        ))
        conn.execute(sql_text(f"CREATE INDEX IF NOT EXISTS {t}_tsv ON {t} USING GIN (tsv)"))
        conn.execute(sql_text(f"CREATE INDEX IF NOT EXISTS {t}_doc ON {t} (document_id)"))
        self._ready = True

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert chunks, replacing any existing rows with the same chunk ids."""
        chunks, _ = dedupe_chunks(list(chunks))
        stmt = sql_text(
            f"INSERT INTO {self.table} (chunk_id, document_id, text, meta)"
            " VALUES (:id, :doc, :text, CAST(:meta AS jsonb)) ON CONFLICT (chunk_id) DO UPDATE"
            " SET document_id = EXCLUDED.document_id, text = EXCLUDED.text, meta = EXCLUDED.meta"
        )
        with self.engine.begin() as conn:
            self._ensure(conn)
            for batch in iter_batches(chunks, _BATCH):
                conn.execute(stmt, [{"id": c.id, "doc": c.document_id, "text": _no_nul(c.text),
                                     "meta": json_dumps(_no_nul(chunk_metadata(c)))} for c in batch])

    def _delete(self, column: str, values: Iterable[str]) -> None:
        stmt = sql_text(f"DELETE FROM {self.table} WHERE {column} IN :v").bindparams(
            bindparam("v", expanding=True))
        with self.engine.begin() as conn:
            self._ensure(conn)
            for batch in iter_batches(dict.fromkeys(values), _BATCH):
                conn.execute(stmt, {"v": batch})

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        """Remove every chunk of the given documents."""
        self._delete("document_id", document_ids)

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        self._delete("chunk_id", chunk_ids)

    def query(self, text: str, k: int, where: dict | None = None) -> list[Hit]:
        """The ``k`` best matches for free text (any OR of its non-stopword terms), best first.

        Terms are joined with " or " and parsed by ``websearch_to_tsquery``, which never raises on odd
        input; terms are plain words already (see ``knowledge.stores.query_terms``), so no quote or minus
        sign from the user reaches it as an operator.
        """
        terms = query_terms(text)
        if not terms or k <= 0:
            return []
        params: dict = {"q": " or ".join(terms), "k": k}
        cond = where_to_sql(where, "postgresql", params)
        sql = (
            f"SELECT chunk_id, text, meta, ts_rank_cd(tsv, q, 1) AS rank"
            f" FROM {self.table}, websearch_to_tsquery('{_CONFIG}', :q) AS q"
            f" WHERE tsv @@ q AND ({cond}) ORDER BY rank DESC, chunk_id LIMIT :k"
        )
        with self.engine.begin() as conn:
            self._ensure(conn)
            rows = conn.execute(sql_text(sql), params).all()
        hits = []
        for rank, (chunk_id, body, meta, score) in enumerate(rows, start=1):
            hits.append(Hit(chunk_id=chunk_id, text=body, score=float(score), metadata=dict(meta),
                            scores={"lexical": float(score)}, ranks={"lexical": rank}))
        return hits

    def count(self) -> int:
        """Number of chunks in the index."""
        with self.engine.begin() as conn:
            self._ensure(conn)
            return int(conn.execute(sql_text(f"SELECT count(*) FROM {self.table}")).scalar_one())

    def drop(self) -> None:
        """Delete the index's table (a no-op if it does not exist)."""
        with self.engine.begin() as conn:
            conn.execute(sql_text(f"DROP TABLE IF EXISTS {self.table}"))
        self._ready = False
