"""The embedding cache in a database every node reaches: one table, keyed by (model name, content hash).

The same :class:`~knowledge.types.VectorCache` as the SQLite file cache (knowledge.embedders.cache), for
deployments with several machines: a text embedded by one worker is never embedded again by another.
It takes an SQLAlchemy engine (PostgreSQL, or SQLite for one machine) and knows nothing of the app that
owns it. The table is made by that app's migrations (``embedding_cache_table`` gives its shape), or here
with ``create=True`` for use on its own.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, String, Table, func, select

from knowledge.types import iter_batches

_BATCH = 500  # keys per lookup and rows per insert statement
DIALECTS = ("postgresql", "sqlite")


def embedding_cache_table(metadata: MetaData, name: str = "embedding_cache") -> Table:
    """The cache's table on ``metadata`` (an app adds it to its own metadata to migrate it)."""
    return Table(
        name, metadata,
        Column("model", String(300), primary_key=True),  # the embedder's name
        Column("hash", String(64), primary_key=True),  # sha256 hex of the text (Chunk.content_hash)
        Column("dim", Integer, nullable=False),
        Column("vector", LargeBinary, nullable=False),  # float32, little-endian, dim values
    )


class SqlEmbeddingCache:
    """A :class:`~knowledge.types.VectorCache` in a database table. Safe from many threads and processes:
    each call takes a pooled connection of its own, and writes never overwrite (a key's vector is the same
    whoever computed it), so concurrent writers of one text both succeed."""

    def __init__(self, engine: Engine, table: str = "embedding_cache", *, create: bool = False) -> None:
        if engine.dialect.name not in DIALECTS:
            raise ValueError(f"no SQL embedding cache for database dialect {engine.dialect.name!r}")
        self.engine = engine
        self.table = embedding_cache_table(MetaData(), table)
        if create:
            self.table.create(engine, checkfirst=True)

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already cached for ``model``, keyed by hash; missing hashes are simply absent."""
        t, found = self.table.c, {}
        with self.engine.connect() as conn:
            for batch in iter_batches(dict.fromkeys(hashes), _BATCH):
                rows = conn.execute(select(t.hash, t.vector).where(t.model == model, t.hash.in_(batch)))
                for h, blob in rows:
                    found[h] = np.frombuffer(bytes(blob), dtype="<f4")
        return found

    def put_many(self, model: str, items: Iterable[tuple[str, Sequence[float]]]) -> None:
        """Store ``(hash, vector)`` pairs for ``model`` in one transaction; keys already there are kept."""
        rows = {}
        for h, vector in items:
            arr = np.asarray(vector, dtype="<f4")
            rows[h] = {"model": model, "hash": h, "dim": int(arr.shape[0]), "vector": arr.tobytes()}
        if not rows:
            return
        # Sorted: two processes inserting overlapping keys take their row locks in the same order, so
        # neither can deadlock the other.
        ordered = [rows[h] for h in sorted(rows)]
        with self.engine.begin() as conn:
            for batch in iter_batches(ordered, _BATCH):
                conn.execute(self._insert_if_absent(), batch)

    def count(self, model: str | None = None) -> int:
        """Number of cached vectors, for one model or all."""
        query = select(func.count()).select_from(self.table)
        if model is not None:
            query = query.where(self.table.c.model == model)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def close(self) -> None:
        """Nothing to close: the engine, and its pool, belong to the caller."""

    def _insert_if_absent(self):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(self.table).on_conflict_do_nothing(index_elements=["model", "hash"])
