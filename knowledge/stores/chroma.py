"""Chroma vector store: one collection per index, cosine space, vectors always supplied by us.

Collections are created with ``embedding_function=None``: Chroma's default function would download a
model, and Magnet embeds (and caches) vectors itself. Chroma 1.5 configures the index through
``configuration={"hnsw": {...}}``; the legacy ``metadata={"hnsw:space": ...}`` keys are only translated.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from knowledge.stores import chunk_metadata, dedupe_chunks
from knowledge.types import Chunk, Hit, iter_batches


def make_chroma_client(path: str | None = None, url: str | None = None):
    """A Chroma client: embedded and persistent at ``path``, or HTTP to a server at ``url``.

    ``url`` looks like ``http://chroma:8000`` or ``https://chroma.example.com`` (port defaults to 8000
    for http, 443 for https). Telemetry is off and ``reset()`` is disallowed in both cases.
    """
    import chromadb
    from chromadb.config import Settings

    if bool(path) == bool(url):
        raise ValueError("give exactly one of a Chroma path or a Chroma URL")
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if path:
        return chromadb.PersistentClient(path=str(path), settings=settings)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a Chroma server URL: {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    return chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=settings)


class ChromaVectorStore:
    """The :class:`~knowledge.types.VectorStore` protocol on one Chroma collection.

    ``collection_name`` must satisfy Chroma's rule: 3-512 characters of ``[a-zA-Z0-9._-]``, starting and
    ending with a letter or digit. Hits carry the flat metadata of :func:`knowledge.stores.chunk_metadata`
    and ``score = 1 - cosine distance`` (1 is identical, 0 orthogonal).
    """

    def __init__(self, client, collection_name: str, ef_search: int = 100, ef_construction: int = 100) -> None:
        self.client = client
        self.collection_name = collection_name
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self._collection = None
        self._max_batch: int | None = None

    def _col(self):
        # Created lazily: constructing a store does no I/O, and drop() followed by use recreates it.
        if self._collection is None:
            self._collection = self.client.get_or_create_collection(
                self.collection_name,
                configuration={
                    "hnsw": {"space": "cosine", "ef_search": self.ef_search, "ef_construction": self.ef_construction}
                },
                embedding_function=None,
            )
        return self._collection

    def _batch_size(self) -> int:
        if self._max_batch is None:
            self._max_batch = int(self.client.get_max_batch_size())
        return self._max_batch

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Insert or replace chunks with their vectors (one row per chunk id), in batches Chroma accepts."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        chunks, vectors = dedupe_chunks(list(chunks), list(vectors))
        col = self._col()
        for batch in iter_batches(range(len(chunks)), self._batch_size()):
            col.upsert(
                ids=[chunks[i].id for i in batch],
                embeddings=np.asarray([vectors[i] for i in batch], dtype=np.float32),
                documents=[chunks[i].text for i in batch],
                metadatas=[chunk_metadata(chunks[i]) for i in batch],
            )

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        """Remove every chunk of the given documents."""
        col = self._col()
        for batch in iter_batches(dict.fromkeys(document_ids), self._batch_size()):
            col.delete(where={"document_id": {"$in": batch}})

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        col = self._col()
        for batch in iter_batches(dict.fromkeys(chunk_ids), self._batch_size()):
            col.delete(ids=batch)

    def query(self, vector: Sequence[float], k: int, where: dict | None = None) -> list[Hit]:
        """The ``k`` nearest chunks to ``vector``, best first, optionally restricted by a Chroma where-filter."""
        if k <= 0:
            return []
        res: dict[str, Any] = self._col().query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where or None,  # Chroma rejects an empty filter dict
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True)
        for rank, (chunk_id, text, meta, distance) in enumerate(rows, start=1):
            score = 1.0 - float(distance)
            hits.append(
                Hit(chunk_id=chunk_id, text=text or "", score=score, metadata=dict(meta or {}),
                    scores={"dense": score}, ranks={"dense": rank})
            )
        return hits

    def count(self) -> int:
        """Number of chunks in the collection."""
        return self._col().count()

    def drop(self) -> None:
        """Delete the collection and everything in it (a no-op if it does not exist)."""
        from chromadb.errors import NotFoundError

        with contextlib.suppress(NotFoundError):
            self.client.delete_collection(self.collection_name)
        self._collection = None
