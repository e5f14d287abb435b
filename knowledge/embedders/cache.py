"""Persistent embedding cache: unchanged text is never embedded twice, across syncs and indexes.

Vectors are keyed by (model name, sha256 of the text). ``EmbeddingCache`` keeps them in a SQLite file of
its own, separate from the application database, so the cache can be shared by every index using the same
model and deleted at any time without losing anything but time; it serves one machine. Several machines
share ``knowledge.embedders.sql_cache.SqlEmbeddingCache`` instead; ``CachedEmbedder`` takes either
(the :class:`~knowledge.types.VectorCache` protocol).
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from knowledge.embedders.usage import count_input_tokens
from knowledge.types import ModelUsage, VectorCache, iter_batches

# Well below SQLite's bound-parameter limit (32766 since 3.32, 999 before).
_LOOKUP_BATCH = 500


def content_hash(text: str) -> str:
    """The cache key of a text: sha256 hex of its UTF-8 bytes (the same value as ``Chunk.content_hash``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """A SQLite file mapping (model, content hash) to a float32 vector. Safe to use from many threads.

    Each thread gets its own connection (sqlite3 connections must not be shared across threads); WAL
    lets readers proceed while one writer writes, and the busy timeout absorbs short write contention
    between threads or processes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect()  # create the schema now, so a bad path fails early

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: statements autocommit unless wrapped in an explicit BEGIN below.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a lost cache row only costs a re-embedding
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, hash TEXT NOT NULL,"
                " dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, hash)) WITHOUT ROWID"
            )
            self._local.conn = conn
        return conn

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already cached for ``model``, keyed by hash; missing hashes are simply absent."""
        conn = self._connect()
        found: dict[str, np.ndarray] = {}
        for batch in iter_batches(dict.fromkeys(hashes), _LOOKUP_BATCH):
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})", [model, *batch]
            )
            for h, blob in rows:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: Iterable[tuple[str, Sequence[float]]]) -> None:
        """Store ``(hash, vector)`` pairs for ``model`` in one transaction (replacing existing ones)."""
        rows = []
        for h, vector in items:
            arr = np.asarray(vector, dtype=np.float32)
            rows.append((model, h, int(arr.shape[0]), arr.tobytes()))
        if not rows:
            return
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def count(self, model: str | None = None) -> int:
        """Number of cached vectors, for one model or all."""
        conn = self._connect()
        if model is None:
            return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        return conn.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (other threads' connections close when they are collected)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class CachedEmbedder:
    """Wraps an embedder so only texts missing from the cache are embedded.

    Identical texts within one call are embedded once. Counters (cumulative, thread-safe):
    ``hits`` = distinct texts served from the cache, ``misses`` = distinct texts sent to the embedder.
    The cache key is the wrapped embedder's ``name``, so distinct models must have distinct names.
    """

    def __init__(self, embedder, cache: VectorCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.name = embedder.name
        self.hits = 0
        self.misses = 0
        self._stats_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def max_input_tokens(self) -> int:
        return self.embedder.max_input_tokens

    def count_tokens(self, text: str) -> int:
        """Delegates to the wrapped embedder."""
        return self.embedder.count_tokens(text)

    def warm_up(self) -> None:
        """Delegates to the wrapped embedder (a fully cached run never needs the model)."""
        self.embedder.warm_up()

    def run(self, texts: Sequence[str], hashes: Sequence[str] | None = None) -> np.ndarray:
        """Vectors for ``texts`` (float32, one row per text, in order), embedding only cache misses.

        ``hashes`` may pass precomputed ``content_hash`` values (e.g. ``Chunk.content_hash``).
        """
        return self._run(texts, hashes)[0]

    def embed(
        self, texts: Sequence[str], hashes: Sequence[str] | None = None, *, count_cached: bool = False
    ) -> tuple[np.ndarray, ModelUsage]:
        """``run`` plus this call's own usage: the distinct texts embedded and their tokens, the cache
        hits, and (``count_cached``) the tokens of those hits. Counting is skipped by plain ``run``."""
        vectors, missing, hits = self._run(texts, hashes)
        tokens, estimated = count_input_tokens(self.embedder, missing) if missing else (0, False)
        usage = ModelUsage(inputs=len(missing), tokens=tokens, cache_hits=len(hits), estimated=estimated)
        if count_cached and hits:
            usage.cached_tokens, cached_estimated = count_input_tokens(self.embedder, hits)
            usage.estimated = usage.estimated or cached_estimated
        return vectors, usage

    def _run(self, texts: Sequence[str], hashes: Sequence[str] | None) -> tuple[np.ndarray, list[str], list[str]]:
        """Vectors, the distinct texts embedded and the distinct texts served from the cache."""
        keys = list(hashes) if hashes is not None else [content_hash(t) for t in texts]
        if len(keys) != len(texts):
            raise ValueError("texts and hashes differ in length")
        if not keys:
            return np.empty((0, self.dimension), dtype=np.float32), [], []
        found = self.cache.get_many(self.name, keys)
        by_key = dict(zip(keys, texts, strict=True))  # dedupes by hash
        missing = {k: t for k, t in by_key.items() if k not in found}
        hits = [t for k, t in by_key.items() if k in found]
        if missing:
            vectors = np.asarray(self.embedder.run(list(missing.values())), dtype=np.float32)
            fresh = dict(zip(missing, vectors, strict=True))
            self.cache.put_many(self.name, fresh.items())
            found.update(fresh)
        with self._stats_lock:
            self.hits += len(hits)
            self.misses += len(missing)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False), list(missing.values()), hits

    def reset_stats(self) -> None:
        """Zero the hit/miss counters."""
        with self._stats_lock:
            self.hits = self.misses = 0
